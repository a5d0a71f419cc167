import { ModelEditError } from './errors.js';
import { hasLanguageModelHead, type LanguageModelHead } from './language-model-head.js';
import type { BlockView, LinearView, ModelView, NormView, RuntimeInputTransform } from './model-view.js';
import type { Quantizer, StepResult } from './quantizer.js';
import type { Matrix } from './tensor.js';

/**
 * One change a step makes to the model outside the layer states it returns (step contract v2): folding a scale into
 * a norm or a producing linear, rotating the embedding and the head, installing a run-time input transform. Steps
 * return a list of these in `StepResult.edits`; the runner applies them once, with {@link applyModelEdits}, and
 * refuses writes through the views it handed the step (`ModelEditError`).
 *
 * `target` is a full module name (`model.layers.0.input_layernorm`, `model.layers.0.mlp.up_proj`, `lm_head`). Every
 * edit that sets a tensor takes a new array: the arrays the model holds are never written in place.
 */
export type ModelEdit =
  /** Replace a linear's weight (same shape `[outFeatures, inFeatures]`). */
  | { readonly kind: 'set-weight'; readonly target: string; readonly weight: Matrix }
  /** Replace (or remove, with `undefined`) a linear's bias. */
  | { readonly kind: 'set-bias'; readonly target: string; readonly bias: Float32Array | undefined }
  /** Replace (or remove) a linear's run-time input transform (an online Hadamard, a channel shift, an activation quantizer). */
  | { readonly kind: 'set-input-transform'; readonly target: string; readonly transform: RuntimeInputTransform | undefined }
  /** Replace a norm's per-channel weight (gain), same length. */
  | { readonly kind: 'set-norm-weight'; readonly target: string; readonly weight: Float32Array }
  /** Replace a norm's bias (LayerNorm), same length. */
  | { readonly kind: 'set-norm-bias'; readonly target: string; readonly bias: Float32Array | undefined }
  /**
   * Divide a norm's output channel `j` by `divisor[j]`: its gain becomes `(gainOffset + w_j) / s_j - gainOffset` and
   * its bias `b_j / s_j` (folding a smoothing scale into the norm, SmoothQuant eq. 3).
   */
  | { readonly kind: 'scale-norm'; readonly target: string; readonly divisor: Float32Array }
  /** Replace the token embedding table (model-level edits only). */
  | { readonly kind: 'set-embedding'; readonly weight: Matrix }
  /** Give the LM head its own copy of a tied embedding (before an edit that changes one of them; model-level only). */
  | { readonly kind: 'untie-embeddings' };

/** The kinds of {@link ModelEdit}. */
export type ModelEditKind = ModelEdit['kind'];

/** The tensor an edit changes, as `ModelEditError` names it (`model.layers.0.input_layernorm.weight`, `embedding`). */
export function modelEditTensor(edit: ModelEdit): string {
  switch (edit.kind) {
    case 'set-weight':
    case 'set-norm-weight':
    case 'scale-norm':
      return `${edit.target}.weight`;
    case 'set-bias':
    case 'set-norm-bias':
      return `${edit.target}.bias`;
    case 'set-input-transform':
      return `${edit.target}.inputTransform`;
    case 'set-embedding':
      return 'embedding';
    case 'untie-embeddings':
      return 'lm_head.weight';
  }
}

function isModelView(view: ModelView | BlockView): view is ModelView {
  return 'hiddenSize' in view && 'blocks' in view;
}

/** The linears and norms an edit may name, by full name. */
function targetsOf(view: ModelView | BlockView): { linears: Map<string, LinearView>; norms: Map<string, NormView> } {
  const blocks = isModelView(view) ? view.blocks : [view];
  const linears = new Map<string, LinearView>();
  const norms = new Map<string, NormView>();
  for (const block of blocks) {
    for (const l of [...block.linears, ...(block.auxiliaryLinears ?? [])]) linears.set(l.name, l);
    for (const n of block.norms) norms.set(n.name, n);
  }
  if (isModelView(view)) {
    // Only a model with a language-model head has these (an encoder has blocks only).
    if (hasLanguageModelHead(view)) {
      linears.set(view.lmHead.name, view.lmHead);
      norms.set(view.finalNorm.name, view.finalNorm);
    }
  }
  return { linears, norms };
}

/**
 * Applies model edits to a model or a block, in order, each exactly once. Checks each edit before applying it (the
 * target exists, shapes and lengths match, scales are positive and finite) and throws `ModelEditError` naming `step`
 * and the tensor otherwise; edits before a refused one stay applied, so the runner checks the whole list first with
 * `checkOnly` and then applies it.
 *
 * @param view - The model (model-level edits: every block, the final norm, the head, the embedding) or one block.
 * @param edits - The edits, as a step returned them.
 * @param step - Id of the step that returned them, for error messages.
 * @param options - `checkOnly`: validate every edit and change nothing.
 * @example
 * ```ts
 * applyModelEdits(block, [{ kind: 'scale-norm', target: 'model.layers.0.input_layernorm', divisor: s }], 'smoothquant');
 * ```
 */
