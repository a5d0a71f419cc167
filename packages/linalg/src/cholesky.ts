import { NumericalError, matrix, type Matrix } from '@bitsmith/core';
import type { Backend } from './backend.js';
import { copyBlock } from './block.js';
import { checkBlockSize, checkSquareFloat64Matrix } from './check-matrix.js';
import { resolveBackend, type BackendOption } from './resolve-backend.js';
import { choleskyBlock, invertLowerBlock } from './unblocked-kernels.js';

/** Options of {@link cholesky}. */
export interface CholeskyOptions extends BackendOption {
  /** Columns per panel (LAPACK's `nb`). Default 128; 64-128 is best on CPUs. */
  blockSize?: number;
  /** Factor in place, overwriting `a.data` (the upper triangle is zeroed). Default false. */
  inPlace?: boolean;
}

/**
 * Factors the `n x n` row-major float64 array `w` in place into its lower Cholesky factor (upper triangle left
 * untouched). Right-looking and blocked: each diagonal block is factored by a scalar kernel, the panel below it is
 * solved through GEMM with the inverse of the diagonal block (`L21 = A21 L11^{-T}`), and the trailing matrix is
 * updated by `A22 -= L21 L21^T` in a few large GEMMs over row bands. Internal; see {@link cholesky}.
 */
export async function choleskyInPlace(n: number, w: Float64Array, backend: Backend, blockSize: number, meanDiagonal: number): Promise<void> {
  const nb = Math.min(blockSize, Math.max(n, 1));
  const inverse = new Float64Array(nb * nb);
  const pivot = new Float64Array(1);
  const panel = new Float64Array(Math.max(0, n - nb) * nb);
  const solved = new Float64Array(Math.max(0, n - nb) * nb);
  let band = new Float64Array(0);
  for (let k0 = 0; k0 < n; k0 += nb) {
    const kb = Math.min(nb, n - k0);
    const failed = choleskyBlock(w, n, k0, kb, pivot);
    if (failed >= 0) throw notPositiveDefinite(k0 + failed, pivot[0]!, meanDiagonal);
    const t0 = k0 + kb;
    const n2 = n - t0;
    if (n2 === 0) break;
    // L21 = A21 * inv(L11)^T
    invertLowerBlock(w, n, k0, kb, inverse);
    copyBlock(w, n, t0, k0, n2, kb, panel, kb, 0, 0);
    await backend.dgemm({ m: n2, n: kb, k: kb, a: panel, b: inverse, c: solved, transB: true });
    copyBlock(solved, kb, 0, 0, n2, kb, w, n, t0, k0);
    // A22 -= L21 L21^T, lower triangle, in up to eight row bands (each band computes its full width up to its last
    // row: 9/16 of the square's flops instead of the triangle's 1/2).
    const bandRows = Math.max(nb, Math.ceil(n2 / 8));
    for (let r0 = 0; r0 < n2; r0 += bandRows) {
      const rb = Math.min(bandRows, n2 - r0);
      const width = r0 + rb;
      if (band.length < rb * width) band = new Float64Array(rb * width);
      // The band of A22 is copied out, updated by one GEMM with beta = 1, and its lower part copied back (native
      // copies, no JavaScript arithmetic per element).
      const product = band.subarray(0, rb * width);
      copyBlock(w, n, t0 + r0, t0, rb, width, product, width, 0, 0);
      await backend.dgemm({ m: rb, n: width, k: kb, a: solved.subarray(r0 * kb, (r0 + rb) * kb), b: solved.subarray(0, width * kb), c: product, transB: true, alpha: -1, beta: 1 });
      for (let i = 0; i < rb; i++) {
        const last = r0 + i; // columns 0..last (lower triangle)
        w.set(product.subarray(i * width, i * width + last + 1), (t0 + r0 + i) * n + t0);
      }
    }
  }
}

/** The error for a pivot that is not positive, with a dampening to try. Internal. */
export function notPositiveDefinite(index: number, pivot: number, meanDiagonal: number): NumericalError {
  const one = 0.01 * Math.abs(meanDiagonal);
  const suggested = Math.max(one, Number.isFinite(pivot) ? 2 * Math.abs(pivot) : 0);
  return new NumericalError(
    `cholesky: the matrix is not positive definite: pivot ${index} is ${pivot.toPrecision(4)} after elimination (mean diagonal ${meanDiagonal.toPrecision(4)})`,
    Number.isFinite(meanDiagonal) && meanDiagonal > 0
      ? `add dampening to the diagonal, for example ${suggested.toPrecision(3)} (${one === suggested ? '1% of the mean diagonal' : 'twice the failing pivot'}), and retry`
      : 'the diagonal is not positive: check the input for NaN or a sign error',
  );
}

/** Mean of the diagonal of a square row-major array. */
export function meanDiagonal(n: number, a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i * n + i]!;
  return n > 0 ? s / n : 0;
}

/**
 * Lower Cholesky factor `L` of a symmetric positive definite float64 matrix: `A = L L^T`. Reads only the lower
 * triangle of `A`. Blocked and right-looking (LAPACK `dpotrf`), with the panel's triangular solve done as a GEMM
 * by the inverse of the diagonal block, so the backend's GEMM does nearly all the work.
 *
 * @param a - Symmetric positive definite `n x n` float64 matrix.
 * @param options - `blockSize` (128), `inPlace` (false), `backend` (`defaultBackend()`).
 * @returns `L`, lower triangular with a positive diagonal (upper triangle zero).
 * @throws `NumericalError` when a pivot is not positive; the message names the pivot index and suggests a
 *   dampening to add to the diagonal (1% of the mean diagonal, as GPTQ's `percdamp`).
 * @example
 * ```ts
 * const l = await cholesky(matrix(Float64Array.of(4, 2, 2, 3), 2, 2)); // [[2, 0], [1, sqrt(2)]]
 * ```
 */
export async function cholesky(a: Matrix<'float64'>, options: CholeskyOptions = {}): Promise<Matrix<'float64'>> {
  const n = checkSquareFloat64Matrix(a, 'a');
  const blockSize = checkBlockSize(options.blockSize ?? 128);
  const backend = await resolveBackend(options);
  const w = options.inPlace ? a.data : a.data.slice();
  await choleskyInPlace(n, w, backend, blockSize, meanDiagonal(n, a.data));
  for (let i = 0; i < n; i++) w.fill(0, i * n + i + 1, (i + 1) * n);
  return options.inPlace ? a : matrix<'float64'>(w, n, n);
}
