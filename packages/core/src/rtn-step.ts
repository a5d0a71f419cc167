import { rangeSearchOptions } from './range-search.js';
import { rtn } from './rtn.js';
import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from './step-definition.js';

/**
 * The `rtn` recipe step: round-to-nearest ({@link rtn}) with `bits|format`, `groupSize|granularity`, `symmetric` and
 * `rangeSearch`.
 *
 * @example
 * ```ts
 * const step = rtnStep.create(rtnStep.options.parse({ bits: 4, groupSize: 32 }));
 * ```
 */
export const rtnStep = defineStep({
  description: 'round-to-nearest (@bitsmith/core): bits|format, groupSize|granularity, rangeSearch',
  options: quantizationOptions.extend({ rangeSearch: rangeSearchOptions.optional() }),
  create: ({ rangeSearch, ...rest }) => rtn({ ...resolveQuantization(rest), ...definedOptions({ rangeSearch }) }),
});
