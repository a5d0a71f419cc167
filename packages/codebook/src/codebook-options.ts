import { z } from 'zod';
import { backendOption, factoryOptions } from '@bitsmith/core';
import type { SqueezeLlmOptions } from './squeeze-llm.js';
import type { VectorQuantizeOptions } from './vector-quantize.js';

// The codebook steps' option schemas, each field defined once: the recipe steps (squeezeLlmStep, vectorQuantizeStep)
// and the factories (squeezeLlm(), vectorQuantize()) both use them, so a wrong value reads the same from a file and
// from code.

const shared = {
  errorFeedback: z.boolean().optional(),
  seed: z.number().int().nonnegative().optional(),
  maxIterations: z.number().int().positive().optional(),
  dampening: z.number().positive().optional(),
};

/** SqueezeLLM's options as recipe files and code both write them. */
export const squeezeLlmFields = {
  bits: z.number().int().min(1).max(8),
  sensitivity: z.enum(['hessian-diagonal', 'fisher', 'none']).optional(),
  outlierFraction: z.number().min(0).max(0.5).optional(),
  ...shared,
};

/** GPTVQ-style vector quantization's options as recipe files and code both write them. */
export const vectorQuantizeFields = {
  dimension: z.number().int().min(1).max(8),
  codebookBits: z.number().int().min(1).max(16),
  residual: z.boolean().optional(),
  residualCodebookBits: z.number().int().min(1).max(16).optional(),
  groupRows: z.number().int().positive().optional(),
  normalize: z.boolean().optional(),
  ...shared,
  blockSize: z.number().int().positive().optional(),
};

/** What {@link squeezeLlm} checks its options with. */
export const squeezeLlmOptionsSchema = factoryOptions<SqueezeLlmOptions>({ ...squeezeLlmFields, backend: backendOption.optional() });

/** What {@link vectorQuantize} checks its options with. */
export const vectorQuantizeOptionsSchema = factoryOptions<VectorQuantizeOptions>({ ...vectorQuantizeFields, backend: backendOption.optional() });
