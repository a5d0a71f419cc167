import { NumericalError } from '@bitsmith/core';
import type { Backend, GemmArguments } from './backend.js';
import { copyBlock } from './block.js';
import { invertLowerBlock } from './unblocked-kernels.js';

/** A zeroed array of `m`'s element type. */
function alike<T extends Float32Array | Float64Array>(m: T, length: number): T {
  return (m instanceof Float32Array ? new Float32Array(length) : new Float64Array(length)) as T;
}

/** The backend's GEMM for `m`'s element type (sgemm for float32, dgemm for float64). */
function gemmOf<T extends Float32Array | Float64Array>(backend: Backend, m: T): (args: GemmArguments<T>) => Promise<void> {
  return (m instanceof Float32Array ? (args) => backend.sgemm(args as GemmArguments<Float32Array>) : (args) => backend.dgemm(args as GemmArguments<Float64Array>)) as (
    args: GemmArguments<T>,
  ) => Promise<void>;
}

/**
 * Recursive in-place inverse of a lower-triangular matrix (the recursive form of LAPACK `dtrtri`):
 * `inv([A 0; B C]) = [inv(A) 0; -inv(C) B inv(A) inv(C)]`, with `inv(C) B` a recursive triangular multiply and
 * `(.) inv(A)` one GEMM. Every product is one large GEMM on contiguous operands; copies are `O(n^2 log n)`.
 * Internal to `@bitsmith/linalg`.
 */

/** Blocks at most this big are inverted by the scalar kernel (and multiplied by one GEMM in the TRMM). */
const LEAF = 96;

/**
 * Overwrites the contiguous `n x n` row-major array `a` (its lower triangle holds `L`; the upper triangle is ignored)
 * with `L^{-1}` (upper triangle zeroed); with `unitDiagonal` the diagonal of `L` is taken as ones. Throws `NumericalError` on a zero or non-finite diagonal entry.
 */
export async function invertLowerInPlace(n: number, a: Float64Array, backend: Backend, unitDiagonal = false): Promise<void> {
  await invert(n, a, backend, 0, unitDiagonal);
}

async function invert(n: number, a: Float64Array, backend: Backend, offset: number, unitDiagonal: boolean): Promise<void> {
  if (n <= LEAF) {
    const x = new Float64Array(n * n);
    const failed = invertLowerBlock(a, n, 0, n, x, unitDiagonal);
    if (failed >= 0) throw new NumericalError(`triangular: the matrix is singular: diagonal entry ${offset + failed} is zero or not finite`);
    a.set(x);
    return;
  }
  const n1 = n >> 1;
  const n2 = n - n1;
  const left = new Float64Array(n1 * n1);
  const right = new Float64Array(n2 * n2);
  const below = new Float64Array(n2 * n1);
  copyBlock(a, n, 0, 0, n1, n1, left, n1, 0, 0);
  copyBlock(a, n, n1, n1, n2, n2, right, n2, 0, 0);
  copyBlock(a, n, n1, 0, n2, n1, below, n1, 0, 0);
  await invert(n1, left, backend, offset, unitDiagonal);
  await invert(n2, right, backend, offset + n1, unitDiagonal);
  // below := inv(C) B, then X21 = -below inv(A) = -(inv(A)^T below^T)^T: both triangular products recursive, so the
  // inverse costs n^3/3 flops (a dense GEMM by inv(A) would cost n1^2 n2 more).
  await multiplyLowerLeft(n2, right, below, n1, backend);
  const belowT = new Float64Array(n1 * n2);
  transposeInto(below, n2, n1, belowT);
  const leftT = new Float64Array(n1 * n1);
  transposeInto(left, n1, n1, leftT);
  await multiplyUpperLeft(n1, leftT, belowT, n2, backend);
  const x21 = below;
  transposeInto(belowT, n1, n2, x21);
  for (let i = 0; i < x21.length; i++) x21[i] = -x21[i]!;
  for (let i = 0; i < n1; i++) {
    a.set(left.subarray(i * n1, (i + 1) * n1), i * n);
    a.fill(0, i * n + n1, (i + 1) * n);
  }
  for (let i = 0; i < n2; i++) {
    const row = (n1 + i) * n;
    a.set(x21.subarray(i * n1, (i + 1) * n1), row);
    a.set(right.subarray(i * n2, (i + 1) * n2), row + n1);
  }
}

/** `out := src^T` for a contiguous `rows x columns` array `src` (out is `columns x rows`), in 32 x 32 tiles. Internal. */
export function transposeInto(src: Float32Array | Float64Array, rows: number, columns: number, out: Float32Array | Float64Array): void {
  transposeBlockInto(src, columns, 0, 0, rows, columns, out);
}

/**
 * `out := B^T` for the `rows x columns` block `B` at `(row, column)` of the row-major `src` with leading dimension
 * `ld` (`out` is contiguous, `columns x rows`), in 16 x 16 tiles written row by row. Internal.
 */
