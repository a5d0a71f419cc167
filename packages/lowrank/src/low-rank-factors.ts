import { addLowRankProduct, bitsPerWeight, dequantize, quantize, type Matrix } from '@bitsmith/core';

/** A low-rank correction `A B` of a `[out, in]` weight: `a` is `[out, rank]`, `b` is `[rank, in]`, float32. */
export interface LowRankFactors {
  readonly a: Matrix;
  readonly b: Matrix;
  /** Storage bits of both factors together (codes and scales), for bits-per-weight accounting. */
  readonly bits: number;
}

/** How factors are stored: `float16` (16 bits each) or `int8` (symmetric 8-bit integers with an fp16 scale per row). */
export type FactorStorage = 'float16' | 'int8';

/**
 * Rounds one factor to its storage: `int8` quantizes each row with its own fp16 absmax scale (per channel) and
 * returns the dequantized values; `float16` rounds to the nearest float16 value. Returns the values and their bits.
 *
 * @example
 * ```ts
 * const { matrix, bits } = storeFactor(a, 'int8');
 * ```
 */
export function storeFactor(factor: Matrix, storage: FactorStorage): { matrix: Matrix; bits: number } {
  const [rows, columns] = factor.shape;
  if (storage === 'int8') {
    const q = quantize(factor, { format: { type: 'int', bits: 8, symmetric: true }, granularity: { type: 'channel' } });
    return { matrix: dequantize(q), bits: bitsPerWeight(q) * rows * columns };
  }
  const data = new Float32Array(factor.data.length);
  for (let i = 0; i < data.length; i++) data[i] = roundFloat16(factor.data[i]!);
  return { matrix: { dtype: 'float32', shape: [rows, columns], data }, bits: 16 * rows * columns };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds a float32 value to the nearest float16 (ties to even), returned as a number; overflow gives ±Infinity. */
function roundFloat16(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const ax = Math.abs(x);
  if (ax >= 65520) return x > 0 ? Infinity : -Infinity;
  // Quantum of float16 at this magnitude: 2^(e - 10), subnormals below 2^-14 use 2^-24.
  f32[0] = ax;
  const e = ((u32[0]! >>> 23) & 0xff) - 127;
  const quantum = 2 ** (Math.max(e, -14) - 10);
  const q = ax / quantum;
  let r = Math.round(q);
  if (Math.abs(q - Math.trunc(q) - 0.5) < 1e-12 && r % 2 !== 0) r -= 1; // ties to even
  return Math.sign(x) * r * quantum;
}

/**
 * `base + A B` as a new float32 matrix: the dense fake-quant weight of a compensated layer (core's
 * `addLowRankProduct`, which `decodeStored` uses for `low-rank` stored forms, so the two agree bit for bit).
 *
 * @example
 * ```ts
 * const effective = addLowRank(quantizedWeight, factors.a, factors.b);
 * ```
 */
export function addLowRank(base: Matrix, a: Matrix, b: Matrix): Matrix {
  return addLowRankProduct(base, a, b);
}

/**
 * Extra bits per weight of rank-`rank` factors of a `[rows, columns]` layer stored with `storage`:
 * `rank (rows + columns) bitsPerFactorElement / (rows columns)`, plus one fp16 scale per factor row for `int8`.
 *
 * @example
 * ```ts
 * factorBitsPerWeight(128, 128, 8, 'int8'); // 8 * 256 * 8 / 16384 + (128 + 8) * 16 / 16384
 * ```
 */
export function factorBitsPerWeight(rows: number, columns: number, rank: number, storage: FactorStorage): number {
  const elements = rank * (rows + columns);
  const bits = storage === 'int8' ? elements * 8 + (rows + rank) * 16 : elements * 16;
  return bits / (rows * columns);
}
