import { defineStep, definedOptions, quantizationOptions, resolveQuantization } from '@bitsmith/core';
import { lowRankStepOptions } from './low-rank-step-options.js';
import { svdQuant } from './svdquant.js';

/**
 * The `svdquant` recipe step ({@link svdQuant}, arXiv 2411.05007): a 16-bit low-rank branch of rank `rank`, the
 * residual rounded to `bits|format`, `groupSize|granularity`; `factorStorage`, `svd`.
 *
 * @example
 * ```ts
 * const step = svdQuantStep.create(svdQuantStep.options.parse({ bits: 4, groupSize: 64, rank: 16 }));
 * ```
 */
export const svdQuantStep = defineStep({
  description: 'SVDQuant (@bitsmith/lowrank): 16-bit low-rank branch of rank `rank`, residual rounded to bits|format, groupSize|granularity',
  options: quantizationOptions.extend(lowRankStepOptions),
  create: ({ rank, factorStorage, svd, ...rest }) => svdQuant({ ...resolveQuantization(rest), ...definedOptions({ rank, factorStorage, svd }) }),
});
