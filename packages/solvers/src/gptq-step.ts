import { z } from 'zod';
import { defineStep, definedOptions, quantizationOptions, rangeSearchOptions, resolveQuantization } from '@bitsmith/core';
import { gptq } from './gptq.js';

/** GPTQ's solver options in recipe files (beside the shared quantization options); GPTAQ takes them too. */
export const gptqSolverOptions = {
  dampening: z.number().positive().optional(),
  maxDampening: z.number().positive().optional(),
  blockSize: z.number().int().positive().optional(),
  actOrder: z.boolean().optional(),
  staticGroups: z.boolean().optional(),
  rangeSearch: rangeSearchOptions.optional(),
};

/**
 * The `gptq` recipe step ({@link gptq}, arXiv 2210.17323): `bits|format`, `groupSize|granularity`, `dampening`,
 * `maxDampening`, `blockSize`, `actOrder`, `staticGroups`, `rangeSearch`.
 *
 * @example
 * ```ts
 * const step = gptqStep.create(gptqStep.options.parse({ bits: 4, groupSize: 128, actOrder: true }));
 * ```
 */
export const gptqStep = defineStep({
  description: 'GPTQ (@bitsmith/solvers): bits|format, groupSize|granularity, dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch',
  options: quantizationOptions.extend(gptqSolverOptions),
  create: ({ dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch, ...rest }) =>
    gptq({ ...resolveQuantization(rest), ...definedOptions({ dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch }) }),
});
