import { z } from 'zod';
import { defineStep, definedOptions } from '@bitsmith/core';
import { smoothQuant } from './smooth-quant.js';

/**
 * The `smoothquant` recipe step ({@link smoothQuant}, arXiv 2211.10438): `alpha` (default 0.5).
 *
 * @example
 * ```ts
 * const step = smoothQuantStep.create(smoothQuantStep.options.parse({ alpha: 0.8 }));
 * ```
 */
export const smoothQuantStep = defineStep({
  description: 'SmoothQuant (@bitsmith/smoothing): alpha (default 0.5)',
  options: z.strictObject({ alpha: z.number().min(0).max(1).optional() }),
  create: (o) => smoothQuant(definedOptions(o)),
});
