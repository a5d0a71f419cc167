import { calibrationBlocks, InvalidArgumentError, type QuantizableModel, type StatisticRequest } from '@bitsmith/core';
import { defaultBackend, type Backend } from '@bitsmith/linalg';
import type { AllocationLayer } from './allocation-problem.js';
import { allocateBits, allocationProblem, toBitPlan, type AllocationBudget, type AllocatorName, type BitPlan } from './bit-plan.js';
import { quantizeCandidate, resolveCandidate, type BitCandidate } from './candidate.js';
import type { IlpOptions } from './ilp-allocation.js';
import { klSensitivities } from './kl-sensitivity.js';
import { layerSensitivities, type SensitivityKind } from './sensitivity.js';

/** Options of {@link computeBitPlan}. */
export interface ComputeBitPlanOptions {
  candidates: readonly BitCandidate[];
  budget: AllocationBudget;
  /** Default `knapsack`. */
  allocator?: AllocatorName;
  /** `hessian-trace` (default), `output-error`, or `kl` (end-to-end, see {@link klSensitivities}). */
  sensitivity?: SensitivityKind | 'kl';
  /** Which linear layers to allocate (default: every layer of every block). */
  select?: (name: string) => boolean;
  /** Tokens of sampled inputs per layer for `output-error`. Default 2048. */
  maxTokens?: number;
  ilp?: IlpOptions;
  backend?: Backend;
}

/**
 * A global bit plan for a whole model: one sensitivity pass over the float model (calibration sequences through every
 * block; per layer the Hessian `X^T X / N` or sampled inputs are gathered and each candidate's round-to-nearest error
 * measured), then one allocation over all layers under the budget. The model is not modified. Hand the plan to
 * `bitAllocation({ plan })` in a recipe (or save it as JSON and edit it). The plan is measured on the weights as they
 * are now: run model-level transforms (rotations) first if the recipe has them.
 *
 * @param calibration - Token sequences (each starting with BOS), as for `runRecipe`.
 * @example
 * ```ts
 * const plan = await computeBitPlan(model, sequences, { candidates, budget: { bitsPerWeight: 3.5 }, allocator: 'ilp' });
 * await runRecipe(model, [bitAllocation({ plan }), gptq({ format: 'int3', granularity: { type: 'group', size: 32 } })], sequences);
 * ```
 */
export async function computeBitPlan(model: QuantizableModel, calibration: readonly ArrayLike<number>[], options: ComputeBitPlanOptions): Promise<BitPlan> {
  if (calibration.length === 0) throw new InvalidArgumentError('calibration', 'needs at least one token sequence');
  const candidates = options.candidates.map(resolveCandidate);
  const sensitivity = options.sensitivity ?? 'hessian-trace';
  const select = options.select ?? (() => true);
  const backend = options.backend ?? (await defaultBackend());
  const problemLayers: AllocationLayer[] = [];
  if (sensitivity === 'kl') {
    const names = model.blocks.flatMap((b) => b.linears.map((l) => l.name)).filter(select);
    const kl = await klSensitivities(model, calibration, candidates, { layers: names });
    const views = new Map(model.blocks.flatMap((b) => b.linears.map((l) => [l.name, l] as const)));
    for (const name of names) {
      const weight = views.get(name)!.weight;
      problemLayers.push({ name, weights: weight.data.length, options: candidates.map((c, i) => ({ bits: quantizeCandidate(weight, c).bits, error: kl.get(name)![i]! })) });
    }
  } else {
    // The float model's statistics, block by block through core's calibration driver (one batched pass per block,
    // its output propagated as the next block's input): Hessians for `hessian-trace`, sampled inputs otherwise.
    const maxTokens = options.maxTokens ?? 2048;
    const requests: StatisticRequest[] = sensitivity === 'hessian-trace' ? [{ kind: 'hessian' }] : [{ kind: 'inputs', maxTokens }];
    for await (const step of calibrationBlocks(model, calibration, { kernels: backend, propagate: 'captured' })) {
      const selected = step.block.linears.filter((view) => select(view.name));
      const collector = await step.collect(requests, new Set(selected.map((view) => view.name)));
      for (const view of selected) {
        const opts = await layerSensitivities(view.weight, collector.statistics(view.name), candidates, sensitivity, { backend });
        problemLayers.push({ name: view.name, weights: view.weight.data.length, options: opts });
      }
    }
  }
  const problem = allocationProblem(problemLayers, candidates, options.budget);
  const allocator = options.allocator ?? 'knapsack';
  const allocation = await allocateBits(problem, allocator, options.ilp ? { ilp: options.ilp } : {});
  return toBitPlan(problem, allocation, candidates, { budget: options.budget, allocator, sensitivity });
}
