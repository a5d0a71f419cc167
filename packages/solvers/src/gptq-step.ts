import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from '@bitsmith/core';
import { gptq } from './gptq.js';
import { gptqSolverOptions } from './solver-options.js';

/**
 * The `gptq` recipe step ({@link gptq}, arXiv 2210.17323): `bits|format`, `groupSize|granularity`, `dampening`,
 * `maxDampening`, `blockSize`, `actOrder`, `staticGroups`, `rangeSearch`, `factorPrecision`.
 *
 * @example
 * ```ts
 * const step = gptqStep.create(gptqStep.options.parse({ bits: 4, groupSize: 128, actOrder: true }));
 * ```
 */
export const gptqStep = defineStep({
  description: 'GPTQ (@bitsmith/solvers): bits|format, groupSize|granularity, dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch, factorPrecision',
  options: quantizationOptions.extend(gptqSolverOptions),
  create: ({ dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch, factorPrecision, ...rest }) =>
    gptq({ ...resolveQuantization(rest), ...definedOptions({ dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch, factorPrecision }) }),
});
