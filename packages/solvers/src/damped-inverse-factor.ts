import { InvalidArgumentError, NumericalError, matrix, type StepWarning } from '@bitsmith/core';
import { choleskyInverseUpper, webgpuCholeskyInverseUpper, type Backend, type WebgpuBackend, type WebgpuMatrix } from '@bitsmith/linalg';

/** Options of {@link dampedInverseFactor}. */
export interface DampedInverseFactorOptions {
  /** Fraction of the mean |Hessian diagonal| added to the diagonal. Default 0.01 (GPTQ's `percdamp`). */
  dampening?: number;
  /** Largest fraction tried when the factorization fails; each retry multiplies by 10. Default 10. */
  maxDampening?: number;
  /** Backend for the factorization's GEMMs. */
  backend: Backend;
  /** Block size of the factorization. Default 128. */
  blockSize?: number;
  /** `choleskyInverseUpper`'s precision: `'float64'` (default) or `'mixed'` (float32 products above n = 2048, checked). */
  precision?: 'float64' | 'mixed';
}

/** Result of {@link dampedInverseFactor}. */
export interface DampedInverseFactor {
  /** Upper-triangular `U` (`n x n`, row-major) with `(H + lambda I)^-1 = U^T U`. */
  readonly factor: Float64Array;
  /** The dampening fraction actually used. */
  readonly dampening: number;
  /** The absolute value `lambda` added to the diagonal. */
  readonly lambda: number;
  /** One warning per raise of the dampening. */
  readonly warnings: readonly StepWarning[];
}

/**
 * Dampens a Hessian and returns the upper Cholesky factor of its inverse, as GPTQ (arXiv:2210.17323) does:
 * `H + lambda I` with `lambda = dampening * mean(|diag H|)`, then `U` with `(H + lambda I)^-1 = U^T U`.
 * When the factorization fails (core `NumericalError`: not positive definite), the dampening is multiplied by 10
 * and tried again, up to `maxDampening`; every raise is returned as a warning, never silent. The input is not
 * modified.
 *
 * @param hessian - Symmetric `n x n` float64, row-major.
 * @throws `NumericalError` when even `maxDampening` does not make the matrix positive definite.
 * @example
 * ```ts
 * const { factor, dampening, warnings } = await dampedInverseFactor(h, n, { backend: await defaultBackend() });
 * ```
 */
export async function dampedInverseFactor(hessian: Float64Array, n: number, options: DampedInverseFactorOptions): Promise<DampedInverseFactor> {
  return withDampening((i) => hessian[i * n + i]!, n, options, async (lambda) => {
    // The factor's working copy of the Hessian takes the dampening (the input is never modified).
    const u = await choleskyInverseUpper(matrix<'float64'>(hessian, n, n), {
      backend: options.backend,
      shift: lambda,
      precision: options.precision ?? 'float64',
      ...(options.blockSize ? { blockSize: options.blockSize } : {}),
    });
    return u.data;
  });
}

/**
 * {@link dampedInverseFactor} on the GPU (GPTQ, arXiv:2210.17323): the same dampening and retries, with `U` formed in float32 by linalg's
 * `webgpuCholeskyInverseUpper` (the arithmetic of the reference implementation on CUDA) and left resident (release
 * it when done). `options.precision` and `options.blockSize` do not apply.
 *
 * @param gpu - A `webgpu` backend.
 * @param hessian - Symmetric `n x n` float64, row-major, with a non-negative diagonal (a Gram matrix); or a resident
 *   float32 one (upper triangle read, any positive scaling), with its `diagonal` given.
 * @param diagonal - The resident Hessian's diagonal (for the reported `lambda`; the factor takes the mean on the GPU).
 * @throws `NumericalError` when even `maxDampening` does not make the matrix positive definite in float32.
 * @example
 * ```ts
 * const { factor, warnings } = await dampedInverseFactorWebgpu(gpu, h, n, { backend: gpu });
 * gpu.release(factor);
 * ```
 */
export async function dampedInverseFactorWebgpu(
  gpu: WebgpuBackend,
  hessian: Float64Array | WebgpuMatrix,
  n: number,
  options: DampedInverseFactorOptions,
  diagonal?: ArrayLike<number>,
): Promise<Omit<DampedInverseFactor, 'factor'> & { readonly factor: WebgpuMatrix }> {
  // webgpuCholeskyInverseUpper dampens by a fraction of the mean diagonal: the mean |diagonal| of a Gram matrix.
  const entry = hessian instanceof Float64Array ? (i: number) => hessian[i * n + i]! : diagonal ? (i: number) => diagonal[i]! : undefined;
  if (!entry) throw new InvalidArgumentError('diagonal', 'a resident Hessian needs its diagonal (linalg\'s webgpuDiagonal)');
  return withDampening(entry, n, options, (_lambda, fraction) => webgpuCholeskyInverseUpper(gpu, hessian, n, { dampening: fraction }));
}

/** The dampening loop of GPTQ's factor: `factorize(lambda, fraction)`, the fraction raised tenfold on `NumericalError`. */
async function withDampening<T>(
  diagonal: (i: number) => number,
  n: number,
  options: Pick<DampedInverseFactorOptions, 'dampening' | 'maxDampening'>,
  factorize: (lambda: number, fraction: number) => Promise<T>,
): Promise<{ factor: T; dampening: number; lambda: number; warnings: StepWarning[] }> {
  const maxDampening = options.maxDampening ?? 10;
  let fraction = options.dampening ?? 0.01;
  let meanAbs = 0;
  for (let i = 0; i < n; i++) meanAbs += Math.abs(diagonal(i));
  meanAbs = n > 0 ? meanAbs / n : 0;
  if (!(meanAbs > 0)) meanAbs = 1;
  const warnings: StepWarning[] = [];
  for (;;) {
    const lambda = fraction * meanAbs;
    try {
      return { factor: await factorize(lambda, fraction), dampening: fraction, lambda, warnings };
    } catch (error) {
      if (!NumericalError.isInstance(error)) throw error;
      const next = fraction > 0 ? fraction * 10 : 0.01;
      if (next > maxDampening * (1 + 1e-12)) {
        throw new NumericalError(
          `the Hessian is not positive definite even with dampening ${fraction} (${lambda.toPrecision(4)} added to the diagonal)`,
          'check the calibration statistics for NaN or negative curvature, or raise maxDampening',
        );
      }
      warnings.push({
        step: 'gptq',
        message: `Cholesky factorization failed with dampening ${fraction}; raised to ${next} (${error.message})`,
      });
      fraction = next;
    }
  }
}
