import { mirrorLowerTriangle } from '@bitsmith/core';
import type { FloatArray } from '../backend.js';

/**
 * `H = beta * H` over the first `n * n` elements; `beta = 0` writes zeros (NaN in `H` does not propagate).
 *
 * @example
 * ```ts
 * scaleGram(h, n, 0.5);
 * ```
 */
export function scaleGram(h: Float64Array, n: number, beta: number): void {
  const nn = n * n;
  if (beta === 0) h.fill(0, 0, nn);
  else if (beta !== 1) for (let i = 0; i < nn; i++) h[i] = h[i]! * beta;
}

/**
 * Adds `alpha * Y` to the upper triangle of the `n x n` float64 `H` for the row block `[rowStart, rowEnd)`,
 * where `Y` is the block `X[:, rowStart:rowEnd]^T X[:, columnStart:n]` stored row-major
 * (`(rowEnd - rowStart) x (n - columnStart)`), and `columnStart <= rowStart`. Only `H[i, j]` with `j >= i` is
 * written; {@link mirrorUpper} fills the lower triangle afterwards.
 *
 * @example
 * ```ts
 * addUpperBlock(h, n, y, 0, n, 0, 1); // y = X^T X, full n x n
 * ```
 */
export function addUpperBlock(h: Float64Array, n: number, y: ArrayLike<number>, rowStart: number, rowEnd: number, columnStart: number, alpha: number): void {
  const width = n - columnStart;
  for (let i = rowStart; i < rowEnd; i++) {
    const yRow = (i - rowStart) * width - columnStart;
    const hRow = i * n;
    if (alpha === 1) for (let j = i; j < n; j++) h[hRow + j] = h[hRow + j]! + y[yRow + j]!;
    else for (let j = i; j < n; j++) h[hRow + j] = h[hRow + j]! + alpha * y[yRow + j]!;
  }
}

/**
 * Adds `alpha * Y` to the lower triangle of the `n x n` float64 `H` for the column block `[columnStart, columnEnd)`,
 * where `Y` is the block `X[:, columnStart:n]^T X[:, columnStart:columnEnd]` stored row-major
 * (`(n - columnStart) x (columnEnd - columnStart)`). Only `H[i, j]` with `i >= j` is written;
 * {@link mirrorLower} fills the upper triangle afterwards.
 *
 * @example
 * ```ts
 * addLowerBlock(h, n, y, 0, n, 1); // y = X^T X, full n x n
 * ```
 */
export function addLowerBlock(h: Float64Array, n: number, y: ArrayLike<number>, columnStart: number, columnEnd: number, alpha: number): void {
  const width = columnEnd - columnStart;
  for (let i = columnStart; i < n; i++) {
    const yRow = (i - columnStart) * width - columnStart;
    const hRow = i * n;
    const end = Math.min(columnEnd, i + 1);
    if (alpha === 1) for (let j = columnStart; j < end; j++) h[hRow + j] = h[hRow + j]! + y[yRow + j]!;
    else for (let j = columnStart; j < end; j++) h[hRow + j] = h[hRow + j]! + alpha * y[yRow + j]!;
  }
}

/**
 * Adds `alpha * Y` to the lower triangle of the `n x n` float64 `H` over the block `[rowStart, rowEnd) x
 * [columnStart, columnEnd)`, where `Y` is that block of `X^T X`, row-major (`(rowEnd - rowStart) x (columnEnd -
 * columnStart)`), and `columnStart <= rowStart` (a block on or below the diagonal). Only `H[i, j]` with `i >= j` is
 * written; {@link mirrorLower} fills the upper triangle afterwards.
 *
 * @example
 * ```ts
 * addLowerBlockPair(h, n, y, 128, 256, 0, 128, 1); // y = X[:, 128:256]^T X[:, 0:128]
 * ```
 */
export function addLowerBlockPair(
  h: Float64Array,
  n: number,
  y: ArrayLike<number>,
  rowStart: number,
  rowEnd: number,
  columnStart: number,
  columnEnd: number,
  alpha: number,
): void {
  const width = columnEnd - columnStart;
  for (let i = rowStart; i < rowEnd; i++) {
    const yRow = (i - rowStart) * width - columnStart;
    const hRow = i * n;
    const end = Math.min(columnEnd, i + 1);
    if (alpha === 1) for (let j = columnStart; j < end; j++) h[hRow + j] = h[hRow + j]! + y[yRow + j]!;
    else for (let j = columnStart; j < end; j++) h[hRow + j] = h[hRow + j]! + alpha * y[yRow + j]!;
  }
}

/**
 * Copies the lower triangle of the `n x n` matrix `h` into its upper triangle, in 64 x 64 tiles so that the
 * strided reads stay in cache.
 *
 * @example
 * ```ts
 * mirrorLower(h, n); // h[i * n + j] = h[j * n + i] for i < j
 * ```
 */
export function mirrorLower(h: Float64Array, n: number): void {
  mirrorLowerTriangle(h, n);
}

/**
 * Copies the upper triangle of the `n x n` matrix `h` into its lower triangle, in 64 x 64 tiles so that the
 * strided reads stay in cache.
 *
 * @example
 * ```ts
 * mirrorUpper(h, n); // h[i * n + j] = h[j * n + i] for i > j
 * ```
 */
export function mirrorUpper(h: Float64Array, n: number): void {
  const T = 64;
  for (let i0 = 0; i0 < n; i0 += T) {
    const i1 = Math.min(n, i0 + T);
    for (let j0 = 0; j0 <= i0; j0 += T) {
      const j1 = Math.min(n, j0 + T);
      for (let i = i0; i < i1; i++) {
        const jEnd = Math.min(j1, i);
        const row = i * n;
        for (let j = j0; j < jEnd; j++) h[row + j] = h[j * n + i]!;
      }
    }
  }
}

/**
 * The GEMM epilogue `C = alpha * P + beta * C` over the first `P.length` elements, in float64 arithmetic
 * (`beta = 0` ignores `C`, so NaN there does not propagate).
 *
 * @example
 * ```ts
 * gemmEpilogue(c, product, 2, 0.5);
 * ```
 */
export function gemmEpilogue(c: FloatArray, product: ArrayLike<number>, alpha: number, beta: number): void {
  const len = product.length;
  if (beta === 0) {
    if (alpha === 1) for (let i = 0; i < len; i++) c[i] = product[i]!;
    else for (let i = 0; i < len; i++) c[i] = alpha * product[i]!;
  } else if (beta === 1 && alpha === 1) for (let i = 0; i < len; i++) c[i] = product[i]! + c[i]!;
  else for (let i = 0; i < len; i++) c[i] = alpha * product[i]! + beta * c[i]!;
}
