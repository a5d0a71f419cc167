import { z } from 'zod';
import { defineStep, definedOptions } from '@bitsmith/core';
import { squeezeLlmFields } from './codebook-options.js';
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
  options: z.strictObject(squeezeLlmFields),
  create: (o) => squeezeLlm(definedOptions(o)),
});