export function applyModelEdits(view: ModelView | BlockView, edits: readonly ModelEdit[], step: string, options: { checkOnly?: boolean } = {}): void {
  const { linears, norms } = targetsOf(view);
  const apply = options.checkOnly !== true;
  const fail = (edit: ModelEdit, detail: string): never => {
    throw new ModelEditError(step, modelEditTensor(edit), detail);
  };
  const linear = (edit: ModelEdit & { target: string }): LinearView => linears.get(edit.target) ?? fail(edit, `no linear named '${edit.target}' in ${isModelView(view) ? 'the model' : `block ${view.name}`}`);
  const norm = (edit: ModelEdit & { target: string }): NormView => norms.get(edit.target) ?? fail(edit, `no norm named '${edit.target}' in ${isModelView(view) ? 'the model' : `block ${view.name}`}`);
  const sameLength = (edit: ModelEdit, actual: number, expected: number): void => {
    if (actual !== expected) fail(edit, `has length ${actual}; expected ${expected}`);
  };
  for (const edit of edits) {
    switch (edit.kind) {
      case 'set-weight': {
        const l = linear(edit);
        const [rows, columns] = l.weight.shape;
        if (edit.weight.shape[0] !== rows || edit.weight.shape[1] !== columns || edit.weight.data.length !== rows * columns) {
          fail(edit, `has shape [${edit.weight.shape.join(', ')}]; expected [${rows}, ${columns}]`);
        }
        if (apply) l.weight = edit.weight;
        break;
      }
      case 'set-bias': {
        const l = linear(edit);
        if (edit.bias) sameLength(edit, edit.bias.length, l.weight.shape[0]);
        if (apply) l.bias = edit.bias;
        break;
      }
      case 'set-input-transform': {
        const l = linear(edit);
        if (apply) l.inputTransform = edit.transform;
        break;
      }
      case 'set-norm-weight': {
        const n = norm(edit);
        sameLength(edit, edit.weight.length, n.weight.length);
        if (apply) n.weight = edit.weight;
        break;
      }
      case 'set-norm-bias': {
        const n = norm(edit);
        if (edit.bias) sameLength(edit, edit.bias.length, n.weight.length);
        if (apply) {
          if (edit.bias) n.bias = edit.bias;
          else delete n.bias;
        }
        break;
      }
      case 'scale-norm': {
        const n = norm(edit);
        const s = edit.divisor;
        sameLength(edit, s.length, n.weight.length);
        for (let j = 0; j < s.length; j++) if (!(s[j]! > 0 && Number.isFinite(s[j]!))) fail(edit, `divisor ${j} is ${s[j]}; expected a positive finite number`);
        if (!apply) break;
        const offset = n.gainOffset ?? 0;
        const w = new Float32Array(s.length);
        for (let j = 0; j < s.length; j++) w[j] = offset === 0 ? n.weight[j]! / s[j]! : (offset + n.weight[j]!) / s[j]! - offset;
        n.weight = w;
        if (n.bias) {
          const b = new Float32Array(s.length);
          for (let j = 0; j < s.length; j++) b[j] = n.bias[j]! / s[j]!;
          n.bias = b;
        }
        break;
      }
      case 'set-embedding': {
        if (!isModelView(view)) fail(edit, 'the embedding can be edited by model-level steps only');
        if (!hasLanguageModelHead(view)) fail(edit, `${(view as ModelView).architecture} has no language-model head capability (no embedding to set)`);
        const model = view as ModelView & LanguageModelHead;
        const [rows, columns] = model.embedding.shape;
        if (edit.weight.shape[0] !== rows || edit.weight.shape[1] !== columns) fail(edit, `has shape [${edit.weight.shape.join(', ')}]; expected [${rows}, ${columns}]`);
        if (apply) model.embedding = edit.weight;
        break;
      }
      case 'untie-embeddings': {
        if (!isModelView(view)) fail(edit, 'embeddings can be untied by model-level steps only');
        if (!hasLanguageModelHead(view)) fail(edit, `${(view as ModelView).architecture} has no language-model head capability (no embeddings to untie)`);
        if (apply) (view as ModelView & LanguageModelHead).untieEmbeddings();
        break;
      }
      default:
        fail(edit, `unknown model edit kind '${(edit as { kind: string }).kind}'`);
    }
  }
}

/**
 * Applies a step's result to the model or block it ran on, as the recipe runner does: checks and applies its model
 * edits once, then writes each returned layer state's weight (and bias, when set) into the view of the same name. For
 * running a step by hand (`await step.run({ layers, statistics, block })` changes nothing by itself: step contract v2).
 *
 * @example
 * ```ts
 * const result = await hadamardRotation({ seed: 0 }).run({ layers: [], statistics: () => ({ tokens: 0 }), model });
 * applyStepResult(model, result, 'hadamard-rotation');
 * ```
 */
export function applyStepResult(view: ModelView | BlockView, result: StepResult, step = 'step'): void {
  const edits = result.edits ?? [];
  applyModelEdits(view, edits, step, { checkOnly: true });
  applyModelEdits(view, edits, step);
  const { linears } = targetsOf(view);
  for (const state of result.layers) {
    const l = linears.get(state.name);
    if (!l) continue;
    l.weight = state.weight;
    if (state.bias !== undefined) l.bias = state.bias;
  }
}

/**
 * The step, with `run` applying its own result (model edits, then layer states) to the block or model it ran on
 * before returning it (see {@link applyStepResult}): a step run by hand then changes the model as it does under the
 * recipe runner. Not for steps handed to `runRecipe`, which applies results itself.
 *
 * @example
 * ```ts
 * const smooth = applyingResults(smoothQuant({ alpha: 0.5 }));
 * await smooth.run({ layers, statistics, block }); // the norm and the layers now hold the smoothed weights
 * ```
 */
export function applyingResults(step: Quantizer): Quantizer {
  return {
    ...step,
    run: async (context) => {
      const result = await step.run(context);
      applyStepResult((context.block ?? context.model)!, result, step.id);
      return result;
    },
  };
}
