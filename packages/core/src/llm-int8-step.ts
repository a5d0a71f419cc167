import { z } from 'zod';
import { llmInt8, llmInt8OutlierOptions } from './llm-int8.js';
import { parseFormat } from './number-format.js';
import { defineStep, definedOptions } from './step-definition.js';

/**
 * The `llm-int8` recipe step ({@link llmInt8}, arXiv 2208.07339): `threshold` (6.0) or `topK`, weight `bits` (8),
 * `activations` `{ format, granularity: token | tensor }` (int8 per token, dynamic).
 *
 * @example
 * ```ts
 * const step = llmInt8Step.create(llmInt8Step.options.parse({ threshold: 6 }));
 * ```
 */
export const llmInt8Step = defineStep({
  description:
    'LLM.int8() decomposition (@bitsmith/core): outlier input columns (calibration max|x| >= threshold, default 6, or the topK largest) kept in 16 bits for weights and activations, the rest int8 (bits, per output channel) with int8 per-token inputs (activations { format, granularity token|tensor })',
  options: z.strictObject({
    ...llmInt8OutlierOptions,
    bits: z.number().int().min(2).max(8).optional(),
    activations: z.strictObject({ format: z.string(), granularity: z.enum(['tensor', 'token']).optional() }).optional(),
  }),
  create: ({ threshold, topK, bits, activations }) =>
    llmInt8({
      ...definedOptions({ threshold, topK }),
      ...(bits !== undefined ? { format: `int${bits}` } : {}),
      ...(activations ? { activations: { format: parseFormat(activations.format), granularity: { type: activations.granularity ?? 'token' }, dynamic: true } } : {}),
    }),
});
