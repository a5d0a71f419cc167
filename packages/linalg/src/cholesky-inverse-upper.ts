import { InvalidArgumentError, NumericalError, matrix, type Matrix } from '@bitsmith/core';
import { checkBlockSize, checkSquareFloat64Matrix } from './check-matrix.js';
import { choleskyInverseLowerInPlace, choleskyInverseLowerMixed, inverseFactorResidual } from './cholesky-inverse-recursive.js';
import { choleskyInPlace, meanDiagonal, notPositiveDefinite } from './cholesky.js';
import { resolveBackend, type BackendOption } from './resolve-backend.js';
import { invertLowerInPlace } from './triangular-inverse-recursive.js';

/**
 * Above this size the factor comes from one fused recursion (Cholesky and triangular inverse on halves, GEMMs of depth
 * n/2, n/4, ...); at or below it from the blocked Cholesky then the recursive inverse (cheap at these sizes).
 */
const RECURSIVE_FROM = 2048;

/** Options of {@link choleskyInverseUpper}. */
export interface CholeskyInverseUpperOptions extends BackendOption {
  /** Block size. Default 128. */
  blockSize?: number;
  /** Work in the input's buffer and return it as `U` (the Hessian is overwritten, also when the factorization fails). Default false. */
  inPlace?: boolean;
  /**
   * `'float64'` (default): everything in float64. `'mixed'`: above n = 2048, the recursion's off-diagonal products run
   * in float32 GEMMs (about three times the speed of float64 ones) while the Schur complements are formed and the
   * diagonal blocks up to 512 factored in float64; the result is checked by a residual probe
   * (`||U H U^T v - v|| / ||v||` for a seeded Gaussian `v`) and recomputed in float64 when the residual passes
   * `mixedTolerance`. With `'mixed'` the input is kept for that check (`inPlace` has no effect above n = 2048: the
   * result is a new matrix).
   */
  precision?: 'float64' | 'mixed';
  /** Largest residual accepted from the mixed-precision factor. Default 1e-4. */
  mixedTolerance?: number;
  /**
   * Factor `H + shift * I` instead of `H` (GPTQ's dampening) without a copy of the shifted matrix: the shift is added
   * to the factor's own working copy (or, with `inPlace`, to the input's diagonal). Default 0.
   */
  shift?: number;
}

/**
 * The upper Cholesky factor of the inverse of a symmetric positive definite matrix: the upper-triangular `U`
 * with positive diagonal such that `H^{-1} = U^T U`. This is exactly what GPTQ (arXiv:2210.17323) uses:
 * `torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)`.
 *
 * Computed without forming `H^{-1}`: with `J` the exchange matrix, `J H J = L L^T` gives
 * `H^{-1} = (J L^{-T} J)(J L^{-1} J)`, and `U = J L^{-1} J` is upper triangular with a positive diagonal, so by
 * uniqueness it is the factor. Cost: one Cholesky and one triangular inverse (about `2 n^3 / 3` flops, through GEMM),
 * and no squaring of the condition number. Up to n = 2048 the Cholesky is blocked and the triangular inverse
 * recursive; above, both run in one recursion on halves whose work is a few GEMMs of depth n/2, n/4, ... (about
 * `5 n^3 / 6` flops, at the backend's peak GEMM speed).
 *
 * @param hessian - Symmetric positive definite `n x n` float64 matrix (dampen it first, as GPTQ does).
 * @param options - `blockSize` (128), `inPlace` (false), `precision` (`'float64'`), `mixedTolerance` (1e-4), `shift`
 *   (0), `backend` (`defaultBackend()`).
 * @returns `U`, upper triangular (lower triangle zero); with `inPlace`, in the input's buffer.
 * @throws `NumericalError` when `H` is not positive definite (the message suggests a dampening).
 * @example
 * ```ts
 * // GPTQ: H += 0.01 * mean(diag(H)) * I, then
 * const u = await choleskyInverseUpper(hessian);
 * ```
 */
export async function choleskyInverseUpper(hessian: Matrix<'float64'>, options: CholeskyInverseUpperOptions = {}): Promise<Matrix<'float64'>> {
  const n = checkSquareFloat64Matrix(hessian, 'hessian');
  const blockSize = checkBlockSize(options.blockSize ?? 128);
  const backend = await resolveBackend(options);
  const shift = options.shift ?? 0;
  if (!Number.isFinite(shift)) throw new InvalidArgumentError('shift', `got ${shift}; expected a finite number`);
  const mean = meanDiagonal(n, hessian.data) + shift;
  const mixed = options.precision === 'mixed' && n > RECURSIVE_FROM;
  let w: Float64Array;
  if (options.inPlace && !mixed) {
    w = reverseInPlace(hessian.data);
  } else {
    w = hessian.data.slice().reverse();
  }
  // The diagonal of J H J is H's diagonal reversed: the shift goes on it either way.
  if (shift !== 0) for (let i = 0; i < n; i++) w[i * n + i] += shift;
  // Reversal maps the lower triangle of J H J to the upper triangle of H; H is symmetric, so either is fine.
  if (n <= RECURSIVE_FROM) {
    await choleskyInPlace(n, w, backend, blockSize, mean);
    await invertLowerInPlace(n, w, backend);
  } else if (mixed) {
    // The input is kept (the mixed path never works in place): the check reads it, and a fallback starts from it.
    let accepted = false;
    try {
      await choleskyInverseLowerMixed(n, w, backend, (index, pivot) => {
        throw notPositiveDefinite(index, pivot, mean);
      });
      reverseInPlace(w);
      accepted = (await inverseFactorResidual(n, w, hessian.data, backend, shift)) <= (options.mixedTolerance ?? 1e-4);
      if (accepted) return matrix<'float64'>(w, n, n);
    } catch (error) {
      // A pivot lost to float32 rounding: the float64 recursion decides.
      if (!NumericalError.isInstance(error)) throw error;
    }
    w.set(hessian.data);
    reverseInPlace(w);
    if (shift !== 0) for (let i = 0; i < n; i++) w[i * n + i] += shift;
    await choleskyInverseLowerInPlace(n, w, backend, (index, pivot) => {
      throw notPositiveDefinite(index, pivot, mean);
    });
  } else {
    await choleskyInverseLowerInPlace(n, w, backend, (index, pivot) => {
      throw notPositiveDefinite(index, pivot, mean);
    });
  }
  // U = J L^{-1} J, reversing in place.
  reverseInPlace(w);
  return options.inPlace && !mixed ? hessian : matrix<'float64'>(w, n, n);
}

/** Reverses a flat array in place (`J X J` for a square row-major `X`). */
function reverseInPlace(w: Float64Array): Float64Array {
  return w.reverse();
}
