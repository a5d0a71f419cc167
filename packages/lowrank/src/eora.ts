import { checkOptions, InvalidArgumentError, type Quantizer } from '@bitsmith/core';
import { compensationStep, type CompensationOptions } from './compensation-step.js';
import { eigenspaceWhitening } from './error-whitening.js';
import { eoraOptionsSchema } from './low-rank-step-options.js';

/** Options of {@link eora}. */
export interface EoraOptions extends CompensationOptions {
  /** Relative dampening of the input covariance before its eigendecomposition. Default 0.01. */
  dampening?: number;
}

/**
 * EoRA, eigenspace low-rank approximation (Liu et al., arXiv:2410.17626), as a compensate step: the error is projected
 * onto the eigenspace of the input covariance `H = X^T X = Q Λ Q^T` (linalg's `eigh`), scaled by `sqrt(Λ)`,
 * `E' = E Q sqrt(Λ) ≈ U_r S_r V_r^T`, and mapped back, `B = S_r^{1/2} V_r^T Λ^{-1/2} Q^T`. The truncation then
 * minimises the layer's output error `tr((E - A B) H (E - A B)^T)` on the calibration inputs. Requires `hessian`.
 *
 * @param options - `rank` (required), `dampening` (0.01), `factorStorage` (`float16`), `svd`, `backend`.
 * @example
 * ```ts
 * const step = eora({ rank: 8 });
 * ```
 */
export function eora(options: EoraOptions): Quantizer {
  checkOptions('eora', eoraOptionsSchema, options);
  return compensationStep('eora', [{ kind: 'hessian' }], options, (context, layer) => {
    const h = context.statistics(layer.name).hessian;
    if (!h) throw new InvalidArgumentError('statistics', `no Hessian observed for '${layer.name}'; EoRA requires it`);
    return eigenspaceWhitening(h, layer.weight.shape[1], options.dampening ?? 0.01);
  });
}
