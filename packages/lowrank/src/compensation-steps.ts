import { z } from 'zod';
import { defineStep, definedOptions } from '@bitsmith/core';
import { eora } from './eora.js';
import { lorc } from './lorc.js';
import { eoraDampeningOption, lowRankStepOptions } from './low-rank-step-options.js';
import { lqer } from './lqer.js';

/**
 * The `lorc` recipe step ({@link lorc}, arXiv 2303.08302): low-rank compensation of the quantization error after a
 * quantize step; `rank`, `factorStorage`, `svd`.
 *
 * @example
 * ```ts
 * const step = lorcStep.create(lorcStep.options.parse({ rank: 8 }));
 * ```
 */
export const lorcStep = defineStep({
  description: 'LoRC low-rank compensation of the quantization error (@bitsmith/lowrank): rank, factorStorage float16|int8, svd; after a quantize step',
  options: z.strictObject(lowRankStepOptions),
  create: (o) => lorc(definedOptions(o)),
});

/**
 * The `lqer` recipe step ({@link lqer}, arXiv 2402.02446): activation-scaled low-rank compensation after a quantize
 * step; `rank`, `factorStorage`, `svd`.
 *
 * @example
 * ```ts
 * const step = lqerStep.create(lqerStep.options.parse({ rank: 8 }));
 * ```
 */
export const lqerStep = defineStep({
  description: 'LQER activation-scaled low-rank compensation (@bitsmith/lowrank): rank, factorStorage, svd; after a quantize step',
  options: z.strictObject(lowRankStepOptions),
  create: (o) => lqer(definedOptions(o)),
});

/**
 * The `eora` recipe step ({@link eora}, arXiv 2410.21271): eigenspace low-rank compensation after a quantize step;
 * `rank`, `dampening`, `factorStorage`, `svd`.
 *
 * @example
 * ```ts
 * const step = eoraStep.create(eoraStep.options.parse({ rank: 8 }));
 * ```
 */
export const eoraStep = defineStep({
  description: 'EoRA eigenspace low-rank compensation (@bitsmith/lowrank): rank, dampening, factorStorage, svd; after a quantize step',
  options: z.strictObject({ ...lowRankStepOptions, dampening: eoraDampeningOption.optional() }),
  create: (o) => eora(definedOptions(o)),
});
