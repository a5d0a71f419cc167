import type { Matrix } from './tensor.js';

/** One codebook stage of a {@link VqQuantizedTensor}. */
export interface VqStage {
  /** Bits per code; each codebook holds `2^codebookBits` vectors. */
  readonly codebookBits: number;
  /** One code per vector: `rows x (columns / dimension)`, row-major. */
  readonly codes: Uint16Array;
  /** `groups x 2^codebookBits x dimension` float16-rounded values (one codebook per block of `groupRows` rows). */
  readonly codebooks: Float32Array;
}

/**
 * A matrix vector-quantized in groups of `dimension` consecutive input weights (GPTVQ arXiv:2402.15319, VPTQ
 * arXiv:2409.17066): vector `v` of row `r` is `rowScales[r] * (sum over stages of codebook[group(r)][code])`.
 */
export interface VqQuantizedTensor {
  readonly shape: readonly [rows: number, columns: number];
  readonly dimension: number;
  /** Rows sharing one codebook. */
  readonly groupRows: number;
  /** The first stage, then the residual stage when present. */
  readonly stages: readonly VqStage[];
  /** Per-row scale (float16-rounded) when rows were normalised. */
  readonly rowScales?: Float32Array;
}

/**
 * Decodes a {@link VqQuantizedTensor}.
 *
 * @example
 * ```ts
 * const w = dequantizeVq(result.quantized);
 * ```
 */
export function dequantizeVq(q: VqQuantizedTensor): Matrix {
  const [rows, columns] = q.shape;
  const d = q.dimension;
  const perRow = columns / d;
  const out = new Float32Array(rows * columns);
  for (const stage of q.stages) {
    const size = 2 ** stage.codebookBits * d;
    for (let r = 0; r < rows; r++) {
      const book = Math.floor(r / q.groupRows) * size;
      for (let v = 0; v < perRow; v++) {
        const o = book + stage.codes[r * perRow + v]! * d;
        for (let a = 0; a < d; a++) out[r * columns + v * d + a] += stage.codebooks[o + a]!;
      }
    }
  }
  if (q.rowScales) for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) out[r * columns + c] = Math.fround(out[r * columns + c]! * q.rowScales[r]!);
  return { dtype: 'float32', shape: [rows, columns], data: out };
}

/**
 * Storage bits per weight of a {@link VqQuantizedTensor}: packed codes of every stage, the codebooks in float16 and
 * the float16 row scales.
 *
 * @example
 * ```ts
 * vqBitsPerWeight(q); // d = 2, 2^4 entries: 2 + codebooks + 16 / columns
 * ```
 */
export function vqBitsPerWeight(q: VqQuantizedTensor): number {
  const elements = q.shape[0] * q.shape[1];
  let bits = q.rowScales ? q.rowScales.length * 16 : 0;
  for (const s of q.stages) bits += s.codes.length * s.codebookBits + s.codebooks.length * 16;
  return bits / elements;
}
