import { z } from 'zod';
import { backendOption, callbackOption, factoryOptions, formatOption, granularityOption } from '@bitsmith/core';
import type { BitAllocationOptions } from './bit-allocation.js';
import type { BitPlan } from './bit-plan.js';
import type { IlpOptions } from './ilp-allocation.js';

// The bit-allocation option schemas, each field defined once: the `bit-allocation` recipe step and bitAllocation()
// both use them, so a wrong value reads the same from a recipe file and from code.

/** The allocator: greedy, knapsack, ilp or baq. */
export const allocatorOption = z.enum(['greedy', 'knapsack', 'ilp', 'baq']);

/** The sensitivity measure: hessian-trace or output-error. */
export const sensitivityOption = z.enum(['hessian-trace', 'output-error']);

/** A precomputed bit plan (from `computeBitPlan`). */
export const planOption = z.custom<BitPlan>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), { message: 'expected a bit plan object (from computeBitPlan)' });

/** The budget objects: `{ bitsPerWeight }` (stored bits), `{ codeBitsPerWeight }` (code bits alone) or `{ bytes }`. */
export const budgetObjectOptions = [
  z.strictObject({ bitsPerWeight: z.number().positive() }),
  z.strictObject({ codeBitsPerWeight: z.number().positive() }),
  z.strictObject({ bytes: z.number().positive() }),
] as const;

/** A candidate's optional label. */
export const candidateLabelOption = z.string();

const ilpSchema = factoryOptions<IlpOptions>({
  solver: z.enum(['auto', 'highs', 'branch-and-bound']).optional(),
  loadHighs: callbackOption<NonNullable<IlpOptions['loadHighs']>>().optional(),
});

/** What {@link bitAllocation} checks its options with. */
export const bitAllocationOptionsSchema = factoryOptions<BitAllocationOptions>({
  candidates: z.array(z.strictObject({ format: formatOption, granularity: granularityOption.optional(), label: candidateLabelOption.optional() })).min(1).optional(),
  budget: z.union(budgetObjectOptions).optional(),
  allocator: allocatorOption.optional(),
  sensitivity: sensitivityOption.optional(),
  plan: planOption.optional(),
  maxTokens: z.number().int().positive().optional(),
  ilp: ilpSchema.optional(),
  backend: backendOption.optional(),
  onPlan: callbackOption<(plan: BitPlan) => void>().optional(),
});
