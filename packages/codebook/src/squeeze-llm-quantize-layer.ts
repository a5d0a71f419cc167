import {
  AbortError,
  InvalidArgumentError,
  ShapeMismatchError,
  csrFromPositions,
  decodeStored,
  storedBitsPerWeight,
  type CsrMatrix,
  type LutQuantizedTensor,
  type Matrix,
  type StepWarning,
  type StoredForm,
} from '@bitsmith/core';
import { defaultBackend, type Backend } from '@bitsmith/linalg';
import { errorFeedbackQuantize } from './error-feedback.js';
import { roundToFloat16 } from './float16.js';
import { weightedKMeans } from './weighted-kmeans.js';

/** Options of {@link squeezeLlmQuantizeLayer}. */
export interface SqueezeLlmLayerOptions {
  /** Code width, 1-8: each row gets `2^bits` table entries. */
  bits: number;
  /**
   * Importance of each weight in the 1-D k-means: one value per input column (length `columns`, e.g. the Hessian
   * diagonal or the squared mean |input|) or per element (`rows * columns`). Absent: all 1.
   */
  sensitivity?: Float32Array | Float64Array;
  /**
   * Fraction (0 to 0.5) of the largest-magnitude weights kept exactly in float32 in a CSR side tensor
   * (dense-and-sparse); they are left out of the clustering. Default 0.
   */
  outlierFraction?: number;
  /**
   * With a Hessian: after the tables are fitted, choose the codes column by column with GPTQ-style error feedback
   * (each column's rounding error is spread over the later columns through the inverse Hessian). An extension of the
   * paper, which rounds to nearest. Default false.
   */
  hessian?: Float64Array;
  /** Seed of the k-means++ initialisation. Default 0. */
  seed?: number;
  /** Lloyd iterations per row. Default 50. */
  maxIterations?: number;
  /** Dampening of the Hessian for error feedback. Default 0.01. */
  dampening?: number;
  backend?: Backend;
  signal?: AbortSignal;
}

/** Result of {@link squeezeLlmQuantizeLayer}. */
export interface SqueezeLlmLayerResult {
  /** The dense part: per-row tables and codes. */
  readonly quantized: LutQuantizedTensor;
  /** The outliers kept in float32 (dense-and-sparse), when `outlierFraction` > 0. */
  readonly sparse?: CsrMatrix;
  /** The layer as stored: `lut`, or `sparse-outliers` around it. */
  readonly stored: StoredForm;
  /** The dequantized weight (outliers included), `decodeStored(stored)`. */
  readonly weight: Matrix;
  readonly bitsPerWeight: number;
  /** Flat row-major positions of the outliers, ascending. */
  readonly outliers: Int32Array;
  readonly warnings: readonly StepWarning[];
}

function nearestInRow(lut: Float32Array, offset: number, levels: number, x: number): number {
  let best = 0;
  let bestD = Infinity;
  for (let c = 0; c < levels; c++) {
    const t = Math.abs(x - lut[offset + c]!);
    if (t < bestD) {
      bestD = t;
      best = c;
    }
  }
  return best;
}

/**
 * SqueezeLLM's non-uniform quantization (Kim et al., arXiv:2306.07629) of one layer: every output channel gets its
 * own lookup table of `2^bits` values, the centroids of a 1-D weighted k-means of the row's weights with the
 * sensitivity as weights (the paper uses the Fisher information; the Hessian diagonal and the squared mean |input|
 * are its calibration proxies). Dense-and-sparse: the `outlierFraction` largest-magnitude weights stay exact in a
 * CSR side tensor. Tables are stored (and used) in float16.
 *
 * @param weight - `[rows, columns]` float32. Not modified.
 * @param options - `bits` (required), `sensitivity` (all 1), `outlierFraction` (0), `hessian` (error feedback),
 *   `seed` (0), `maxIterations` (50), `dampening` (0.01), `backend`, `signal`.
 * @example
 * ```ts
 * const { weight: wq, bitsPerWeight } = await squeezeLlmQuantizeLayer(w, { bits: 3, sensitivity: hessianDiagonal, outlierFraction: 0.005 });
 * ```
 */
