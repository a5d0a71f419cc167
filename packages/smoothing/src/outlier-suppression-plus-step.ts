import { z } from 'zod';
import { defineStep, definedOptions, formatNameOption, quantizationOptions, resolveQuantization } from '@bitsmith/core';
import { outlierSuppressionPlus } from './outlier-suppression-plus.js';
import { outlierActivationGranularity, outlierSuppressionPlusSearchOptions } from './smoothing-options.js';

/**
 * The `outlier-suppression-plus` recipe step ({@link outlierSuppressionPlus}, arXiv 2304.09145): the weight
 * `bits|format` and `groupSize|granularity` of the quantize step that follows, `activations` `{ format, granularity:
 * tensor | token }` (int8 per tensor), `shift` (true), `scale` (true), `candidates` (20), `maxTokens` (2048).
 *
 * @example
 * ```ts
 * const step = outlierSuppressionPlusStep.create(outlierSuppressionPlusStep.options.parse({ bits: 8, granularity: 'channel' }));
 * ```
 */
export const outlierSuppressionPlusStep = defineStep({
  description:
    'Outlier Suppression+ (@bitsmith/smoothing): channel shift (a run-time transform compensated by a bias) and outlier scale searched on the quantized output error; bits|format, groupSize|granularity of the weight quantize step that follows, activations { format, granularity tensor|token } (int8 per tensor), shift, scale, candidates (20), maxTokens (2048)',
  options: quantizationOptions.extend({
    activations: z.strictObject({ format: formatNameOption, granularity: outlierActivationGranularity.optional() }).optional(),
    ...outlierSuppressionPlusSearchOptions,
  }),
  create: ({ activations, shift, scale, candidates, maxTokens, ...rest }) =>
    outlierSuppressionPlus({ ...resolveQuantization(rest), ...definedOptions({ activations, shift, scale, candidates, maxTokens }) }),
});
