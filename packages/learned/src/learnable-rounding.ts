import {
  clamp,
  groupStatistics,
  planQuantization,
  roundHalfEven,
  roundScale,
  UnsupportedFormatError,
  type FormatSpec,
  type Granularity,
  type GroupStatistics,
  type Matrix,
  type QuantizationPlan,
  type QuantizedTensor,
  type ScaleEncoding,
} from '@bitsmith/core';

/**
 * The learnable parameters of AutoRound's weight quantizer for one `[rows, columns]` matrix (arXiv:2309.05516):
 * a rounding offset per weight and a clipping factor for each group's minimum and maximum.
 */
export interface RoundingParameters {
  /** `[rows * columns]`: added before rounding, `round(w / s + v)`; AutoRound keeps it in [-0.5, 0.5]. */
  readonly offset: Float32Array;
  /** Per group: multiplies the group's minimum (clipped to <= 0). */
  readonly minScale: Float32Array;
  /** Per group: multiplies the group's maximum (clipped to >= 0). */
  readonly maxScale: Float32Array;
}

/** A uniform integer quantizer with learnable rounding, bound to one weight matrix. */
export interface LearnableRounding {
  readonly plan: QuantizationPlan;
  readonly rows: number;
  readonly columns: number;
  /** Fresh parameters: offset 0 and both clipping factors 1, which reproduce round-to-nearest (core's `quantize`). */
  initial(): RoundingParameters;
  /** The dequantized weight `[rows, columns]` under the parameters (written into `out` when given). */
  dequantize(params: RoundingParameters, out?: Float32Array): Float32Array;
  /**
   * Gradients of a loss with respect to the parameters, given its gradient with respect to the dequantized weight,
   * with straight-through rounding (`d round(x) / dx = 1`; the scale's rounding to its storage encoding is also
   * passed straight through) and clamping's zero gradient outside the grid, as PyTorch differentiates AutoRound.
   */
  backward(params: RoundingParameters, gradWeight: ArrayLike<number>): { offset: Float32Array; minScale: Float64Array; maxScale: Float64Array };
  /** The stored form under the parameters: codes, scales and zero points of core's uniform integer format. */
  quantize(params: RoundingParameters): QuantizedTensor;
}

/** Options of {@link learnableRounding}. */
export interface LearnableRoundingOptions {
  /** A uniform integer format (`{ type: 'int', bits, symmetric }`). */
  format: FormatSpec;
  /** Default: per output channel. */
  granularity?: Granularity;
  /** Default `float16`; scales are rounded to it in the forward pass, so training sees the stored grid. */
  scaleEncoding?: ScaleEncoding;
}

interface GroupScale {
  /** Scale per group (rounded to the encoding). */
  scale: Float64Array;
  /** Zero point per group (asymmetric), or the code offset 2^(b-1) (symmetric). */
  zero: Float64Array;
  /** Asymmetric: the clipped minimum `lo`; symmetric: unused. */
  lo: Float64Array;
}

/**
 * AutoRound's weight quantizer (SignRound, arXiv:2309.05516) on core's uniform integer grids, with the gradients of
 * its rounding offsets and clipping factors:
 * - asymmetric (`int4-asym`): `lo = min(w_min, 0) * minScale`, `hi = max(w_max, 0) * maxScale`, `s = (hi - lo) / (2^b - 1)`,
 *   `z = round(-lo / s)`, `q = clamp(round(w / s + v) + z, 0, 2^b - 1)`, `w' = s (q - z)`;
 * - symmetric (`int4`, core's convention): `m = max(-min(w_min, 0) * minScale, max(w_max, 0) * maxScale)`,
 *   `s = m / (2^(b-1) - 1/2)`, `q = clamp(round(w / s + v), -2^(b-1), 2^(b-1) - 1)`, `w' = s q`.
 * With `v = 0` and both factors 1 this is exactly core's round-to-nearest.
 *
 * @example
 * ```ts
 * const rounding = learnableRounding(weight, { format: parseFormat('int4'), granularity: { type: 'group', size: 128 } });
 * const p = rounding.initial();
 * const wq = rounding.dequantize(p); // = dequantize(quantize(weight, ...))
 * ```
 */
