import { z } from 'zod';
import { backendOption, factoryOptions, formatOption, granularityOption, scaleEncodingOption } from '@bitsmith/core';
import type { AwqOptions } from './awq.js';
import type { OutlierSuppressionPlusOptions } from './outlier-suppression-plus.js';
import type { SmoothQuantOptions } from './smooth-quant.js';
import type { SmoothQuantPlusOptions } from './smooth-quant-plus.js';

// The smoothing steps' option schemas, each field defined once: the recipe steps (awqStep, ...) and the factories
// (awq(), ...) both use them, so a wrong value reads the same from a recipe file and from code.

const positiveInteger = z.number().int().positive();

/** AWQ's search options (beside the format and granularity of the quantize step that follows). */
export const awqSearchOptions = {
  grid: positiveInteger.optional(),
  duoScaling: z.boolean().optional(),
  clipSearch: z.union([z.boolean(), z.strictObject({ steps: positiveInteger.optional(), minShrink: z.number().gt(0).max(1).optional(), maxTokens: positiveInteger.optional() })]).optional(),
  clipSkip: z.array(z.string().min(1)).optional(),
  maxTokens: positiveInteger.optional(),
};

/** SmoothQuant's migration strength, in [0, 1]. */
export const smoothQuantAlphaOption = z.number().min(0).max(1);

/** SmoothQuant+'s search options. */
export const smoothQuantPlusSearchOptions = {
  alphas: z.array(smoothQuantAlphaOption).min(1).optional(),
  maxTokens: positiveInteger.optional(),
};

/** Outlier Suppression+'s search options (its `activations` differ: a name in files, a name or FormatSpec in code). */
export const outlierSuppressionPlusSearchOptions = {
  shift: z.boolean().optional(),
  scale: z.boolean().optional(),
  candidates: positiveInteger.optional(),
  maxTokens: positiveInteger.optional(),
};

/** The activation granularities Outlier Suppression+ searches for. */
export const outlierActivationGranularity = z.enum(['tensor', 'token']);

const target = { format: formatOption, granularity: granularityOption.optional(), scaleEncoding: scaleEncodingOption.optional() };

/** What {@link awq} checks its options with. */
export const awqOptionsSchema = factoryOptions<AwqOptions>({ ...target, ...awqSearchOptions, includeIdentity: z.boolean().optional(), backend: backendOption.optional() });

/** What {@link smoothQuant} checks its options with. */
export const smoothQuantOptionsSchema = factoryOptions<SmoothQuantOptions>({ alpha: smoothQuantAlphaOption.optional() });

/** What {@link smoothQuantPlus} checks its options with. */
export const smoothQuantPlusOptionsSchema = factoryOptions<SmoothQuantPlusOptions>({ ...target, ...smoothQuantPlusSearchOptions, includeIdentity: z.boolean().optional(), backend: backendOption.optional() });

/** What {@link outlierSuppressionPlus} checks its options with. */
export const outlierSuppressionPlusOptionsSchema = factoryOptions<OutlierSuppressionPlusOptions>({
  ...target,
  ...outlierSuppressionPlusSearchOptions,
  activations: z.strictObject({ format: formatOption, granularity: outlierActivationGranularity.optional() }).optional(),
  backend: backendOption.optional(),
});
