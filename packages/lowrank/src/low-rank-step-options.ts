import { z } from 'zod';
import { backendOption, factoryOptions, formatOption, granularityOption } from '@bitsmith/core';
import type { CompensationOptions } from './compensation-step.js';
import type { EoraOptions } from './eora.js';
import type { LqLoraOptions } from './lq-lora.js';
import type { SvdQuantOptions } from './svdquant.js';

/**
 * The options every low-rank recipe step and factory shares, each defined once: `rank`, `factorStorage`
 * float16|int8, and the SVD's settings (`svd: { method auto|exact|randomized, powerIterations, seed }`). Recipe
 * files and code check them with the same schemas, so a wrong value reads the same from both.
 */
export const lowRankStepOptions = {
  rank: z.number().int().positive(),
  factorStorage: z.enum(['float16', 'int8']).optional(),
  svd: z
    .strictObject({ method: z.enum(['auto', 'exact', 'randomized']).optional(), powerIterations: z.number().int().nonnegative().optional(), seed: z.number().int().nonnegative().optional() })
    .optional(),
};

/** EoRA's dampening of the input covariance. */
export const eoraDampeningOption = z.number().nonnegative();

/** LQ-LoRA's number of alternations. */
export const lqLoraIterationsOption = z.number().int().positive();

const lowRank = { ...lowRankStepOptions, backend: backendOption.optional() };
const residual = { format: formatOption, granularity: granularityOption.optional() };

/** What {@link lorc} and {@link lqer} check their options with. */
export const compensationOptionsSchema = factoryOptions<CompensationOptions>(lowRank);

/** What {@link eora} checks its options with. */
export const eoraOptionsSchema = factoryOptions<EoraOptions>({ ...lowRank, dampening: eoraDampeningOption.optional() });

/** What {@link lqLora} checks its options with. */
export const lqLoraOptionsSchema = factoryOptions<LqLoraOptions>({ ...residual, ...lowRank, iterations: lqLoraIterationsOption.optional() });

/** What {@link svdQuant} checks its options with. */
export const svdQuantOptionsSchema = factoryOptions<SvdQuantOptions>({ ...residual, ...lowRank });