export function learnableRounding(weight: Matrix, options: LearnableRoundingOptions): LearnableRounding {
  const { format } = options;
  if (format.type !== 'int') throw new UnsupportedFormatError(`AutoRound's learnable rounding needs a uniform integer format (int2..int8, symmetric or -asym); got ${format.type}`);
  const [rows, columns] = weight.shape;
  const plan = planQuantization(rows, columns, { format, ...(options.granularity ? { granularity: options.granularity } : {}), scaleEncoding: options.scaleEncoding ?? 'float16' });
  const w = weight.data as Float32Array;
  const stats: GroupStatistics = groupStatistics(w, plan.layout, columns);
  const groups = plan.layout.count;
  const ids = plan.layout.ids;
  const symmetric = format.symmetric;
  const levels = 2 ** format.bits;
  const maxq = levels - 1;
  const half = levels / 2;
  const encoding = plan.scaleEncoding;

  const scales = (p: RoundingParameters): GroupScale => {
    const scale = new Float64Array(groups);
    const zero = new Float64Array(groups);
    const lo = new Float64Array(groups);
    for (let g = 0; g < groups; g++) {
      const mn = Math.min(stats.min[g]!, 0) * p.minScale[g]!;
      const mx = Math.max(stats.max[g]!, 0) * p.maxScale[g]!;
      if (symmetric) {
        scale[g] = roundScale(Math.max(-mn, mx) / (half - 0.5), encoding, 'up');
        zero[g] = half;
      } else {
        const s = roundScale((mx - mn) / maxq, encoding, 'up');
        scale[g] = s;
        lo[g] = mn;
        zero[g] = s > 0 ? clamp(roundHalfEven(-mn / s), 0, maxq) : 0;
      }
    }
    return { scale, zero, lo };
  };

  /** Code of element i (0..levels-1) and whether the unclamped code was inside the grid. */
  const codeOf = (i: number, p: RoundingParameters, gs: GroupScale): number => {
    const g = ids[i]!;
    const s = gs.scale[g]!;
    if (!(s > 0)) return symmetric ? half : gs.zero[g]!;
    const r = roundHalfEven(w[i]! / s + p.offset[i]!);
    return symmetric ? clamp(r, -half, half - 1) + half : clamp(r + gs.zero[g]!, 0, maxq);
  };

  return {
    plan,
    rows,
    columns,
    initial: () => ({ offset: new Float32Array(rows * columns), minScale: new Float32Array(groups).fill(1), maxScale: new Float32Array(groups).fill(1) }),
    dequantize(p, out = new Float32Array(rows * columns)) {
      const gs = scales(p);
      for (let i = 0; i < w.length; i++) {
        const g = ids[i]!;
        out[i] = (codeOf(i, p, gs) - gs.zero[g]!) * gs.scale[g]! + 0;
      }
      return out;
    },
    backward(p, gradWeight) {
      const gs = scales(p);
      const dOffset = new Float32Array(w.length);
      const dScale = new Float64Array(groups);
      const dZero = new Float64Array(groups);
      for (let i = 0; i < w.length; i++) {
        const g = ids[i]!;
        const s = gs.scale[g]!;
        if (!(s > 0)) continue;
        const G = gradWeight[i]!;
        const u = w[i]! / s + p.offset[i]!;
        const r = roundHalfEven(u);
        const shifted = symmetric ? r : r + gs.zero[g]!;
        const inside = symmetric ? r >= -half && r <= half - 1 : shifted >= 0 && shifted <= maxq;
        if (inside) {
          // w' = s * round(w / s + v) (the zero point cancels): dw'/dv = s, dw'/ds = r - w / s.
          dOffset[i] = G * s;
          dScale[g] += G * (r - w[i]! / s);
        } else {
          // w' = s * (q_clamped - z): dw'/ds = q - z at fixed z, dw'/dz = -s.
          const q = symmetric ? clamp(r, -half, half - 1) : clamp(shifted, 0, maxq) - gs.zero[g]!;
          dScale[g] += G * q;
          if (!symmetric) dZero[g] += -G * s;
        }
      }
      const dMin = new Float64Array(groups);
      const dMax = new Float64Array(groups);
      for (let g = 0; g < groups; g++) {
        const s = gs.scale[g]!;
        if (!(s > 0)) continue;
        const wmin = Math.min(stats.min[g]!, 0);
        const wmax = Math.max(stats.max[g]!, 0);
        if (symmetric) {
          // s = max(-wmin * a, wmax * b) / (half - 1/2): the gradient goes to the larger side.
          const dm = dScale[g]! / (half - 0.5);
          if (-wmin * p.minScale[g]! >= wmax * p.maxScale[g]!) dMin[g] = dm * -wmin;
          else dMax[g] = dm * wmax;
        } else {
          // z = round(-lo / s) passed straight through: dz/ds = lo / s^2, dz/dlo = -1 / s; s = (hi - lo) / maxq.
          const lo = gs.lo[g]!;
          const dsTotal = dScale[g]! + (dZero[g]! * lo) / (s * s);
          const dLo = -dZero[g]! / s - dsTotal / maxq;
          const dHi = dsTotal / maxq;
          dMin[g] = dLo * wmin;
          dMax[g] = dHi * wmax;
        }
      }
      return { offset: dOffset, minScale: dMin, maxScale: dMax };
    },
    quantize(p) {
      const gs = scales(p);
      const codes = new Uint8Array(w.length);
      for (let i = 0; i < w.length; i++) codes[i] = codeOf(i, p, gs);
      return {
        shape: [rows, columns],
        format,
        granularity: plan.granularity,
        codes,
        scales: Float32Array.from(gs.scale),
        scaleEncoding: encoding,
        ...(symmetric ? {} : { zeroPoints: Float32Array.from(gs.zero) }),
      };
    },
  };
}
