import { elementCodec, formatName, granularityLabel, InvalidArgumentError, parseFormat, type Granularity, type LayerAssignment } from '@bitsmith/core';
import type { Allocation, AllocationLayer, AllocationProblem } from './allocation-problem.js';
import { baqAllocation } from './baq-allocation.js';
import type { ResolvedCandidate } from './candidate.js';
import { greedyAllocation } from './greedy-allocation.js';
import { ilpAllocation, type IlpOptions } from './ilp-allocation.js';
import { knapsackAllocation } from './knapsack-allocation.js';

/**
 * A size budget over the allocated layers:
 * - `bitsPerWeight`: average stored bits per weight, counting codes, scales and zero points (int3 g32 with fp16 scales
 *   is 3.5);
 * - `codeBitsPerWeight`: average bits of the codes alone, what papers call "3.5 average bits" (int3 is 3, int4 is 4,
 *   whatever the granularity); the plan still reports the stored bits;
 * - `bytes`: total bytes of the stored weights.
 */
export type AllocationBudget = { readonly bitsPerWeight: number } | { readonly codeBitsPerWeight: number } | { readonly bytes: number };

/** Allocator names. */
export type AllocatorName = 'greedy' | 'knapsack' | 'ilp' | 'baq';

/** One layer's entry of a bit plan. `format` is a core format name (`int3`), so plans are plain, editable JSON. */
export interface BitPlanEntry {
  label: string;
  format: string;
  granularity?: Granularity;
  bitsPerWeight: number;
  /** The sensitivity of this layer at this setting (in the plan's sensitivity units). */
  error: number;
}

/** A bit plan: plain JSON that users can read, edit and hand to the `bitAllocation` step. */
export interface BitPlan {
  budget: AllocationBudget;
  allocator: AllocatorName;
  sensitivity?: string;
  /** Average stored bits per weight of the plan over its layers (codes, scales, zero points). */
  averageBitsPerWeight?: number;
  /** Average bits of the codes alone (set for a `codeBitsPerWeight` budget). */
  averageCodeBitsPerWeight?: number;
  layers: Record<string, BitPlanEntry>;
}

/**
 * The budget in whole bits for `weights` weights (floored, so a plan within it never exceeds the budget).
 *
 * @example
 * ```ts
 * budgetBits({ bitsPerWeight: 3.5 }, 1_000); // 3500
 * ```
 */
export function budgetBits(budget: AllocationBudget, weights: number): number {
  if ('bitsPerWeight' in budget) {
    if (!(budget.bitsPerWeight > 0)) throw new InvalidArgumentError('budget.bitsPerWeight', `expected a positive number, got ${budget.bitsPerWeight}`);
    return Math.floor(budget.bitsPerWeight * weights + 1e-9);
  }
  if ('codeBitsPerWeight' in budget) {
    if (!(budget.codeBitsPerWeight > 0)) throw new InvalidArgumentError('budget.codeBitsPerWeight', `expected a positive number, got ${budget.codeBitsPerWeight}`);
    return Math.floor(budget.codeBitsPerWeight * weights + 1e-9);
  }
  if (!(budget.bytes > 0)) throw new InvalidArgumentError('budget.bytes', `expected a positive number, got ${budget.bytes}`);
  return Math.floor(budget.bytes * 8);
}

/**
 * The allocation problem for `layers` (options measured in stored bits, in the candidates' order) under `budget`: for a
 * `codeBitsPerWeight` budget each option's cost becomes its code bits (the format's bit width times the weights) and
 * its stored bits are kept in `storedBits` for the plan.
 *
 * @example
 * ```ts
 * const problem = allocationProblem(layers, candidates, { codeBitsPerWeight: 3.5 });
 * ```
 */
export function allocationProblem(layers: readonly AllocationLayer[], candidates: readonly ResolvedCandidate[], budget: AllocationBudget): AllocationProblem {
  const weights = layers.reduce((a, l) => a + l.weights, 0);
  if ('codeBitsPerWeight' in budget) {
    const labels = new Set(candidates.map((c) => granularityLabel(c.granularity ?? { type: 'channel' })));
    if (labels.size > 1)
      throw new InvalidArgumentError('budget.codeBitsPerWeight', `counts only the codes, so every candidate needs the same granularity (scales would be free); got ${[...labels].join(', ')}. Use bitsPerWeight to mix granularities`);
  }
  const problemLayers =
    'codeBitsPerWeight' in budget
      ? layers.map((layer) => ({
          ...layer,
          options: layer.options.map((o, i) => ({ bits: elementCodec(candidates[i]!.format).bits * layer.weights, error: o.error, storedBits: o.storedBits ?? o.bits })),
        }))
      : layers;
  return { layers: problemLayers, budgetBits: budgetBits(budget, weights) };
}

/**
 * Runs the named allocator on a problem.
 *
 * @example
 * ```ts
 * const { choice } = await allocateBits(problem, 'knapsack');
 * ```
 */
export async function allocateBits(problem: AllocationProblem, allocator: AllocatorName, options: { ilp?: IlpOptions } = {}): Promise<Allocation> {
  switch (allocator) {
    case 'greedy':
      return greedyAllocation(problem);
    case 'knapsack':
      return knapsackAllocation(problem);
    case 'ilp':
      return ilpAllocation(problem, options.ilp);
    case 'baq':
      return baqAllocation(problem);
    default:
      throw new InvalidArgumentError('allocator', `unknown allocator '${allocator as string}'; expected greedy, knapsack, ilp or baq`);
  }
}

/**
 * Turns an allocation into a bit plan.
 *
 * @example
 * ```ts
 * const plan = toBitPlan(problem, allocation, candidates, { budget: { bitsPerWeight: 3.5 }, allocator: 'knapsack' });
 * ```
 */
export function toBitPlan(
  problem: AllocationProblem,
  allocation: Allocation,
  candidates: readonly ResolvedCandidate[],
  meta: { budget: AllocationBudget; allocator: AllocatorName; sensitivity?: string },
): BitPlan {
  const layers: Record<string, BitPlanEntry> = {};
  let weights = 0;
  let stored = 0;
  problem.layers.forEach((layer, l) => {
    const c = allocation.choice[l]!;
    const candidate = candidates[c]!;
    const option = layer.options[c]!;
    layers[layer.name] = {
      label: candidate.label,
      format: formatName(candidate.format),
      ...(candidate.granularity ? { granularity: candidate.granularity } : {}),
      bitsPerWeight: (option.storedBits ?? option.bits) / layer.weights,
      error: option.error,
    };
    weights += layer.weights;
    stored += option.storedBits ?? option.bits;
  });
  const codes = 'codeBitsPerWeight' in meta.budget ? { averageCodeBitsPerWeight: weights > 0 ? allocation.bits / weights : 0 } : {};
  return { ...meta, averageBitsPerWeight: weights > 0 ? stored / weights : 0, ...codes, layers };
}

/**
 * The assignment (core's `LayerAssignment`) of a plan entry, which quantize steps honour.
 *
 * @example
 * ```ts
 * const assignment = planAssignment(plan.layers['model.layers.0.mlp.down_proj']!);
 * ```
 */
export function planAssignment(entry: BitPlanEntry): LayerAssignment {
  return { format: parseFormat(entry.format), ...(entry.granularity ? { granularity: entry.granularity } : {}), label: entry.label };
}
