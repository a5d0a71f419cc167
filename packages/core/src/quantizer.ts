import type { ActivationScheme } from './activation-quantization.js';
import type { BlockGradients } from './block-gradients.js';
import type { BlockView, ModelView, ResidentHessian } from './model-view.js';
import type { Granularity } from './granularity.js';
import type { FormatSpec } from './number-format.js';
import type { QuantizedTensor } from './quantized-tensor.js';
import type { StoredForm, StoredKind } from './stored-form.js';
import type { Matrix } from './tensor.js';
import type { ModelEdit } from './model-edit.js';
import type { LayerScheme, WeightScheme } from './layer-scheme.js';

/**
 * The version of the step contract a {@link Quantizer} implements. `'v2'`: steps never write into the model's views;
 * they return new layer states and, where they change the model outside the selected layers (folded scales,
 * rotations), an explicit list of model edits that the runner applies once. The runner refuses any other version with
 * `UnsupportedSpecificationVersionError` (as vercel/ai versions its model specification).
 */
export type StepSpecificationVersion = 'v2';

/** The step-contract version this release of core defines and its runner supports. */
export const STEP_SPECIFICATION_VERSION: StepSpecificationVersion = 'v2';

/** What kind of work a step does; the runner orders steps transform → allocate → quantize → compensate within a block. */
export type StepKind = 'transform' | 'allocate' | 'quantize' | 'compensate';

/** A statistic of a layer's calibration inputs that a step asks the runner to observe. */
export type StatisticRequest =
  /** `H = X^T X` over all calibration tokens, float64 `[in, in]` (GPTQ, QuantEase, allocation proxies). */
  /**
   * `resident: true`: the step also takes the Hessian where a model computed it (a GPU buffer,
   * `LayerStatistics.residentHessian`, see `QuantizableModel.blockHessians`) instead of a float64 host copy.
   */
  | { readonly kind: 'hessian'; readonly resident?: boolean }
  /** Per input channel max |x| (SmoothQuant). */
  | { readonly kind: 'input-absmax' }
  /** Per input channel mean |x| (AWQ). */
  | { readonly kind: 'input-absmean' }
  /** A sample of the raw inputs, at most `maxTokens` rows (AWQ's search, output error). */
  | { readonly kind: 'inputs'; readonly maxTokens?: number }
  /**
   * The asymmetric-calibration cross term `D = (X_float - X)^T X / tokens`, float64 `[in, in]`, where `X` is the
   * layer's input in the model quantized so far (the inputs of the Hessian) and `X_float` its input, token for token,
   * in the float model (GPTAQ, arXiv 2504.02692). Asking for it makes the runner carry the float model's activations
   * beside the quantized ones (one more block pass per block).
   */
  | { readonly kind: 'float-input-cross' };

/** Statistics observed for one layer; only what some step requested is present. */
export interface LayerStatistics {
  /** Tokens observed. */
  readonly tokens: number;
  readonly hessian?: Float64Array;
  /**
   * The Hessian held where the model computed it (only for a step that asked `{ kind: 'hessian', resident: true }`;
   * `hessian` is then absent): use it there, or `read()` it as `hessian` would have been.
   */
  readonly residentHessian?: ResidentHessian;
  readonly inputAbsMax?: Float32Array;
  readonly inputAbsMean?: Float32Array;
  readonly inputs?: Matrix;
  /** `(X_float - X)^T X / tokens`, float64 `[in, in]` (row: float-minus-quantized feature; column: quantized feature). */
  readonly floatInputCross?: Float64Array;
}

/**
 * A per-layer quantization setting chosen by an `allocate` step (one entry of a bit plan). Quantize steps that
 * honour assignments use it instead of their own `format` / `granularity` for that layer.
 */
export interface LayerAssignment {
  readonly format: FormatSpec;
  readonly granularity?: Granularity;
  /** Free-form label of the chosen candidate, for reports (for example `int3-g32`). */
  readonly label?: string;
}

