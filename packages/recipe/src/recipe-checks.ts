import { assertFinite, InvalidArgumentError, largestScale, scaleRangeAnomalies, type LayerState, type LinearInputCallback, type Matrix, type StepWarning } from '@bitsmith/core';
import type { Recipe } from './recipe-types.js';
import { isSelected, matchesAny, type LayerSelector } from './selector.js';

/** A recipe's layer selection does not fit the model: a selector matches no layer, or two quantize steps claim one layer. */
export class RecipeSelectionError extends InvalidArgumentError {
  constructor(argument: string, message: string) {
    super(argument, message);
    this.name = 'RecipeSelectionError';
  }
}

function describe(layers: readonly string[]): string {
  const shown = layers.slice(0, 3).join(', ');
  return `${layers.length} linear layers (${shown}${layers.length > 3 ? ', ...' : ''})`;
}

/**
 * Checks a recipe's selectors against a model's linear layer names before any work: every `targets` / `ignore` /
 * override selector must match at least one layer (a typo would silently quantize nothing, or everything; `ignore`
 * selectors matching `lm_head` are accepted, as the head is never quantized), every layer-level step must select at least one layer, and no
 * layer may be selected by two `quantize` steps (their results would stack silently: the second would quantize the
 * first one's output). Throws a {@link RecipeSelectionError} naming the selector or the layer and both steps.
 *
 * @example
 * ```ts
 * checkRecipeSelection(recipe, model.blocks.flatMap((b) => b.linears.map((l) => l.name)));
 * ```
 */
export function checkRecipeSelection(recipe: Recipe, layerNames: readonly string[]): void {
  const check = (where: string, selectors: readonly LayerSelector[] | undefined) => {
    for (const s of selectors ?? []) {
      // `ignore: [lm_head]` (llm-compressor's habit) is always true: the head is no block linear and is never quantized.
      if (where.endsWith('ignore') && matchesAny('lm_head', [s])) continue;
      if (!layerNames.some((name) => matchesAny(name, [s]))) {
        throw new RecipeSelectionError(where, `selector '${s}' matches none of the model's ${describe(layerNames)}; expected an exact name, a suffix after a dot (down_proj) or 're:' and a regular expression matching whole names`);
      }
    }
  };
  check('targets', recipe.targets);
  check('ignore', recipe.ignore);
  const claimed = new Map<string, string>();
  recipe.stages.forEach((stage, i) => {
    const id = stage.step.id;
    check(`stages[${i}] (${id}).targets`, stage.targets);
    check(`stages[${i}] (${id}).ignore`, stage.ignore);
    stage.overrides?.forEach((o, j) => check(`stages[${i}] (${id}).overrides[${j}].targets`, o.targets));
    if ((stage.step.scope ?? 'layer') === 'model') return;
    const targets = stage.targets ?? recipe.targets;
    const ignore = stage.ignore ?? recipe.ignore;
    const selected = layerNames.filter((name) => isSelected(name, targets, ignore));
    if (selected.length === 0) throw new RecipeSelectionError(`stages[${i}] (${id})`, `selects no layer: targets and ignore together exclude all of the model's ${describe(layerNames)}`);
    for (const name of selected) {
      const step = stage.overrides?.find((o) => isSelected(name, o.targets, undefined))?.step ?? stage.step;
      if (step.kind !== 'quantize') continue;
      const label = `stages[${i}] (${step.id})`;
      const earlier = claimed.get(name);
      if (earlier) {
        throw new RecipeSelectionError(label, `layer ${name} is already quantized by ${earlier}; two quantize steps on one layer would stack (the second rounds the first one's output). Give them disjoint targets, or use overrides for per-layer schemes`);
      }
      claimed.set(name, label);
    }
  });
}

/**
 * Wraps a linear-input observer so that a NaN or infinity in a block's activations stops the run with a
 * `NonFiniteError` naming the layer whose input holds it and the block, before any statistic is formed from it.
 *
 * @example
 * ```ts
 * await model.runBlock(0, hidden, finiteInputs(0, collector.observe));
 * ```
 */
export function finiteInputs(block: number, observe?: LinearInputCallback): LinearInputCallback {
  return (name, input) => {
    assertFinite(input.data, { what: `the input of ${name} (activations of block ${block})`, shape: input.shape, layer: name });
    return observe?.(name, input);
  };
}

/**
 * A warning for a quantize step's result whose scale encoding damaged groups (see core's `scaleRangeAnomalies`):
 * scales saturated at the encoding's maximum (weights clamped, the group's other weights zeroed), or groups of
 * nonzero weights that all decode to zero. Undefined when nothing was damaged.
 *
 * @param before The float weight given to the step.
 * @example
 * ```ts
 * const w = scaleRangeWarning('rtn', before, state);
 * if (w) warnings.push(w);
 * ```
 */
export function scaleRangeWarning(step: string, before: Matrix, state: LayerState): StepWarning | undefined {
  // The grid the step rounded to: its stored form's (or the deprecated `quantized`).
  const grid = state.stored?.kind === 'grid' ? state.stored.tensor : state.quantized;
  if (!grid || grid.shape[0] !== before.shape[0] || grid.shape[1] !== before.shape[1]) return undefined;
  const a = scaleRangeAnomalies(before, state.weight, grid);
  if (a.clampedGroups === 0 && a.zeroedGroups === 0) return undefined;
  const parts: string[] = [];
  if (a.clampedGroups > 0) {
    parts.push(`${a.clampedGroups} of ${a.groups} groups have a scale clamped at the ${grid.scaleEncoding} maximum ${largestScale(grid.scaleEncoding)} (largest |weight| ${a.largestClampedWeight.toExponential(3)}): their largest weights were clamped`);
  }
  if (a.zeroedGroups > 0) parts.push(`${a.zeroedGroups} of ${a.groups} groups of nonzero weights decode to all zeros`);
  parts.push(`${a.zeroedWeights} nonzero weights became 0`);
  return { step, layer: state.name, message: parts.join('; ') };
}
