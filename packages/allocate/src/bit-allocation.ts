import { AbortError, checkOptions, InvalidArgumentError, type LayerState, type Quantizer, type StatisticRequest, type StepWarning } from '@bitsmith/core';
import type { Backend } from '@bitsmith/linalg';
import type { AllocationLayer } from './allocation-problem.js';
import { bitAllocationOptionsSchema } from './bit-allocation-options.js';
import { allocateBits, allocationProblem, planAssignment, toBitPlan, type AllocationBudget, type AllocatorName, type BitPlan } from './bit-plan.js';
import { resolveCandidate, type BitCandidate } from './candidate.js';
import type { IlpOptions } from './ilp-allocation.js';
import { layerSensitivities, type SensitivityKind } from './sensitivity.js';

/** Options of {@link bitAllocation}. */
export interface BitAllocationOptions {
  /** Settings a layer may get (needed unless `plan` is given). */
  candidates?: readonly BitCandidate[];
  /** Budget of each block's selected layers (per-block allocation). Default `{ bitsPerWeight: 4 }`. */
  budget?: AllocationBudget;
  /** Default `knapsack`. */
  allocator?: AllocatorName;
  /** Default `hessian-trace`. */
  sensitivity?: SensitivityKind;
  /** A precomputed (global) plan, e.g. from `computeBitPlan`: applied as is, nothing is measured. */
  plan?: BitPlan;
  /** Tokens of sampled inputs for `output-error`. Default 2048. */
  maxTokens?: number;
  ilp?: IlpOptions;
  backend?: Backend;
  /** Receives each block's computed plan (per-block mode). */
  onPlan?: (plan: BitPlan) => void;
}

/**
 * Mixed-precision bit allocation as an `allocate` step: sets `assignment` on each selected layer, which later quantize
 * steps of the block honour (core's `rtn`, and solvers that read assignments).
 * - With `plan`: each layer takes its plan entry (layers missing from the plan keep the quantize step's setting, with a
 *   warning). Use {@link computeBitPlan} for a global budget across blocks (the runner goes block by block, so a global
 *   allocation needs every layer's sensitivity first).
 * - Without: per-block allocation. Each candidate's round-to-nearest error is measured on the block's layers
 *   (`hessian-trace`: `tr(dW H dW^T)` from the runner's Hessian; `output-error`: on sampled inputs), and one candidate
 *   per layer is chosen by `allocator` so that the block's selected layers average at most `budget`.
 *
 * @example
 * ```ts
 * const recipe = [
 *   bitAllocation({ candidates: [2, 3, 4, 8].map((bits) => ({ format: `int${bits}`, granularity: { type: 'group', size: 32 } })), budget: { bitsPerWeight: 3.5 }, allocator: 'ilp' }),
 *   gptq({ format: 'int3', granularity: { type: 'group', size: 32 } }),
 * ];
 * ```
 */
export function bitAllocation(options: BitAllocationOptions): Quantizer {
  checkOptions('bitAllocation', bitAllocationOptionsSchema, options);
  const sensitivity = options.sensitivity ?? 'hessian-trace';
  const allocator = options.allocator ?? 'knapsack';
  const budget = options.budget ?? { bitsPerWeight: 4 };
  const candidates = (options.candidates ?? []).map(resolveCandidate);
  if (!options.plan && candidates.length === 0) throw new InvalidArgumentError('candidates', 'give candidates (or a plan)');
  const requires: StatisticRequest[] = options.plan
    ? []
    : sensitivity === 'hessian-trace'
      ? [{ kind: 'hessian' }]
      : [{ kind: 'inputs', maxTokens: options.maxTokens ?? 2048 }];
  return {
    specificationVersion: 'v2',
    id: 'bit-allocation',
    kind: 'allocate',
    requires,
    async run(context) {
      const warnings: StepWarning[] = [];
      if (options.plan) {
        const plan = options.plan;
        const layers = context.layers.map((layer): LayerState => {
          const entry = plan.layers[layer.name];
          if (!entry) {
            warnings.push({ step: 'bit-allocation', layer: layer.name, message: 'not in the bit plan; keeps the quantize step’s own setting' });
            return layer;
          }
          return { ...layer, assignment: planAssignment(entry) };
        });
        return { layers, warnings };
      }
      const problemLayers: AllocationLayer[] = [];
      for (const layer of context.layers) {
        if (context.signal?.aborted) throw new AbortError();
        const stats = context.statistics(layer.name);
        const opts = await layerSensitivities(layer.weight, stats, candidates, sensitivity, options.backend ? { backend: options.backend } : {});
        problemLayers.push({ name: layer.name, weights: layer.weight.data.length, options: opts });
      }
      const problem = allocationProblem(problemLayers, candidates, budget);
      const allocation = await allocateBits(problem, allocator, options.ilp ? { ilp: options.ilp } : {});
      const plan = toBitPlan(problem, allocation, candidates, { budget, allocator, sensitivity });
      options.onPlan?.(plan);
      return { layers: context.layers.map((layer) => ({ ...layer, assignment: planAssignment(plan.layers[layer.name]!) })), warnings };
    },
  };
}
