import { InvalidArgumentError, NumericalError, ShapeMismatchError } from './errors.js';
import { roundScale } from './float-encoding.js';
import { groupLayout, validateGranularity, type Granularity, type GroupLayout } from './granularity.js';
import { minifloat, FP8_E4M3 } from './minifloat.js';
import { elementCodec, type ElementCodec, type FormatSpec } from './number-format.js';
import type { QuantizedTensor, ScaleEncoding } from './quantized-tensor.js';
import { clamp, roundHalfEven } from './rounding.js';
import type { Matrix } from './tensor.js';

/** Options of {@link quantize}. */
export interface QuantizeOptions {
  /** The number format. */
  format: FormatSpec;
  /** Default: `channel`, or the fixed block (group of 32 for MX, 16 for NVFP4) for block formats. */
  granularity?: Granularity;
  /** Scale storage. Default `float16` (as GPTQ and compressed-tensors store them); fixed `e8m0` for MX and `e4m3` for NVFP4. */
  scaleEncoding?: ScaleEncoding;
  /** Shrink factor of each group's range (from `rangeSearch`), or one factor for all groups. Default 1. */
  clip?: Float32Array | number;
}

/** Per-group statistics that every scale rule needs. */
export interface GroupStatistics {
  readonly min: Float64Array;
  readonly max: Float64Array;
  readonly sumAbs: Float64Array;
  readonly count: Float64Array;
}

/** Resolved settings of one quantization: codec, layout and scale encoding. Shared by quantize and range search. */
export interface QuantizationPlan {
  readonly codec: ElementCodec;
  readonly format: FormatSpec;
  readonly granularity: Granularity;
  readonly layout: GroupLayout;
  readonly scaleEncoding: ScaleEncoding;
  readonly rows: number;
  readonly columns: number;
}

/** Resolves format, granularity defaults and scale encoding for a `[rows, columns]` matrix, validating them. */
export function planQuantization(rows: number, columns: number, options: Omit<QuantizeOptions, 'clip'>): QuantizationPlan {
  const codec = elementCodec(options.format);
  let granularity = options.granularity;
  let scaleEncoding = options.scaleEncoding ?? 'float16';
  if (codec.blockSize !== undefined) {
    const fixed: Granularity = { type: 'group', size: codec.blockSize };
    if (granularity && !(granularity.type === 'group' && granularity.size === codec.blockSize)) {
      throw new InvalidArgumentError('granularity', `${codec.name} uses fixed blocks of ${codec.blockSize} input weights; omit granularity or pass { type: 'group', size: ${codec.blockSize} }`);
    }
    granularity = fixed;
    scaleEncoding = codec.scaleRule === 'mx' ? 'e8m0' : 'e4m3';
  }
  granularity ??= { type: 'channel' };
  return { codec, format: options.format, granularity, layout: groupLayout(rows, columns, granularity), scaleEncoding, rows, columns };
}

/** Computes min, max, sum of |x| and count per group, rejecting NaN and infinities with the offending index. */
export function groupStatistics(data: Float32Array, layout: GroupLayout, columns: number): GroupStatistics {
  const n = layout.count;
  const min = new Float64Array(n).fill(Infinity);
  const max = new Float64Array(n).fill(-Infinity);
  const sumAbs = new Float64Array(n);
  const count = new Float64Array(n);
  const ids = layout.ids;
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    if (!Number.isFinite(x)) {
      throw new NumericalError(`weight element [${Math.floor(i / columns)}, ${i % columns}] is ${x}`, 'only finite weights can be quantized');
    }
    const g = ids[i]!;
    if (x < min[g]!) min[g] = x;
    if (x > max[g]!) max[g] = x;
    sumAbs[g] += Math.abs(x);
    count[g] += 1;
  }
  return { min, max, sumAbs, count };
}

/** The NVFP4 second-level scale: global absmax / (448 * 6), so block scales fit FP8 E4M3. */
function nvfp4TensorScale(stats: GroupStatistics): number {
  let absmax = 0;
  for (let g = 0; g < stats.min.length; g++) absmax = Math.max(absmax, -stats.min[g]!, stats.max[g]!);
  return absmax > 0 ? Math.fround(absmax / (448 * 6)) : 1;
}

