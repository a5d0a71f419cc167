import { BFLOAT16, FLOAT16, FP8_E4M3, minifloat } from './minifloat.js';
import { groupLayout } from './granularity.js';
import type { QuantizedTensor, ScaleEncoding } from './quantized-tensor.js';
import type { Matrix } from './tensor.js';

/** Groups whose scale the storage encoding could not hold, found by {@link scaleRangeAnomalies}. */
export interface ScaleRangeAnomalies {
  /** Groups in the layer. */
  readonly groups: number;
  /** Groups whose scale saturated at the encoding's largest value, so their largest weights were clamped. */
  readonly clampedGroups: number;
  /** Largest |weight| in a clamped group (0 when none). */
  readonly largestClampedWeight: number;
  /** Groups holding a nonzero weight that all decode to zero (a scale too small or too coarse for the group). */
  readonly zeroedGroups: number;
  /** Nonzero weights that decode to exactly zero inside clamped or zeroed groups. */
  readonly zeroedWeights: number;
}

/** Largest value a scale encoding holds. */
export function largestScale(encoding: ScaleEncoding): number {
  switch (encoding) {
    case 'float32':
      return 3.4028234663852886e38;
    case 'float16':
      return minifloat(FLOAT16).maxValue;
    case 'bfloat16':
      return minifloat(BFLOAT16).maxValue;
    case 'e4m3':
      return minifloat(FP8_E4M3).maxValue;
    case 'e8m0':
      return 2 ** 127;
  }
}

/**
 * Counts the groups of a quantized layer that its scale encoding damaged: groups whose scale saturated at the
 * encoding's maximum (a weight such as 1e30 is clamped to `maxScale x maxCode`, and the group's ordinary weights
 * round to zero), and groups whose nonzero weights all decode to zero. Each is a silent loss unless reported; the
 * recipe runner turns the counts into step warnings.
 *
 * @param weight The float weight given to the quantize step, `[rows, columns]`.
 * @param result The step's dequantized weight, same shape.
 * @param quantized The step's quantized tensor (for its groups and scales).
 * @example
 * ```ts
 * const a = scaleRangeAnomalies(w, dequantize(q), q);
 * if (a.clampedGroups > 0) console.warn(`${a.clampedGroups} groups clamped`);
 * ```
 */
export function scaleRangeAnomalies(weight: Matrix, result: Matrix, quantized: QuantizedTensor): ScaleRangeAnomalies {
  const [rows, columns] = weight.shape;
  // The layout's ids are built only when read: the loop below walks plain groups without them.
  const layout = groupLayout(rows, columns, quantized.granularity, quantized.permutation);
  const count = layout.count;
  const limit = largestScale(quantized.scaleEncoding ?? 'float32');
  const tensorScale = quantized.tensorScale ?? 1;
  const clamped = new Uint8Array(count);
  let clampedGroups = 0;
  if (quantized.scales.length === count) {
    for (let g = 0; g < count; g++) {
      if (quantized.scales[g]! * tensorScale >= limit) {
        clamped[g] = 1;
        clampedGroups++;
      }
    }
  }
  const anyNonzero = new Uint8Array(count);
  const anyDecoded = new Uint8Array(count);
  const lost = new Int32Array(count);
  let largestClampedWeight = 0;
  const w = weight.data as Float32Array;
  const r = result.data as Float32Array;
  const visit = (i: number, g: number): void => {
    const x = w[i]!;
    if (x !== 0) {
      anyNonzero[g] = 1;
      if (r[i] === 0) lost[g]!++;
    }
    if (r[i] !== 0) anyDecoded[g] = 1;
    if (clamped[g] && Math.abs(x) > largestClampedWeight) largestClampedWeight = Math.abs(x);
  };
  const granularity = quantized.granularity;
  if (!quantized.permutation && (granularity.type === 'group' || granularity.type === 'channel') && w instanceof Float32Array && r instanceof Float32Array) {
    // Float32 weights in runs of consecutive columns per group: the same visit, monomorphic and inlined.
    largestClampedWeight = visitPlainGroups(w, r, rows * columns, granularity.type === 'group' ? granularity.size : columns, clamped, anyNonzero, anyDecoded, lost);
  } else if (!quantized.permutation && (granularity.type === 'group' || granularity.type === 'channel')) {
    // Runs of consecutive columns share a group (group r * perRow + k): no per-element id array.
    const size = granularity.type === 'group' ? granularity.size : columns;
    const perRow = columns / size;
    for (let row = 0; row < rows; row++) {
      for (let k = 0; k < perRow; k++) {
        const g = row * perRow + k;
        const start = row * columns + k * size;
        for (let i = start; i < start + size; i++) visit(i, g);
      }
    }
  } else {
    const ids = layout.ids;
    for (let i = 0; i < w.length; i++) visit(i, ids[i]!);
  }
  let zeroedGroups = 0;
  let zeroedWeights = 0;
  for (let g = 0; g < count; g++) {
    const zeroed = anyNonzero[g] === 1 && anyDecoded[g] === 0;
    if (zeroed) zeroedGroups++;
    if (zeroed || clamped[g]) zeroedWeights += lost[g]!;
  }
  return { groups: count, clampedGroups, largestClampedWeight, zeroedGroups, zeroedWeights };
}

/**
 * {@link scaleRangeAnomalies}'s per-element visit over float32 weights whose groups are runs of `size` consecutive
 * elements (group `floor(i / size)`): marks nonzero and decoded groups, counts weights lost to 0, and returns the
 * largest |weight| of a clamped group.
 */
function visitPlainGroups(w: Float32Array, r: Float32Array, length: number, size: number, clamped: Uint8Array, anyNonzero: Uint8Array, anyDecoded: Uint8Array, lost: Int32Array): number {
  let largest = 0;
  for (let start = 0, g = 0; start < length; start += size, g++) {
    const end = start + size;
    const isClamped = clamped[g] === 1;
    let nonzero = 0;
    let decoded = 0;
    let lostHere = 0;
    for (let i = start; i < end; i++) {
      const x = w[i]!;
      const y = r[i]!;
      if (x !== 0) {
        nonzero = 1;
        if (y === 0) lostHere++;
      }
      if (y !== 0) decoded = 1;
      if (isClamped && Math.abs(x) > largest) largest = Math.abs(x);
    }
    if (nonzero) anyNonzero[g] = 1;
    if (decoded) anyDecoded[g] = 1;
    lost[g]! += lostHere;
  }
  return largest;
}
