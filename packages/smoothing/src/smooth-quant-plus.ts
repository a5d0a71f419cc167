import { checkOptions, type Quantizer, type StepContext, type StepWarning } from '@bitsmith/core';
import { defaultBackend, type Backend } from '@bitsmith/linalg';
import { groupInputs, layerStatesFromBlock, selectFoldableGroups, throwIfAborted, draftStepContext, schemeMismatchWarnings } from './block-step.js';
import { inputAbsMax, weightColumnAbsMax } from './channel-statistics.js';
import { foldInputScales } from './fold-scales.js';
import { createOutputErrorMeter } from './output-error-meter.js';
import { resolveQuantizationTarget, type QuantizationTarget } from './quantization-target.js';
import { smoothQuantScales } from './smooth-quant-scales.js';
import { smoothQuantPlusOptionsSchema } from './smoothing-options.js';
import { searchSmoothingScales } from './smoothing-loss.js';

/** Options of {@link smoothQuantPlus}. The format and granularity must be those of the quantize step that follows. */
export interface SmoothQuantPlusOptions extends QuantizationTarget {
  /** Candidate migration strengths in [0, 1]. Default 0, 0.05, ..., 1 (21 values). */
  alphas?: readonly number[];
  /** Also try `s = 1` (no smoothing), so a group is only scaled when some alpha beats plain quantization. Default true. */
  includeIdentity?: boolean;
  /** Calibration tokens requested from the runner (`inputs` statistic). Default 4096. */
  maxTokens?: number;
  /** Backend for the GEMMs. Default `await defaultBackend()`. */
  backend?: Backend;
}

/** The default alpha grid of {@link smoothQuantPlus}: 0, 0.05, ..., 1. */
export const SMOOTHQUANT_PLUS_ALPHAS: readonly number[] = Array.from({ length: 21 }, (_, i) => i / 20);

/**
 * SmoothQuant+ (Pan et al., arXiv:2312.03788): SmoothQuant's scale `s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`
 * with `alpha` chosen per input group by the calibration loss of weight-only quantization, the output MSE
 * `sum ||X W^T - (X/s) Q(W diag(s))^T||^2` of the group's quantized linears (as in {@link awq}). The best scale is
 * folded into the producer and the linears (the float model is unchanged). It does not quantize: follow it with
 * `rtn` or `gptq` at the same format and granularity.
 *
 * Requires `{ kind: 'inputs', maxTokens }`.
 *
 * @param options `format` (required), `granularity` (core default), `alphas` (0..1 step 0.05), `includeIdentity` (true), `maxTokens` (4096),
 *   `backend` (`defaultBackend()`).
 * @throws InvalidArgumentError naming the offending option.
 * @example
 * ```ts
 * const recipe = [
 *   smoothQuantPlus({ format: 'int4', granularity: { type: 'group', size: 128 } }),
 *   rtn({ format: 'int4', granularity: { type: 'group', size: 128 } }),
 * ];
 * ```
 */
export function smoothQuantPlus(options: SmoothQuantPlusOptions): Quantizer {
  checkOptions('smoothQuantPlus', smoothQuantPlusOptionsSchema, options);
  const quantize = resolveQuantizationTarget(options);
  const alphas = options.alphas ?? SMOOTHQUANT_PLUS_ALPHAS;
  const includeIdentity = options.includeIdentity ?? true;
  const maxTokens = options.maxTokens ?? 4096;
  return {
    specificationVersion: 'v2',
    id: 'smoothquant-plus',
    kind: 'transform',
    scope: 'layer',
    requires: [{ kind: 'inputs', maxTokens }],
    async run(given: StepContext) {
      // Step contract v2: fold into a draft of the block; the changes outside the layers return as model edits.
      const { context, edits } = draftStepContext(given);
      const backend = options.backend ?? (await defaultBackend());
      const check = (): void => throwIfAborted(context.signal);
      check();
      const warnings: StepWarning[] = [];
      if (!context.block) warnings.push({ step: 'smoothquant-plus', message: 'no block in the step context: nothing to fold into; layers left unchanged' });
      const { groups, warnings: selectionWarnings } = selectFoldableGroups(context, 'smoothquant-plus');
      warnings.push(...selectionWarnings, ...schemeMismatchWarnings(context, 'smoothquant-plus', quantize));
      for (const [i, group] of groups.entries()) {
        check();
        const first = group.linears[0]!.name;
        const inputs = groupInputs(context, group.linears);
        if (!inputs || inputs.shape[0] === 0) {
          warnings.push({ step: 'smoothquant-plus', layer: first, message: 'no calibration inputs captured for this input group; skipped' });
        } else {
          const weights = group.linears.map((l) => l.weight);
          const xMax = inputAbsMax(inputs);
          const wMax = weightColumnAbsMax(weights);
          const meter = await createOutputErrorMeter(inputs, { backend, maxTokens });
          const candidate = (k: number): Float32Array => (k < alphas.length ? smoothQuantScales(xMax, wMax, alphas[k]!) : new Float32Array(xMax.length).fill(1));
          const best = await searchSmoothingScales(weights, includeIdentity ? alphas.length + 1 : alphas.length, candidate, meter, quantize, check);
          if (best.scales.some((v) => v !== 1)) foldInputScales(group, best.scales);
        }
        context.progress?.(i + 1, groups.length, first);
      }
      return { layers: layerStatesFromBlock(context), warnings, edits: edits() };
    },
  };
}
