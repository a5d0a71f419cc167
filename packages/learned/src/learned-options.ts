import { z } from 'zod';
import { factoryOptions, formatOption, granularityOption, scaleEncodingOption } from '@bitsmith/core';
import type { AutoRoundOptions } from './autoround.js';
import type { LearnableWeightClippingOptions } from './learnable-weight-clipping.js';

// The learned steps' option schemas, each field defined once: the recipe steps (autoRoundStep,
// learnableWeightClippingStep) and the factories (autoRound(), learnableWeightClipping()) both use them, so a wrong
// value reads the same from a recipe file and from code.

const scheduleName = z.enum(['constant', 'linear', 'cosine']);

/** The optimisation options AutoRound and learnable weight clipping share. */
export const blockOptimizationOptions = {
  iterations: z.number().int().nonnegative().optional(),
  learningRate: z.number().positive().optional(),
  scaleLearningRate: z.number().positive().optional(),
  batchSize: z.number().int().positive().optional(),
  seed: z.number().int().nonnegative().optional(),
  optimizer: z.enum(['sign-sgd', 'adam']).optional(),
  schedule: scheduleName.optional(),
  bestIterate: z.boolean().optional(),
};

/** AutoRound's switches of what is learned, and where it starts. */
export const learnedParameterOptions = {
  learnClipping: z.boolean().optional(),
  learnRounding: z.boolean().optional(),
  init: z.enum(['rtn', 'gptq']).optional(),
};

/** OmniQuant's equivalent transform (learnable channel scales folded into norms and producing linears). */
export const transformOptions = {
  equivalentTransform: z.boolean().optional(),
  transformLearningRate: z.number().positive().optional(),
};

/** In code a schedule may also carry a warmup: `{ type: 'cosine', warmup: 10 }` (see `scheduleFactor`). */
const codeOptions = {
  ...blockOptimizationOptions,
  schedule: z.union([scheduleName, z.strictObject({ type: scheduleName, warmup: z.number().int().nonnegative().optional() })]).optional(),
};

const target = { format: formatOption, granularity: granularityOption.optional(), scaleEncoding: scaleEncodingOption.optional() };

/** What {@link autoRound} checks its options with. */
export const autoRoundOptionsSchema = factoryOptions<AutoRoundOptions>({ ...target, ...codeOptions, ...learnedParameterOptions, ...transformOptions });

/** What {@link learnableWeightClipping} checks its options with. */
export const learnableWeightClippingOptionsSchema = factoryOptions<LearnableWeightClippingOptions>({ ...target, ...codeOptions, ...transformOptions });
