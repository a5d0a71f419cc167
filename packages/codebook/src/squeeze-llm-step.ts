import { z } from 'zod';
import { defineStep, definedOptions } from '@bitsmith/core';
import { squeezeLlm } from './squeeze-llm.js';

/**
 * The `squeezellm` recipe step ({@link squeezeLlm}, arXiv 2306.07629): per-row lookup tables; `bits`, `sensitivity`
 * hessian-diagonal|fisher|none, `outlierFraction`, `errorFeedback`, `seed`, `maxIterations`, `dampening`.
 *
 * @example
 * ```ts
 * const step = squeezeLlmStep.create(squeezeLlmStep.options.parse({ bits: 3 }));
 * ```
 */
export const squeezeLlmStep = defineStep({
  description: 'SqueezeLLM per-row lookup tables (@bitsmith/codebook): bits, sensitivity hessian-diagonal|fisher|none, outlierFraction, errorFeedback, seed',
  options: z.strictObject({
    bits: z.number().int().min(1).max(8),
    sensitivity: z.enum(['hessian-diagonal', 'fisher', 'none']).optional(),
    outlierFraction: z.number().min(0).max(0.5).optional(),
    errorFeedback: z.boolean().optional(),
    seed: z.number().int().nonnegative().optional(),
    maxIterations: z.number().int().positive().optional(),
    dampening: z.number().positive().optional(),
  }),
  create: (o) => squeezeLlm(definedOptions(o)),
});
