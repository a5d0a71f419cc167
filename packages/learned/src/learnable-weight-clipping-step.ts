import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from '@bitsmith/core';
import { learnableWeightClipping } from './learnable-weight-clipping.js';
import { blockOptimizationOptions, transformOptions } from './learned-options.js';

const { iterations, learningRate, batchSize, seed } = blockOptimizationOptions;

/**
 * The `lwc` recipe step ({@link learnableWeightClipping}, OmniQuant arXiv 2308.13137): `bits|format`,
 * `groupSize|granularity`, `iterations` (200), `learningRate` (5e-3), `batchSize` (8), `seed`, `equivalentTransform`
 * (OmniQuant's LET scales learned jointly: LWC + LET is OmniQuant), `transformLearningRate` (5e-3).
 *
 * @example
 * ```ts
 * const step = learnableWeightClippingStep.create(learnableWeightClippingStep.options.parse({ bits: 3, groupSize: 128 }));
 * ```
 */
export const learnableWeightClippingStep = defineStep({
  description: 'OmniQuant-style learnable weight clipping (@bitsmith/learned): min/max clipping per group learned against the block output with Adam; bits|format, groupSize|granularity, iterations (200), learningRate (5e-3), batchSize (8), seed, equivalentTransform (OmniQuant LET scales, learned jointly), transformLearningRate (5e-3)',
  options: quantizationOptions.extend({ iterations, learningRate, batchSize, seed, ...transformOptions }),
  create: ({ iterations, learningRate, batchSize, seed, equivalentTransform, transformLearningRate, ...rest }) =>
    learnableWeightClipping({ ...resolveQuantization(rest), ...definedOptions({ iterations, learningRate, batchSize, seed, equivalentTransform, transformLearningRate }) }),
});
