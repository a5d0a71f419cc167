import { checkOptions, InvalidArgumentError, type Quantizer } from '@bitsmith/core';
import { compensationStep, type CompensationOptions } from './compensation-step.js';
import { compensationOptionsSchema } from './low-rank-step-options.js';
import { activationScaleWhitening } from './error-whitening.js';

/**
 * LQER, low-rank quantization error reconstruction (Zhang et al., arXiv:2402.02446), as a compensate step: the error's
 * columns are scaled by the per-channel input magnitude `s` (mean |x| from calibration) before the SVD,
 * `E diag(s) ≈ U_r S_r V_r^T`, and the right factor is mapped back, `B = S_r^{1/2} V_r^T diag(1/s)`; the weight becomes
 * `Q(W) + A B`. Requires `input-absmean`.
 *
 * @param options - `rank` (required), `factorStorage` (`float16`), `svd`, `backend`.
 * @example
 * ```ts
 * const step = lqer({ rank: 8 });
 * ```
 */
export function lqer(options: CompensationOptions): Quantizer {
  checkOptions('lqer', compensationOptionsSchema, options);
  return compensationStep('lqer', [{ kind: 'input-absmean' }], options, (context, layer) => {
    const s = context.statistics(layer.name).inputAbsMean;
    if (!s) throw new InvalidArgumentError('statistics', `no input-absmean observed for '${layer.name}'; LQER requires it`);
    return activationScaleWhitening(s);
  });
}