/**
 * Computes the scale (and zero point) of every group under the plan's scale rule, with each group's range shrunk by `clip`.
 * Scales are rounded to the storage encoding. A group of zeros gets scale 0 (its codes decode to 0).
 */
export function computeScales(
  plan: QuantizationPlan,
  stats: GroupStatistics,
  clip: Float32Array | number = 1,
): { scales: Float32Array; zeroPoints?: Float32Array; tensorScale?: number } {
  const { codec, scaleEncoding } = plan;
  const n = plan.layout.count;
  const scales = new Float32Array(n);
  const zeroPoints = codec.scaleRule === 'minmax' ? new Float32Array(n) : undefined;
  const tensorScale = codec.scaleRule === 'nvfp4' ? nvfp4TensorScale(stats) : undefined;
  const e4m3 = minifloat(FP8_E4M3);
  for (let g = 0; g < n; g++) {
    const c = typeof clip === 'number' ? clip : clip[g]!;
    const absmax = Math.max(-stats.min[g]!, stats.max[g]!) * c;
    let s: number;
    switch (codec.scaleRule) {
      case 'absmax':
        s = roundScale(absmax / codec.maxAbs, scaleEncoding, 'up');
        break;
      case 'absmean':
        s = roundScale((c * stats.sumAbs[g]!) / Math.max(1, stats.count[g]!), scaleEncoding);
        break;
      case 'minmax': {
        const lo = Math.min(stats.min[g]! * c, 0);
        const hi = Math.max(stats.max[g]! * c, 0);
        s = roundScale((hi - lo) / codec.maxAbs, scaleEncoding, 'up');
        zeroPoints![g] = s > 0 ? clamp(roundHalfEven(-lo / s), 0, codec.levels - 1) + 0 : 0; // + 0: no negative zero
        break;
      }
      case 'mx':
        // OCP MX v1.0: X = 2^(floor(log2(absmax)) - emax_elem), stored as E8M0.
        s = absmax > 0 ? 2 ** clamp(Math.floor(Math.log2(absmax)) - codec.maxExponent!, -127, 127) : 0;
        break;
      case 'nvfp4': {
        const r = e4m3.round(absmax / codec.maxAbs / tensorScale!);
        s = r;
        break;
      }
    }
    scales[g] = s;
  }
  const result: { scales: Float32Array; zeroPoints?: Float32Array; tensorScale?: number } = { scales };
  if (zeroPoints) result.zeroPoints = zeroPoints;
  if (tensorScale !== undefined) result.tensorScale = tensorScale;
  return result;
}

/**
 * Quantizes a `[rows, columns]` float32 matrix to codes and scales by round-to-nearest in any format and granularity.
 * Throws `NumericalError` on NaN or infinite weights, `InvalidArgumentError` on a granularity that does not fit.
 *
 * @example
 * ```ts
 * const q = quantize(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 128 } });
 * const wq = dequantize(q);
 * ```
 */
export function quantize(weight: Matrix, options: QuantizeOptions): QuantizedTensor {
  const [rows, columns] = weight.shape;
  const plan = planQuantization(rows, columns, options);
  const stats = groupStatistics(weight.data, plan.layout, columns);
  const { scales, zeroPoints, tensorScale } = computeScales(plan, stats, options.clip);
  const codes = encodeWithScales(weight.data, plan, scales, zeroPoints, tensorScale);
  const q: QuantizedTensor = {
    shape: [rows, columns],
    format: options.format,
    granularity: plan.granularity,
    codes,
    scales,
    scaleEncoding: plan.scaleEncoding,
    ...(zeroPoints ? { zeroPoints } : {}),
    ...(tensorScale !== undefined ? { tensorScale } : {}),
  };
  return q;
}

