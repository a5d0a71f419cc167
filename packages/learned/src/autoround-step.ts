import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from '@bitsmith/core';
import { autoRound } from './autoround.js';
import { blockOptimizationOptions, learnedParameterOptions, transformOptions } from './learned-options.js';

/**
 * The `autoround` recipe step ({@link autoRound}, arXiv 2309.05516): `bits|format` (uniform integers),
 * `groupSize|granularity`, `iterations` (200), `learningRate` (1/iterations), `scaleLearningRate`, `batchSize` (8),
 * `seed`, `optimizer` sign-sgd|adam, `schedule`, `learnClipping`, `bestIterate`, `init` rtn|gptq (start from GPTQ's
 * solution: symmetric grids), `equivalentTransform` (OmniQuant's LET scales, learned jointly), `transformLearningRate`.
 *
 * @example
 * ```ts
 * const step = autoRoundStep.create(autoRoundStep.options.parse({ bits: 4, groupSize: 128, iterations: 200 }));
 * ```
 */
export const autoRoundStep = defineStep({
  description:
    'AutoRound (@bitsmith/learned): signed gradient descent on rounding offsets and min/max clipping against the block output; bits|format (uniform integers), groupSize|granularity, iterations (200), learningRate (1/iterations), batchSize (8), seed, optimizer sign-sgd|adam, learnClipping, bestIterate, init rtn|gptq (start from GPTQ\'s solution), equivalentTransform (OmniQuant LET scales), transformLearningRate (5e-3)',
  options: quantizationOptions.extend({ ...blockOptimizationOptions, learnClipping: learnedParameterOptions.learnClipping, init: learnedParameterOptions.init, ...transformOptions }),
  create: ({ iterations, learningRate, scaleLearningRate, batchSize, seed, optimizer, schedule, learnClipping, bestIterate, init, equivalentTransform, transformLearningRate, ...rest }) =>
    autoRound({ ...resolveQuantization(rest), ...definedOptions({ iterations, learningRate, scaleLearningRate, batchSize, seed, optimizer, schedule, learnClipping, bestIterate, init, equivalentTransform, transformLearningRate }) }),
});
