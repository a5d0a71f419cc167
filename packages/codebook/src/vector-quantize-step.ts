import { z } from 'zod';
import { defineStep, definedOptions } from '@bitsmith/core';
import { vectorQuantizeFields } from './codebook-options.js';
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
  options: z.strictObject(vectorQuantizeFields),
  create: (o) => vectorQuantize(definedOptions(o)),
});
