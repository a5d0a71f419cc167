import { readFileSync } from 'node:fs';
import { defineStep, InvalidArgumentError } from '@bitsmith/core';
import { bitAllocationStep, type BitPlan } from '@bitsmith/allocate';
import { z } from 'zod';

/**
 * `bit-allocation` as recipe files write it in Node: as `@bitsmith/allocate` defines it, except that `plan` may also be
 * the path of a JSON bit plan (from `computeBitPlan`), relative to the working directory, read when the recipe is
 * parsed. A file that cannot be read or parsed is an `InvalidArgumentError` naming `plan` and the path.
 *
 * @example
 * ```ts
 * parseRecipe('steps:\n  - bit-allocation: { plan: plans/3.5.json }\n  - gptq: {}\n', { 'bit-allocation': bitAllocationFileStep });
 * ```
 */
export const bitAllocationFileStep = defineStep({
  description: bitAllocationStep.description.replace('plan (a bit plan from computeBitPlan)', 'plan (JSON file from computeBitPlan, path relative to the working directory)'),
  options: (bitAllocationStep.options as z.ZodObject).extend({ plan: z.union([z.string(), z.record(z.string(), z.unknown())]).optional() }),
  create: ({ plan, ...rest }: { plan?: string | Record<string, unknown> } & Record<string, unknown>) => {
    let parsed: BitPlan | Record<string, unknown> | undefined = typeof plan === 'string' ? undefined : plan;
    if (typeof plan === 'string') {
      try {
        parsed = JSON.parse(readFileSync(plan, 'utf8')) as BitPlan;
      } catch (cause) {
        throw new InvalidArgumentError('plan', `cannot read the bit plan ${plan} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}); expected a JSON file written by computeBitPlan`);
      }
    }
    return bitAllocationStep.create(bitAllocationStep.options.parse({ ...rest, ...(parsed ? { plan: parsed } : {}) }));
  },
});
