import { InvalidArgumentError, type Matrix, type QuantizableModel } from '@bitsmith/core';
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
    const maxTokens = options.maxTokens ?? 2048;
    let hidden = await model.embed(calibration);
    for (const block of model.blocks) {
      const hessians = new Map<string, { h: Float64Array; tokens: number }>();
      const samples = new Map<string, { data: Float32Array; rows: number; columns: number }>();
      const next = await model.runBlock(block.index, hidden, async (name: string, input: Matrix) => {
        if (!select(name)) return;
        const [rows, columns] = input.shape;
        if (sensitivity === 'hessian-trace') {
          let acc = hessians.get(name);
          if (!acc) hessians.set(name, (acc = { h: new Float64Array(columns * columns), tokens: 0 }));
          await backend.gram({ rows, columns, x: input.data, h: acc.h });
          acc.tokens += rows;
        } else {
          let s = samples.get(name);
          if (!s) samples.set(name, (s = { data: new Float32Array(maxTokens * columns), rows: 0, columns }));
          const take = Math.min(rows, maxTokens - s.rows);
          if (take > 0) s.data.set(input.data.subarray(0, take * columns), s.rows * columns);
          s.rows += Math.max(take, 0);
        }
      });
      for (const view of block.linears) {
        if (!select(view.name)) continue;
        const acc = hessians.get(view.name);
        if (acc) for (let i = 0; i < acc.h.length; i++) acc.h[i] = acc.h[i]! / Math.max(1, acc.tokens);
        const s = samples.get(view.name);
        const stats = {
          ...(acc ? { hessian: acc.h } : {}),
          ...(s ? { inputs: { dtype: 'float32' as const, shape: [s.rows, s.columns] as const, data: s.data.subarray(0, s.rows * s.columns) } } : {}),
        };
        const opts = await layerSensitivities(view.weight, stats, candidates, sensitivity, { backend });
        problemLayers.push({ name: view.name, weights: view.weight.data.length, options: opts });
      }
      hidden = next;
    }
  }
  const problem = allocationProblem(problemLayers, candidates, options.budget);
  const allocator = options.allocator ?? 'knapsack';
  const allocation = await allocateBits(problem, allocator, options.ilp ? { ilp: options.ilp } : {});
  return toBitPlan(problem, allocation, candidates, { budget: options.budget, allocator, sensitivity });
}
