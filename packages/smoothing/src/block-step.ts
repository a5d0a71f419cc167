import { AbortError, draftBlock, modelEditsOf, type InputGroup, type ModelEdit, type QuantizeOptions, type LayerState, type LinearView, type Matrix, type StepContext, type StepWarning } from '@bitsmith/core';

/** Throws core's `AbortError` when `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError();
}

/**
 * The input groups of `context.block` that a smoothing step may scale: those whose producer can take the scale (a
 * norm or a linear, not `none`) and whose linears are all among the selected `context.layers` (matched by name).
 * A group with only some of its linears selected is skipped with a warning (scaling it would change unselected layers),
 * and so is a group where a linear has a run-time input transform (an online Hadamard from a rotation): a per-channel
 * scale does not commute with it, so folding it would change the model.
 */
export function selectFoldableGroups(context: StepContext, step: string): { groups: InputGroup[]; warnings: StepWarning[] } {
  const groups: InputGroup[] = [];
  const warnings: StepWarning[] = [];
  const block = context.block;
  if (!block) return { groups, warnings };
  const selected = new Set(context.layers.map((l) => l.name));
  for (const group of block.inputGroups) {
    if (group.producer.kind === 'none') continue;
    const inside = group.linears.filter((l) => selected.has(l.name));
    if (inside.length === 0) continue;
    if (inside.length < group.linears.length) {
      const missing = group.linears.filter((l) => !selected.has(l.name)).map((l) => l.name);
      warnings.push({ step, layer: inside[0]!.name, message: `input group skipped: it shares its input with unselected layers ${missing.join(', ')}` });
      continue;
    }
    const transformed = group.linears.find((l) => l.inputTransform);
    if (transformed) {
      warnings.push({ step, layer: transformed.name, message: `input group skipped: ${transformed.name} has a run-time input transform (${transformed.inputTransform!.name}) that a per-channel scale does not commute with` });
      continue;
    }
    groups.push(group);
  }
  return { groups, warnings };
}

/** Calibration inputs of the first linear of `linears` that has them, or undefined. */
export function groupInputs(context: StepContext, linears: readonly { readonly name: string }[]): Matrix | undefined {
  for (const l of linears) {
    const inputs = context.statistics(l.name).inputs;
    if (inputs) return inputs;
  }
  return undefined;
}

/**
 * The step's result layers: each selected layer's state with the weight and bias its view in `context.block` now
 * holds. A layer whose view changed loses any `quantized` form it carried (it no longer matches the weight).
 */
export function layerStatesFromBlock(context: StepContext): LayerState[] {
  const views = new Map<string, LinearView>();
  for (const view of context.block?.linears ?? []) views.set(view.name, view);
  return context.layers.map((state) => {
    const view = views.get(state.name);
    if (!view || (view.weight === state.weight && view.bias === state.bias)) return state;
    return { name: state.name, weight: view.weight, ...(view.bias ? { bias: view.bias } : {}) };
  });
}

/**
 * The step context with a draft of `context.block` (core's `draftBlock`) in place of the block, for a smoothing step to
 * fold its scales into (step contract v2: the model's views are never written), and `edits()`, the model edits that
 * turn the block into the draft for the tensors outside the step's layers (norms, an unselected producing linear, run-time
 * input transforms). The selected layers' new weights and biases travel in their states ({@link layerStatesFromBlock}
 * of the draft context). Without a block: the context itself and no edits.
 *
 * @example
 * ```ts
 * const { context: draft, edits } = draftStepContext(context);
 * foldInputScales(draft.block!.inputGroups[0]!, scales);
 * return { layers: layerStatesFromBlock(draft), warnings, edits: edits() };
 * ```
 */
export function draftStepContext(context: StepContext): { context: StepContext; edits: () => ModelEdit[] } {
  const original = context.block;
  if (!original) return { context, edits: () => [] };
  const block = draftBlock(original);
  return { context: { ...context, block }, edits: () => modelEditsOf(original, block, { except: context.layers.map((l) => l.name) }) };
}

/**
 * Warnings for the layers whose resolved scheme (`context.scheme(layer)`: the recipe's quantize step for the layer,
 * bit plan included) differs in format or granularity from the quantization this smoothing step searched for: its
 * scales were then chosen for another quantizer. One warning per distinct mismatch, naming the first layer and the
 * count. None when the runner gives no scheme.
 *
 * @example
 * ```ts
 * warnings.push(...schemeMismatchWarnings(context, 'awq', resolveQuantizationTarget({ format: 'int4' })));
 * ```
 */
export function schemeMismatchWarnings(context: StepContext, step: string, target: QuantizeOptions): StepWarning[] {
  if (!context.scheme) return [];
  const describe = (format: unknown, granularity: unknown): string => `${JSON.stringify(format)} ${JSON.stringify(granularity ?? 'default')}`;
  const searched = describe(target.format, target.granularity);
  const mismatches = new Map<string, string[]>();
  for (const layer of context.layers) {
    const scheme = context.scheme(layer.name);
    if (!scheme) continue;
    const resolved = describe(scheme.format, scheme.granularity);
    if (resolved === searched) continue;
    if (!mismatches.has(resolved)) mismatches.set(resolved, []);
    mismatches.get(resolved)!.push(layer.name);
  }
  return [...mismatches].map(([resolved, layers]) => ({
    step,
    layer: layers[0]!,
    message: `searched its scales for ${searched}, but the quantize step of ${layers.length === 1 ? 'this layer' : `this layer and ${layers.length - 1} more`} uses ${resolved}${context.scheme!(layers[0]!)?.source === 'assignment' ? ' (a bit plan)' : ''}; give it the same format and granularity`,
  }));
}
