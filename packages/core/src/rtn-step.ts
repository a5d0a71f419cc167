import { z } from 'zod';
import { rtn } from './rtn.js';
import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from './step-definition.js';

/**
 * The `rangeSearch` option of a recipe file (rtn, gptq): `true` for the defaults, or the search's settings (see core's
 * `rangeSearch`: `steps`, `minShrink`, `norm`, `activationWeighted`).
 */
export const rangeSearchOptions = z.union([
  z.boolean(),
  z.strictObject({
    steps: z.number().int().positive().optional(),
    minShrink: z.number().gt(0).max(1).optional(),
    norm: z.number().positive().optional(),
    activationWeighted: z.boolean().optional(),
  }),
]);

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
