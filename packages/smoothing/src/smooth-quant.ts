import { checkOptions, type Quantizer, type StepContext, type StepWarning } from '@bitsmith/core';
import { groupInputs, layerStatesFromBlock, selectFoldableGroups, throwIfAborted, draftStepContext } from './block-step.js';
import { inputAbsMax, weightColumnAbsMax } from './channel-statistics.js';
import { foldInputScales } from './fold-scales.js';
import { smoothQuantScales } from './smooth-quant-scales.js';
import { smoothQuantOptionsSchema } from './smoothing-options.js';

/** Options of {@link smoothQuant}. */
export interface SmoothQuantOptions {
  /** Migration strength in [0, 1]: 0 leaves activations alone, 1 moves all their range into the weights. Default 0.5. */
  alpha?: number;
}

/**
 * SmoothQuant (Xiao et al., arXiv:2211.10438) as a block-level transform: for each input group of `context.block`
 * with a norm or linear producer and all its linears selected, `s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`
 * (`max|W_j|` over the group's linears) is folded into the producer and the linears, moving activation outliers into
 * the weights so activations quantize better (W8A8). The float model is unchanged. It does not quantize.
 *
 * Requires `{ kind: 'input-absmax' }` (falls back to raw `inputs` when the runner gave those instead).
 *
 * @param options `alpha` (0.5).
 * @throws InvalidArgumentError naming `alpha` when it is outside [0, 1].
 * @example
 * ```ts
 * const recipe = [smoothQuant({ alpha: 0.5 }), rtn({ format: 'int8' })];
 * ```
 */
export function smoothQuant(options: SmoothQuantOptions = {}): Quantizer {
  checkOptions('smoothQuant', smoothQuantOptionsSchema, options);
  const alpha = options.alpha ?? 0.5;
  return {
    specificationVersion: 'v2',
    id: 'smoothquant',
    kind: 'transform',
    scope: 'layer',
    requires: [{ kind: 'input-absmax' }],
    async run(given: StepContext) {
      // Step contract v2: fold into a draft of the block; the changes outside the layers return as model edits.
      const { context, edits } = draftStepContext(given);
      throwIfAborted(context.signal);
      const warnings: StepWarning[] = [];
      if (!context.block) warnings.push({ step: 'smoothquant', message: 'no block in the step context: nothing to fold into; layers left unchanged' });
      const { groups, warnings: selectionWarnings } = selectFoldableGroups(context, 'smoothquant');
      warnings.push(...selectionWarnings);
      for (const [i, group] of groups.entries()) {
        throwIfAborted(context.signal);
        const first = group.linears[0]!.name;
        let absMax = group.linears.map((l) => context.statistics(l.name).inputAbsMax).find((v) => v !== undefined);
        if (!absMax) {
          const inputs = groupInputs(context, group.linears);
          if (inputs) absMax = inputAbsMax(inputs);
        }
        if (!absMax) {
          warnings.push({ step: 'smoothquant', layer: first, message: 'no input-absmax statistic for this input group; skipped' });
        } else {
          foldInputScales(group, smoothQuantScales(absMax, weightColumnAbsMax(group.linears.map((l) => l.weight)), alpha));
        }
        context.progress?.(i + 1, groups.length, first);
      }
      return { layers: layerStatesFromBlock(context), warnings, edits: edits() };
    },
  };
}
