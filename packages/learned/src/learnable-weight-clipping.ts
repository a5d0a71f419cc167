import { checkOptions, type Quantizer } from '@bitsmith/core';
import { blockwiseRounding, type AutoRoundOptions } from './autoround.js';
import { learnableWeightClippingOptionsSchema } from './learned-options.js';

/** Options of {@link learnableWeightClipping}: AutoRound's, without the rounding offsets. */
export type LearnableWeightClippingOptions = Omit<AutoRoundOptions, 'learnRounding' | 'learnClipping' | 'init'>;

/**
 * OmniQuant-style learnable weight clipping (LWC; Shao et al., arXiv:2308.13137) as a quantize step: per block, the
 * min/max clipping factor of every group is learned against the block output's squared error, with plain rounding.
 * OmniQuant parameterises the factors as sigmoids and trains them with AdamW; here they are clamped to [0, 1] and
 * trained with Adam (default learning rate 5e-3, constant schedule), sharing AutoRound's machinery, batches and
 * best-iterate selection. The output is an ordinary uniform stored form.
 *
 * @example
 * ```ts
 * const step = learnableWeightClipping({ format: 'int3', granularity: { type: 'group', size: 128 }, iterations: 200 });
 * ```
 */
export function learnableWeightClipping(options: LearnableWeightClippingOptions): Quantizer {
  checkOptions('learnableWeightClipping', learnableWeightClippingOptionsSchema, options);
  return blockwiseRounding(
    { optimizer: 'adam', learningRate: 5e-3, schedule: 'constant', ...options, learnRounding: false, learnClipping: true },
    'lwc',
  );
}
