import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from '@bitsmith/core';
import { smoothQuantPlus } from './smooth-quant-plus.js';
import { smoothQuantPlusSearchOptions } from './smoothing-options.js';

/**
 * The `smoothquant-plus` recipe step ({@link smoothQuantPlus}, arXiv 2312.03788): alpha searched on the calibration
 * loss for the given `bits|format`, `groupSize|granularity`; `alphas`, `maxTokens`.
 *
 * @example
 * ```ts
 * const step = smoothQuantPlusStep.create(smoothQuantPlusStep.options.parse({ bits: 4, groupSize: 128 }));
 * ```
 */
export const smoothQuantPlusStep = defineStep({
  description: 'SmoothQuant+ (@bitsmith/smoothing): alpha searched on calibration loss for the given bits|format',
  options: quantizationOptions.extend(smoothQuantPlusSearchOptions),
  create: ({ alphas, maxTokens, ...rest }) => smoothQuantPlus({ ...resolveQuantization(rest), ...definedOptions({ alphas, maxTokens }) }),
});
