import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from '@bitsmith/core';
import { awq } from './awq.js';
import { awqSearchOptions } from './smoothing-options.js';

/**
 * The `awq` recipe step ({@link awq}, arXiv 2306.00978): scale and clip search folded into the model, for the
 * `bits|format`, `groupSize|granularity` of the quantize step that follows; `grid`, `duoScaling`, `clipSearch`,
 * `clipSkip`, `maxTokens`.
 *
 * @example
 * ```ts
 * const step = awqStep.create(awqStep.options.parse({ bits: 4, groupSize: 128 }));
 * ```
 */
export const awqStep = defineStep({
  description: 'AWQ scale and clip search (@bitsmith/smoothing), folded into the model: bits|format, groupSize|granularity, grid, duoScaling, clipSearch, clipSkip, maxTokens; follow with rtn or gptq of the same format',
  options: quantizationOptions.extend(awqSearchOptions),
  create: ({ grid, duoScaling, clipSearch, clipSkip, maxTokens, ...rest }) => awq({ ...resolveQuantization(rest), ...definedOptions({ grid, duoScaling, clipSearch, clipSkip, maxTokens }) }),
});
