import { checkOptions, type Quantizer } from '@bitsmith/core';
import { compensationStep, type CompensationOptions } from './compensation-step.js';
import { compensationOptionsSchema } from './low-rank-step-options.js';

/**
 * LoRC, low-rank compensation (ZeroQuant-V2, Yao et al., arXiv:2303.08302), as a compensate step: the rank-`r`
 * truncated SVD of the quantization error `E = W - Q(W)` is added back as two factors `A [out, r]`, `B [r, in]`;
 * the layer's weight becomes `Q(W) + A B`. Needs no calibration statistics.
 *
 * @param options - `rank` (required), `factorStorage` (`float16`; `int8` per row), `svd` (`{ method: 'auto' }`), `backend`.
 * @example
 * ```ts
 * const recipe = [gptq({ format: 'int3', granularity: { type: 'group', size: 32 } }), lorc({ rank: 8, factorStorage: 'int8' })];
 * ```
 */
export function lorc(options: CompensationOptions): Quantizer {
  checkOptions('lorc', compensationOptionsSchema, options);
  return compensationStep('lorc', [], options, () => ({ type: 'none' }));
}
