import { z } from 'zod';
import { InvalidArgumentError, ShapeMismatchError } from './errors.js';
import { computeScales, groupStatistics, planQuantization, type QuantizeOptions } from './quantize.js';
import type { Matrix } from './tensor.js';

/** Options of {@link rangeSearch}. */
export interface RangeSearchOptions extends Omit<QuantizeOptions, 'clip'> {
  /** Number of shrink factors tried, evenly spaced from 1 down to `minShrink`. Default 20. */
  steps?: number;
  /** Smallest shrink factor. Default 0.5 (as AWQ's clipping search). */
  minShrink?: number;
  /** Exponent p of the L_p reconstruction error minimised. Default 2 (mean squared error). */
  norm?: number;
  /** Non-negative importance per input channel (length `columns`), for example the mean squared activation. Default all 1. */
  importance?: Float32Array | Float64Array;
}

/**
 * The `rangeSearch` option of rtn and gptq, in recipe files and in code: `true` for the defaults, or the search's
 * settings (`steps`, `minShrink`, `norm`, `activationWeighted`; see {@link rangeSearch}).
 */
export const rangeSearchOptions = z.union([
  z.boolean(),
  z.strictObject({
    steps: z.number().int().positive().optional(),
    minShrink: z.number().gt(0).max(1).optional(),
    norm: z.number().positive().optional(),
    activationWeighted: z.boolean().optional(),
  }),
]);

/**
 * Picks, for every group, the shrink factor of its range that minimises the importance-weighted L_p error
 * `sum_j importance_j * |w_j - Q(w_j)|^p` over a grid of factors (the clipping searches of llama.cpp, HQQ and AWQ).
 * The grid always contains 1, so the result is never worse than plain min-max under that error.
 * Pass the returned factors as `clip` to `quantize`.
 *
 * @example
 * ```ts
 * const clip = rangeSearch(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 128 } });
 * const q = quantize(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 128 }, clip });
 * ```
 */
export function rangeSearch(weight: Matrix, options: RangeSearchOptions): Float32Array {
  const [rows, columns] = weight.shape;
  const steps = options.steps ?? 20;
  const minShrink = options.minShrink ?? 0.5;
  const p = options.norm ?? 2;
  if (!Number.isInteger(steps) || steps < 1) throw new InvalidArgumentError('steps', `got ${steps}; expected a positive integer`);
  if (!(minShrink > 0 && minShrink <= 1)) throw new InvalidArgumentError('minShrink', `got ${minShrink}; expected a number in (0, 1]`);
  if (!(p > 0)) throw new InvalidArgumentError('norm', `got ${p}; expected a positive exponent`);
  const importance = options.importance;
  if (importance && importance.length !== columns) throw new ShapeMismatchError('importance', [columns], [importance.length], 'one weight per input channel');
  const plan = planQuantization(rows, columns, options);
  const { codec, layout } = plan;
  const stats = groupStatistics(weight.data, layout, columns);
  const n = layout.count;
  const best = new Float32Array(n).fill(1);
  const bestError = new Float64Array(n).fill(Infinity);
  const error = new Float64Array(n);
  const table = new Float64Array(codec.levels);
  for (let c = 0; c < codec.levels; c++) table[c] = codec.decode(c);
  const zeroCode = codec.encode(0);
  // Integer formats: values are integers in [lo, hi] (symmetric: code - 2^(b-1); asymmetric: code - zeroPoint).
  const integer =
    options.format.type === 'int'
      ? options.format.symmetric
        ? { lo: -(codec.levels / 2), hi: codec.levels / 2 - 1, offset: 0 }
        : { lo: 0, hi: codec.levels - 1, offset: 0 }
      : undefined;
  const data = weight.data;
  const ids = layout.ids;
  for (let step = 0; step < steps; step++) {
    const factor = steps === 1 ? 1 : 1 - ((1 - minShrink) * step) / (steps - 1);
    const { scales, zeroPoints, tensorScale = 1 } = computeScales(plan, stats, factor);
    error.fill(0);
    if (integer) {
      // Uniform integer grid: code = clamp(round-half-even(x / s + z)), inlined (no codec call per element).
      const { lo, hi, offset } = integer;
      for (let i = 0; i < data.length; i++) {
        const g = ids[i]!;
        const s = scales[g]! * tensorScale;
        const z = zeroPoints ? zeroPoints[g]! : 0;
        const x = data[i]!;
        let d: number;
        if (s > 0) {
          const t = x / s + z;
          let q = Math.round(t);
          if (q - t === 0.5 && (q & 1) !== 0) q -= 1;
          q = q < lo ? lo : q > hi ? hi : q;
          d = Math.abs(x - (q - offset - z) * s);
        } else d = Math.abs(x);
        const e = p === 2 ? d * d : d ** p;
        error[g] += importance ? importance[i % columns]! * e : e;
      }
    } else {
      for (let i = 0; i < data.length; i++) {
        const g = ids[i]!;
        const s = scales[g]! * tensorScale;
        const z = zeroPoints ? zeroPoints[g]! : 0;
        const x = data[i]!;
        const code = s > 0 ? codec.encode(x / s + z) : zeroPoints ? z : zeroCode;
        const d = Math.abs(x - (table[code]! - z) * s);
        const e = p === 2 ? d * d : d ** p;
        error[g] += importance ? importance[i % columns]! * e : e;
      }
    }
    for (let g = 0; g < n; g++) {
      if (error[g]! < bestError[g]!) {
        bestError[g] = error[g]!;
        best[g] = factor;
      }
    }
  }
  return best;
}