/** The state of one linear layer as steps hand it on. Steps return new states and never mutate the ones they were given. */
export interface LayerState {
  /** Full name, for example `model.layers.0.mlp.down_proj`. */
  readonly name: string;
  /** Current weight `[outFeatures, inFeatures]`: float, or `decodeStored(stored)` after a quantize step. */
  readonly weight: Matrix;
  readonly bias?: Float32Array;
  /**
   * What the layer is as a file would hold it (grid, LUT, codebook, low-rank, sparse outliers, float). Every quantize
   * and compensate step returns one; the runner checks that `decodeStored(stored)` equals `weight` to float32 rounding
   * after every step and throws `StoredFormMismatchError` naming the step and layer otherwise. The runner hands the
   * current stored form to later steps (a compensate step wraps it in a `low-rank` form).
   */
  readonly stored?: StoredForm;
  /**
   * @deprecated Return `stored: { kind: 'grid', tensor }` instead. Still read by the runner (as a grid stored form)
   * when a step returns no `stored`, for steps written against the first contract.
   */
  readonly quantized?: QuantizedTensor;
  /** Bits per weight of the stored form (codes, scales, side tensors). The runner takes `storedBitsPerWeight(stored)` when `stored` is set. */
  readonly bitsPerWeight?: number;
  /** Set by an allocate step; the runner hands it to every later step of the block. */
  readonly assignment?: LayerAssignment;
  /**
   * The float weight entering the first quantize step of the layer (after transforms), `[outFeatures, inFeatures]`.
   * The runner sets it for `compensate` steps, whose `weight` is then the dequantized `Q(W)`, so that they can form
   * the quantization error `W - Q(W)` (LoRC, LQER, EoRA). Absent for other kinds of step.
   *
   * A `quantize` step may return it too: when, besides quantizing, it moved the layer to another float basis with
   * model edits (OmniQuant's equivalent transform folds a channel scale into a norm and the weight's columns), it
   * names the float weight in the new basis that the quantized weight approximates; the runner then measures output
   * errors and hands later `compensate` steps that reference instead of the weight the step was given.
   */
  readonly reference?: Matrix;
}

/** A recoverable problem a step met; returned, never logged. */
export interface StepWarning {
  readonly step: string;
  readonly layer?: string;
  readonly message: string;
}

/** What a step receives from the runner. */
export interface StepContext {
  /** The layers this step applies to (after target/ignore selection). */
  readonly layers: readonly LayerState[];
  /** Observed statistics of a layer's inputs; includes what `requires` asked for. */
  statistics(layer: string): LayerStatistics;
  /**
   * The layer's weight scheme, resolved once per layer by the runner (step contract v2): for a quantize step, its own
   * `scheme` with the layer's bit-plan assignment applied (`resolveLayerScheme`); for other steps (transforms that
   * search for the quantizer that follows, compensators), the scheme of the recipe's quantize step for that layer.
   * Undefined when no quantize step of the recipe declares one for the layer. Absent outside the runner: steps fall back
   * to their own options (core's `forEachLayer` does).
   */
  scheme?(layer: string): LayerScheme | undefined;
  /** Cancellation. Steps check it between layers and throw core's `AbortError`. */
  readonly signal?: AbortSignal;
  /** Progress within the step, for long work. */
  progress?(done: number, total: number, message?: string): void;
  /**
   * Says the step is done with a layer's statistics, so the runner may free them before the step ends (a Hessian
   * shared by several layers, q/k/v or gate/up, once all of them are released): what keeps a block's Hessians from
   * all being held while its largest layer is solved. Reading a released layer's statistics afterwards throws. Absent
   * outside the runner; steps call it as `context.releaseStatistics?.(layer)`.
   */
  releaseStatistics?(layer: string): void;
  /**
   * The block being processed (for block-level transforms such as AWQ and SmoothQuant, which fold scales through
   * `inputGroups`). Absent for steps run on loose layers. Read-only: a step never writes into its views (the runner
   * refuses it with `ModelEditError`); it returns changes outside its `layers` as `StepResult.edits` (core's
   * `draftBlock` gives a copy to write, `modelEditsOf` the edits).
   */
  readonly block?: BlockView;
  /**
   * The whole model, for steps with `scope: 'model'` (rotations), which run once before calibration. Read-only as
   * `block` is: a rotation returns its changes as `StepResult.edits` (`draftModel` / `collectModelEdits` in core).
   */
  readonly model?: ModelView;
  /**
   * For steps with `scope: 'model'`: the calibration token sequences of the run (each starting with BOS), for
   * model-level steps that learn from data (learned rotations). Absent for per-layer steps and loose layers.
   */
  readonly calibration?: readonly ArrayLike<number>[];
  /**
   * For steps with `scope: 'model'`: the recipe's input-activation scheme (what the quantized model will do to every
   * linear's input at run time), so that a model-level step can optimise for it. Absent when the recipe has none.
   */
  readonly inputActivations?: ActivationScheme;
  /**
   * The block as a differentiable function of its weights, with its calibration input and float output (learned
   * quantization: AutoRound and the like). Present for `quantize` and `compensate` steps when the model supports it.
   */
  readonly blockGradients?: BlockGradients;
}