export function transposeBlockInto(src: Float32Array | Float64Array, ld: number, row: number, column: number, rows: number, columns: number, out: Float32Array | Float64Array): void {
  for (let i0 = 0; i0 < rows; i0 += 16) {
    const i1 = Math.min(rows, i0 + 16);
    for (let j0 = 0; j0 < columns; j0 += 16) {
      const j1 = Math.min(columns, j0 + 16);
      for (let j = j0; j < j1; j++) {
        const o = j * rows;
        const s = (row * ld) + column + j;
        for (let i = i0; i < i1; i++) out[o + i] = src[s + i * ld]!;
      }
    }
  }
}

/**
 * `B := M B` in place for the upper-triangular contiguous `p x p` array `m` (its lower triangle is ignored) and the
 * contiguous `p x r` array `b` (recursive TRMM: `[M11 M12; 0 M22] [B1; B2] = [M11 B1 + M12 B2; M22 B2]`, top half
 * first). Internal.
 */
export async function multiplyUpperLeft<T extends Float32Array | Float64Array>(p: number, m: T, b: T, r: number, backend: Backend, leaf = LEAF): Promise<void> {
  if (p <= leaf) {
    const upper = alike(m, p * p);
    for (let i = 0; i < p; i++) for (let j = i; j < p; j++) upper[i * p + j] = m[i * p + j]!;
    const product = alike(m, p * r);
    await gemmOf(backend, m)({ m: p, n: r, k: p, a: upper, b, c: product });
    b.set(product);
    return;
  }
  const p1 = p >> 1;
  const p2 = p - p1;
  const m11 = alike(m, p1 * p1);
  const m12 = alike(m, p1 * p2);
  const m22 = alike(m, p2 * p2);
  copyBlock(m, p, 0, 0, p1, p1, m11, p1, 0, 0);
  copyBlock(m, p, 0, p1, p1, p2, m12, p2, 0, 0);
  copyBlock(m, p, p1, p1, p2, p2, m22, p2, 0, 0);
  const b1 = b.subarray(0, p1 * r) as T;
  const b2 = b.subarray(p1 * r, p * r) as T;
  await multiplyUpperLeft(p1, m11, b1, r, backend, leaf);
  await gemmOf(backend, m)({ m: p1, n: r, k: p2, a: m12, b: b2, c: b1, beta: 1 });
  await multiplyUpperLeft(p2, m22, b2, r, backend, leaf);
}

/**
 * `B := M^T B` in place for the lower-triangular contiguous `p x p` array `m` (so `M^T` is upper triangular; nothing is
 * transposed: the GEMMs read `M` transposed) and the contiguous `p x r` array `b`. Internal; see {@link multiplyLowerLeft}.
 */
export function multiplyLowerTransposedLeft<T extends Float32Array | Float64Array>(p: number, m: T, b: T, r: number, backend: Backend, leaf = LEAF): Promise<void> {
  return multiplyLower(p, m, b, r, backend, leaf, true);
}

/**
 * `B := M B` in place for the lower-triangular contiguous `p x p` array `m` and the contiguous `p x r` array `b`
 * (recursive TRMM: `[M11 0; M21 M22] [B1; B2] = [M11 B1; M21 B1 + M22 B2]`, bottom half first). Internal.
 */
export function multiplyLowerLeft<T extends Float32Array | Float64Array>(p: number, m: T, b: T, r: number, backend: Backend, leaf = LEAF): Promise<void> {
  return multiplyLower(p, m, b, r, backend, leaf, false);
}

/**
 * `B := M B` or, `transposed`, `B := M^T B` (`[M11^T M21^T; 0 M22^T] [B1; B2] = [M11^T B1 + M21^T B2; M22^T B2]`, top
 * half first) for lower-triangular `M`.
 */
async function multiplyLower<T extends Float32Array | Float64Array>(p: number, m: T, b: T, r: number, backend: Backend, leaf: number, transposed: boolean): Promise<void> {
  if (p <= leaf) {
    const lower = alike(m, p * p);
    for (let i = 0; i < p; i++) for (let j = 0; j <= i; j++) lower[i * p + j] = m[i * p + j]!;
    const product = alike(m, p * r);
    await gemmOf(backend, m)({ m: p, n: r, k: p, a: lower, transA: transposed, b, c: product });
    b.set(product);
    return;
  }
  const p1 = p >> 1;
  const p2 = p - p1;
  const m11 = alike(m, p1 * p1);
  const m21 = alike(m, p2 * p1);
  const m22 = alike(m, p2 * p2);
  copyBlock(m, p, 0, 0, p1, p1, m11, p1, 0, 0);
  copyBlock(m, p, p1, 0, p2, p1, m21, p1, 0, 0);
  copyBlock(m, p, p1, p1, p2, p2, m22, p2, 0, 0);
  const b1 = b.subarray(0, p1 * r) as T;
  const b2 = b.subarray(p1 * r, p * r) as T;
  if (transposed) {
    await multiplyLower(p1, m11, b1, r, backend, leaf, true);
    await gemmOf(backend, m)({ m: p1, n: r, k: p2, a: m21, transA: true, b: b2, c: b1, beta: 1 });
    await multiplyLower(p2, m22, b2, r, backend, leaf, true);
  } else {
    await multiplyLower(p2, m22, b2, r, backend, leaf, false);
    await gemmOf(backend, m)({ m: p2, n: r, k: p1, a: m21, b: b1, c: b2, beta: 1 });
    await multiplyLower(p1, m11, b1, r, backend, leaf, false);
  }
}
