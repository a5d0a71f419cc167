import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from '@bitsmith/core';
import { quantEase } from './quant-ease.js';
import { quantEaseSolverOptions } from './solver-options.js';

/**
 * The `quantease` recipe step ({@link quantEase}, arXiv 2309.01885): `bits|format`, `groupSize|granularity`, `passes`,
 * `init` gptq|rtn, `dampening`.
 *
 * @example
 * ```ts
 * const step = quantEaseStep.create(quantEaseStep.options.parse({ bits: 3, groupSize: 128, passes: 20 }));
 * ```
 */
export const quantEaseStep = defineStep({
  description: 'QuantEase coordinate descent on the layer objective (@bitsmith/solvers): bits|format, groupSize|granularity, passes, init gptq|rtn, dampening',
  options: quantizationOptions.extend(quantEaseSolverOptions),
  create: ({ passes, init, dampening, ...rest }) => quantEase({ ...resolveQuantization(rest), ...definedOptions({ passes, init, dampening }) }),
});