/** Encodes values with given per-group scales and zero points (the last step of `quantize`). */
export function encodeWithScales(
  data: Float32Array,
  plan: QuantizationPlan,
  scales: Float32Array,
  zeroPoints?: Float32Array,
  tensorScale = 1,
): Uint8Array | Uint16Array {
  const { codec, layout } = plan;
  const codes = codec.levels > 256 ? new Uint16Array(data.length) : new Uint8Array(data.length);
  const zeroCode = codec.encode(0);
  const ids = layout.ids;
  for (let i = 0; i < data.length; i++) {
    const g = ids[i]!;
    const s = scales[g]! * tensorScale;
    const z = zeroPoints ? zeroPoints[g]! : 0;
    codes[i] = s > 0 ? codec.encode(data[i]! / s + z) : zeroPoints ? z : zeroCode;
  }
  return codes;
}

/**
 * Decodes a quantized tensor back to a float32 matrix. `dequantize(quantize(dequantize(q)))` reproduces `dequantize(q)`.
 *
 * @example
 * ```ts
 * const wq = dequantize(quantize(w, { format: parseFormat('nf4'), granularity: { type: 'group', size: 64 } }));
 * ```
 */
export function dequantize(q: QuantizedTensor): Matrix {
  const [rows, columns] = q.shape;
  return { dtype: 'float32', shape: [rows, columns], data: dequantizeRows(q, 0, rows, new Float32Array(rows * columns)) };
}

/**
 * Decodes rows `rowStart` to `rowEnd` (exclusive) of a quantized tensor into `out` (`(rowEnd - rowStart) * columns`
 * values, row-major): the same values as those rows of {@link dequantize}, without a buffer of the whole tensor, so a
 * check can walk a large tensor in chunks.
 *
 * @example
 * ```ts
 * const rows = dequantizeRows(q, 64, 128, new Float32Array(64 * q.shape[1])); // dequantize(q).data rows 64..127
 * ```
 */
export function dequantizeRows(q: QuantizedTensor, rowStart: number, rowEnd: number, out: Float32Array): Float32Array {
  const [rows, columns] = q.shape;
  if (!(Number.isInteger(rowStart) && Number.isInteger(rowEnd) && rowStart >= 0 && rowStart <= rowEnd && rowEnd <= rows)) {
    throw new InvalidArgumentError('rows', `[${rowStart}, ${rowEnd}) is not a range of rows of a tensor with ${rows}`);
  }
  if (out.length < (rowEnd - rowStart) * columns) throw new ShapeMismatchError('out', [(rowEnd - rowStart) * columns], [out.length], 'values');
  const codec = elementCodec(q.format);
  // Decode table: one lookup per code instead of a codec call per element.
  const table = new Float64Array(codec.levels);
  for (let c = 0; c < codec.levels; c++) table[c] = codec.decode(c);
  const ts = q.tensorScale ?? 1;
  const { codes, scales, zeroPoints } = q;
  const granularity = q.granularity;
  const base = rowStart * columns;
  if (!q.permutation && (granularity.type === 'group' || granularity.type === 'channel')) {
    // Runs of consecutive columns share a group: no per-element group lookup (same arithmetic as below).
    validateGranularity(granularity, rows, columns);
    const size = granularity.type === 'group' ? granularity.size : columns;
    const perRow = columns / size;
    for (let r = rowStart; r < rowEnd; r++) {
      for (let k = 0; k < perRow; k++) {
        const g = r * perRow + k;
        const z = zeroPoints ? zeroPoints[g]! : 0;
        const scale = scales[g]!;
        const start = r * columns + k * size;
        for (let i = start; i < start + size; i++) out[i - base] = (table[codes[i]!]! - z) * scale * ts + 0; // + 0 turns -0 into 0
      }
    }
    return out;
  }
  const layout = groupLayout(rows, columns, granularity, q.permutation);
  const ids = layout.ids;
  for (let i = base; i < rowEnd * columns; i++) {
    const g = ids[i]!;
    out[i - base] = (table[codes[i]!]! - (zeroPoints ? zeroPoints[g]! : 0)) * scales[g]! * ts + 0; // + 0 turns -0 into 0
  }
  return out;
}
