import { z } from 'zod';
import { defineStep, definedOptions, resolveQuantization } from '@bitsmith/core';
import { allocatorOption, budgetObjectOptions, candidateLabelOption, planOption, sensitivityOption } from './bit-allocation-options.js';
import { bitAllocation } from './bit-allocation.js';
import type { BitPlan } from './bit-plan.js';
import type { BitCandidate } from './candidate.js';

/** A bit-allocation candidate in a recipe file: a format name (`int3`, `nf4`) or `{ bits | format, groupSize?, symmetric? }`. */
const candidateOption = z.union([
  z.string(),
  z.strictObject({
    bits: z.number().int().min(1).max(8).optional(),
    format: z.string().optional(),
    symmetric: z.boolean().optional(),
    groupSize: z.number().int().positive().optional(),
    granularity: z.enum(['tensor', 'channel']).optional(),
    label: candidateLabelOption.optional(),
  }),
]);

function toCandidate(c: z.infer<typeof candidateOption>): BitCandidate {
  if (typeof c === 'string') return { format: c };
  const { format, granularity } = resolveQuantization(definedOptions({ bits: c.bits, format: c.format, symmetric: c.symmetric, groupSize: c.groupSize, granularity: c.granularity }));
  return { format, ...(granularity ? { granularity } : {}), ...(c.label ? { label: c.label } : {}) };
}

/**
 * The `bit-allocation` recipe step ({@link bitAllocation}): a mixed-precision bit plan from `candidates`
 * (`[int3 | { bits, groupSize }]`) under a `budget` (stored bits per weight, `{ codeBitsPerWeight }` or `{ bytes }`)
 * with an `allocator` greedy|knapsack|ilp|baq and a `sensitivity` hessian-trace|output-error, or a fixed `plan` (a
 * {@link BitPlan} object: the CLI's registry reads it from a JSON file path).
 *
 * @example
 * ```ts
 * const step = bitAllocationStep.create(bitAllocationStep.options.parse({ candidates: ['int3', 'int4'], budget: 3.5 }));
 * ```
 */
export const bitAllocationStep = defineStep({
  description:
    'mixed-precision bit plan (@bitsmith/allocate): candidates [int3 | { bits, groupSize }], budget (stored bits per weight) or { codeBitsPerWeight } (bits of the codes alone: int3 = 3) or { bytes }, allocator greedy|knapsack|ilp|baq, sensitivity hessian-trace|output-error, plan (a bit plan from computeBitPlan)',
  options: z.strictObject({
    candidates: z.array(candidateOption).min(1).optional(),
    budget: z.union([z.number().positive(), ...budgetObjectOptions]).optional(),
    allocator: allocatorOption.optional(),
    sensitivity: sensitivityOption.optional(),
    plan: planOption.optional(),
  }),
  create: ({ candidates, budget, allocator, sensitivity, plan }) => {
    if (!plan && !candidates) throw new Error('bit-allocation needs candidates or a plan');
    return bitAllocation({
      ...(candidates ? { candidates: candidates.map(toCandidate) } : {}),
      ...(budget !== undefined ? { budget: typeof budget === 'number' ? { bitsPerWeight: budget } : budget } : {}),
      ...definedOptions({ allocator, sensitivity }),
      ...(plan ? { plan } : {}),
    });
  },
});
