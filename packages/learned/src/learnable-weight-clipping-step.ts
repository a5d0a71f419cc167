import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from '@bitsmith/core';
import { learnableWeightClipping } from './learnable-weight-clipping.js';
import { blockOptimizationOptions } from './learned-options.js';

const { iterations, learningRate, batchSize, seed } = blockOptimizationOptions;

/**
 * The `lwc` recipe step ({@link learnableWeightClipping}, OmniQuant arXiv 2308.13137): `bits|format`,
 * `groupSize|granularity`, `iterations` (200), `learningRate` (5e-3), `batchSize` (8), `seed`.
 *
 * @example
 * ```ts
 * const step = learnableWeightClippingStep.create(learnableWeightClippingStep.options.parse({ bits: 3, groupSize: 128 }));
 * ```
 */
export const learnableWeightClippingStep = defineStep({
  description: 'OmniQuant-style learnable weight clipping (@bitsmith/learned): min/max clipping per group learned against the block output with Adam; bits|format, groupSize|granularity, iterations (200), learningRate (5e-3), batchSize (8), seed',
  options: quantizationOptions.extend({ iterations, learningRate, batchSize, seed }),
  create: ({ iterations, learningRate, batchSize, seed, ...rest }) => learnableWeightClipping({ ...resolveQuantization(rest), ...definedOptions({ iterations, learningRate, batchSize, seed }) }),
});
