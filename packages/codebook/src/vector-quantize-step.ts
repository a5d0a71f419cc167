import { z } from 'zod';
import { defineStep, definedOptions } from '@bitsmith/core';
import { vectorQuantize } from './vector-quantize.js';

/**
 * The `vq` recipe step ({@link vectorQuantize}, GPTVQ arXiv 2402.15319): `dimension`, `codebookBits`, `residual`,
 * `residualCodebookBits`, `groupRows`, `normalize`, `errorFeedback`, `seed`, `maxIterations`, `dampening`, `blockSize`.
 *
 * @example
 * ```ts
 * const step = vectorQuantizeStep.create(vectorQuantizeStep.options.parse({ dimension: 2, codebookBits: 8 }));
 * ```
 */
export const vectorQuantizeStep = defineStep({
  description: 'vector quantization with Hessian error feedback (@bitsmith/codebook): dimension, codebookBits, residual, residualCodebookBits, groupRows, normalize, errorFeedback, seed',
  options: z.strictObject({
    dimension: z.number().int().min(1).max(8),
    codebookBits: z.number().int().min(1).max(16),
    residual: z.boolean().optional(),
    residualCodebookBits: z.number().int().min(1).max(16).optional(),
    groupRows: z.number().int().positive().optional(),
    normalize: z.boolean().optional(),
    errorFeedback: z.boolean().optional(),
    seed: z.number().int().nonnegative().optional(),
    maxIterations: z.number().int().positive().optional(),
    dampening: z.number().positive().optional(),
    blockSize: z.number().int().positive().optional(),
  }),
  create: (o) => vectorQuantize(definedOptions(o)),
});
