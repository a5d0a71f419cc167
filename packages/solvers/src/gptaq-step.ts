import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from '@bitsmith/core';
import { gptaq } from './gptaq.js';
import { gptaqAlphaOption, gptqSolverOptions } from './solver-options.js';

/**
 * The `gptaq` recipe step ({@link gptaq}, arXiv 2504.02692): GPTQ's options (`bits|format`, `groupSize|granularity`,
 * `dampening`, `maxDampening`, `blockSize`, `actOrder`, `staticGroups`, `rangeSearch`, `factorPrecision`) and `alpha` (0.25).
 *
 * @example
 * ```ts
 * const step = gptaqStep.create(gptaqStep.options.parse({ bits: 4, groupSize: 128 }));
 * ```
 */
export const gptaqStep = defineStep({
  description: 'GPTAQ, GPTQ fitted to the float model\'s outputs (asymmetric calibration, @bitsmith/solvers): GPTQ\'s options and alpha (0.25)',
  options: quantizationOptions.extend({ ...gptqSolverOptions, alpha: gptaqAlphaOption.optional() }),
  create: ({ alpha, dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch, factorPrecision, ...rest }) =>
    gptaq({ ...resolveQuantization(rest), ...definedOptions({ alpha, dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch, factorPrecision }) }),
});
