import { z } from 'zod';
import { backendOption, factoryOptions, formatOption, granularityOption, rangeSearchOptions, scaleEncodingOption, signalOption } from '@bitsmith/core';
import type { GptaqOptions } from './gptaq.js';
import type { GptqOptions } from './gptq-quantize-layer.js';
import type { HqqOptions } from './hqq-quantize-layer.js';
import type { QuantEaseOptions } from './quant-ease-quantize-layer.js';

// The solvers' option schemas, each field defined once: the recipe steps (gptqStep, ...) and the factories (gptq(),
// ...) both use them, so a wrong value reads the same from a recipe file and from code.

/** GPTQ's solver options (beside the format and granularity); GPTAQ and, in part, QuantEase take them too. */
export const gptqSolverOptions = {
  dampening: z.number().positive().optional(),
  maxDampening: z.number().positive().optional(),
  blockSize: z.number().int().positive().optional(),
  actOrder: z.boolean().optional(),
  staticGroups: z.boolean().optional(),
  rangeSearch: rangeSearchOptions.optional(),
  factorPrecision: z.enum(['float64', 'mixed', 'gpu']).optional(),
};

/** GPTAQ's weight of the asymmetric term, in [0, 1]. */
export const gptaqAlphaOption = z.number().min(0).max(1);

/** HQQ's integer bit width. */
export const hqqBitsOption = z.number().int().min(1).max(8);

/** HQQ's optimiser options. */
export const hqqSolverOptions = {
  lpNorm: z.number().gt(0).max(1).optional(),
  beta: z.number().positive().optional(),
  kappa: z.number().positive().optional(),
  iterations: z.number().int().nonnegative().optional(),
  optimizeScale: z.boolean().optional(),
  zeroPoint: z.enum(['float', 'integer']).optional(),
};

/** QuantEase's own options. */
export const quantEaseSolverOptions = {
  passes: z.number().int().nonnegative().optional(),
  init: z.enum(['gptq', 'rtn']).optional(),
  dampening: gptqSolverOptions.dampening,
};

const target = { format: formatOption, granularity: granularityOption.optional(), scaleEncoding: scaleEncodingOption.optional() };

/** What {@link gptq} checks its options with. */
export const gptqOptionsSchema = factoryOptions<GptqOptions>({ ...target, ...gptqSolverOptions, backend: backendOption.optional(), signal: signalOption.optional() });

/** What {@link gptaq} checks its options with. */
export const gptaqOptionsSchema = factoryOptions<GptaqOptions>({ ...target, ...gptqSolverOptions, alpha: gptaqAlphaOption.optional(), backend: backendOption.optional(), signal: signalOption.optional() });

/** What {@link hqq} checks its options with. */
export const hqqOptionsSchema = factoryOptions<HqqOptions>({ bits: hqqBitsOption.optional(), format: formatOption.optional(), granularity: granularityOption.optional(), ...hqqSolverOptions });

const { dampening, maxDampening, blockSize, rangeSearch, factorPrecision } = gptqSolverOptions;

/** What {@link quantEase} checks its options with. */
export const quantEaseOptionsSchema = factoryOptions<QuantEaseOptions>({
  ...target,
  ...quantEaseSolverOptions,
  dampening,
  maxDampening,
  blockSize,
  rangeSearch,
  factorPrecision,
  backend: backendOption.optional(),
  signal: signalOption.optional(),
});
