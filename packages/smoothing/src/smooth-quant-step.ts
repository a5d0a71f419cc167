import { z } from 'zod';
import { defineStep, definedOptions } from '@bitsmith/core';
import { smoothQuant } from './smooth-quant.js';
import { smoothQuantAlphaOption } from './smoothing-options.js';

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
  options: z.strictObject({ alpha: smoothQuantAlphaOption.optional() }),
  create: (o) => smoothQuant(definedOptions(o)),
});