export async function squeezeLlmQuantizeLayer(weight: Matrix, options: SqueezeLlmLayerOptions): Promise<SqueezeLlmLayerResult> {
  const [rows, columns] = weight.shape;
  const bits = options.bits;
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new InvalidArgumentError('bits', `got ${bits}; expected an integer from 1 to 8`);
  const fraction = options.outlierFraction ?? 0;
  if (!(fraction >= 0 && fraction <= 0.5)) throw new InvalidArgumentError('outlierFraction', `got ${fraction}; expected a number from 0 to 0.5`);
  const sensitivity = options.sensitivity;
  if (sensitivity && sensitivity.length !== columns && sensitivity.length !== rows * columns) {
    throw new ShapeMismatchError('sensitivity', [columns], [sensitivity.length], `one value per input column or per element of a ${rows} x ${columns} weight`);
  }
  const levels = 2 ** bits;
  const total = rows * columns;
  const data = weight.data;
  // Outliers: the largest |w| over the whole matrix (ties broken by position, so the choice is deterministic).
  const outlierCount = Math.round(fraction * total);
  let outliers = new Int32Array(0);
  const isOutlier = new Uint8Array(total);
  if (outlierCount > 0) {
    const order = Int32Array.from({ length: total }, (_, i) => i).sort((a, b) => Math.abs(data[b]!) - Math.abs(data[a]!) || a - b);
    outliers = order.slice(0, outlierCount).sort();
    for (const p of outliers) isOutlier[p] = 1;
  }
  const lut = new Float32Array(rows * levels);
  const codes = new Uint8Array(total);
  const values = new Float32Array(columns);
  const weights = new Float64Array(columns);
  for (let r = 0; r < rows; r++) {
    if (options.signal?.aborted) throw new AbortError();
    let m = 0;
    for (let c = 0; c < columns; c++) {
      const p = r * columns + c;
      if (isOutlier[p]) continue;
      values[m] = data[p]!;
      weights[m] = sensitivity ? sensitivity[sensitivity.length === columns ? c : p]! : 1;
      m++;
    }
    const table = lut.subarray(r * levels, (r + 1) * levels);
    if (m === 0) continue;
    let positive = 0;
    for (let i = 0; i < m; i++) if (weights[i]! > 0) positive++;
    const result = await weightedKMeans(values.subarray(0, m), 1, {
      clusters: Math.min(levels, m),
      ...(positive > 0 ? { weights: weights.subarray(0, m) } : {}),
      seed: (options.seed ?? 0) + r,
      maxIterations: options.maxIterations ?? 50,
    });
    table.set(result.centroids);
    // Unused entries (a row with fewer weights than levels) repeat the last centroid.
    for (let c = result.centroids.length; c < levels; c++) table[c] = table[result.centroids.length - 1]!;
    // Sorted tables (nicer to read and to export).
    table.sort();
  }
  roundToFloat16(lut);
  const warnings: StepWarning[] = [];
  if (options.hessian) {
    const backend = options.backend ?? (await defaultBackend());
    const fed = await errorFeedbackQuantize(weight, options.hessian, {
      dimension: 1,
      step: 'squeezellm',
      backend,
      ...(options.dampening !== undefined ? { dampening: options.dampening } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      quantizeChunk: (c, x, _metric, out) => {
        for (let r = 0; r < rows; r++) {
          const p = r * columns + c;
          if (isOutlier[p]) {
            out[r] = x[r]!; // kept exactly (the error-updated value), so no error flows on
            continue;
          }
          const code = nearestInRow(lut, r * levels, levels, x[r]!);
          codes[p] = code;
          out[r] = lut[r * levels + code]!;
        }
      },
    });
    warnings.push(...fed.warnings);
    return lutResult({ shape: [rows, columns], bits, codes, lut }, outlierCount > 0 ? csrFromPositions(fed.weight, outliers) : undefined, outliers, warnings);
  }
  for (let p = 0; p < total; p++) codes[p] = nearestInRow(lut, Math.floor(p / columns) * levels, levels, data[p]!);
  return lutResult({ shape: [rows, columns], bits, codes, lut }, outlierCount > 0 ? csrFromPositions(weight, outliers) : undefined, outliers, warnings);
}

function lutResult(quantized: LutQuantizedTensor, sparse: CsrMatrix | undefined, outliers: Int32Array, warnings: StepWarning[]): SqueezeLlmLayerResult {
  const lut: StoredForm = { kind: 'lut', tensor: quantized };
  const stored: StoredForm = sparse ? { kind: 'sparse-outliers', base: lut, sparse } : lut;
  return { quantized, ...(sparse ? { sparse } : {}), stored, weight: decodeStored(stored), bitsPerWeight: storedBitsPerWeight(stored), outliers, warnings };
}