/** What a step returns: the new layer states (same order as given), warnings, and the model edits it needs. */
export interface StepResult {
  readonly layers: readonly LayerState[];
  readonly warnings: readonly StepWarning[];
  /**
   * Changes to the model outside `layers` (step contract v2): scales folded into norms or producing linears, run-time
   * input transforms, a rotated embedding and head. The runner checks them all, then applies them exactly once
   * (`applyModelEdits`), before it writes `layers` back. The weight and bias of a layer in `layers` travel in its state,
   * not here. Absent: none.
   */
  readonly edits?: readonly ModelEdit[];
}

/**
 * The contract every algorithm implements. Algorithms are factories returning a quantizer, e.g. `rtn(options)`.
 *
 * @example
 * ```ts
 * const step: Quantizer = rtn({ format: parseFormat('int4'), granularity: { type: 'group', size: 32 } });
 * const { layers } = await step.run({ layers: [{ name: 'fc', weight }], statistics: () => ({ tokens: 0 }) });
 * ```
 */
export interface Quantizer {
  /** The step contract this step implements ({@link StepSpecificationVersion}); the runner refuses other versions. */
  readonly specificationVersion: StepSpecificationVersion;
  /** Stable id, for example `rtn`, `gptq`, `awq`, `hadamard-rotation`. */
  readonly id: string;
  readonly kind: StepKind;
  /** Statistics the runner must observe from calibration inputs before `run`. */
  readonly requires: readonly StatisticRequest[];
  /**
   * `layer` (default): runs per block on the selected layers after calibration statistics are gathered.
   * `model`: runs once on `context.model` before calibration starts (whole-model rotations); `layers` is empty.
   */
  readonly scope?: 'layer' | 'model';
  /**
   * The weight scheme a quantize step quantizes to before bit plans (format, granularity, scale encoding), so that the
   * runner can resolve each layer's scheme once and hand it to every step (`context.scheme`). Absent: the step does not
   * quantize to one grid scheme (codebooks, LUTs) or interprets assignments its own way.
   */
  readonly scheme?: WeightScheme;
  /**
   * The stored kinds this step can return (for example `['grid']`, `['lut', 'sparse-outliers']`, `['low-rank']`), so
   * that an exporter can refuse a recipe before it runs. Absent: unknown until the step has run.
   */
  readonly stores?: readonly StoredKind[];
  /** Runs the step. Never mutates its input. */
  run(context: StepContext): Promise<StepResult>;
}
