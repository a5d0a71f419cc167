import type { Matrix } from './tensor.js';

/**
 * A matrix quantized to per-row lookup tables (SqueezeLLM, arXiv:2306.07629): element `(r, c)` is
 * `lut[r * 2^bits + codes[r * columns + c]]`. Dense-and-sparse outliers are a separate stored form around it
 * (`{ kind: 'sparse-outliers', base: { kind: 'lut', tensor }, sparse }`, see `StoredForm`).
 */
export interface LutQuantizedTensor {
  readonly shape: readonly [rows: number, columns: number];
  /** Code width; each row has `2^bits` table entries. */
  readonly bits: number;
  /** One code per element, row-major. */
  readonly codes: Uint8Array | Uint16Array;
  /** `rows x 2^bits` table values (rounded to float16, as stored). */
  readonly lut: Float32Array;
}

/**
 * Decodes a {@link LutQuantizedTensor} to a float32 matrix (table lookups).
 *
 * @example
 * ```ts
 * const w = dequantizeLut(result.quantized);
 * ```
 */
export function dequantizeLut(q: LutQuantizedTensor): Matrix {
  const [rows, columns] = q.shape;
  const levels = 2 ** q.bits;
  const out = new Float32Array(rows * columns);
  for (let r = 0; r < rows; r++) {
    const o = r * columns;
    const t = r * levels;
    for (let c = 0; c < columns; c++) out[o + c] = q.lut[t + q.codes[o + c]!]!;
  }
  return { dtype: 'float32', shape: [rows, columns], data: out };
}

/**
 * Storage bits per weight of a {@link LutQuantizedTensor}: packed codes and the per-row tables as float16.
 *
 * @example
 * ```ts
 * lutBitsPerWeight(q); // 3 + 8 * 16 / columns
 * ```
 */
export function lutBitsPerWeight(q: LutQuantizedTensor): number {
  const elements = q.shape[0] * q.shape[1];
  return (elements * q.bits + q.lut.length * 16) / elements;
}
