import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from '@bitsmith/core';
import { lowRankStepOptions, lqLoraIterationsOption } from './low-rank-step-options.js';
import { lqLora } from './lq-lora.js';

/**
 * The `lqlora` recipe step ({@link lqLora}, arXiv 2311.12023): the alternation W ≈ Q + L; `bits|format`,
 * `groupSize|granularity`, `rank`, `iterations`, `factorStorage`, `svd`.
 *
 * @example
 * ```ts
 * const step = lqLoraStep.create(lqLoraStep.options.parse({ bits: 3, groupSize: 64, rank: 16 }));
 * ```
 */
export const lqLoraStep = defineStep({
  description: 'LQ-LoRA-style alternation W ≈ Q + L (@bitsmith/lowrank): bits|format, groupSize|granularity, rank, iterations, factorStorage',
  options: quantizationOptions.extend({ ...lowRankStepOptions, iterations: lqLoraIterationsOption.optional() }),
  create: ({ rank, factorStorage, svd, iterations, ...rest }) => lqLora({ ...resolveQuantization(rest), ...definedOptions({ rank, factorStorage, svd, iterations }) }),
});
