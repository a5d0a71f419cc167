import type { HiddenStatesHandle, QuantizableModel } from './model-view.js';
import type { Matrix } from './tensor.js';

/** What {@link BlockGradients.backward} returns. */
export interface BlockBackward {
  /** `[tokens, hiddenSize]`: the block's output with the trial weights. */
  readonly output: Matrix;
  /** Gradient of the loss with respect to every linear layer's weight, `[outFeatures, inFeatures]`, by layer name. */
  readonly weightGradients: ReadonlyMap<string, Float32Array>;
  /** `[tokens, hiddenSize]`: gradient of the loss with respect to the block's input (when the model computes it). */
  readonly inputGradient?: Matrix;
}

/**
 * The backward of a {@link LinearInputQuantizer}: rewrites, in place, the gradient with respect to the quantized input
 * into the gradient with respect to the input (for example straight-through plus the path through a scale computed
 * from the input, as LSQ and SpinQuant's quantizers have it).
 */
export type LinearInputAdjoint = (inputGradient: Float32Array) => void | Promise<void>;

/**
 * Fake-quantizes one linear layer's input in place (`input` is `[rows, columns]`, row-major): the forward pass
 * multiplies the weight by what it leaves there. The backward pass applies the returned adjoint to the input's
 * gradient, or treats the quantizer as the identity (straight-through) when it returns nothing.
 */
export type LinearInputQuantizer = (layer: string, input: Float32Array, rows: number, columns: number) => void | LinearInputAdjoint | Promise<void | LinearInputAdjoint>;

/** Per-call changes to a {@link BlockGradients} pass. */
export interface BlockPassOverrides {
  /**
   * The block's input rows for the selected batch, `[tokens, hiddenSize]`, used instead of the calibration input
   * (for example the input in a rotated basis, for learned rotations).
   */
  readonly input?: Matrix;
  /** Applied to every linear layer's input before its weight multiplies it, straight-through in the backward pass. */
  readonly quantizeInput?: LinearInputQuantizer;
  /**
   * `backward` only: whether the caller needs the input gradient. `false` lets the model leave it out (and the
   * products only it needs), as a step that learns only weights does. Default true.
   */
  readonly inputGradient?: boolean;
  /**
   * The returned output and gradients may live in memory that the capability's next pass reuses (valid until that
   * pass starts), so a loop of passes allocates nothing large. Default false: they are the caller's to keep.
   */
  readonly transientResults?: boolean;
  /**
   * `backward` only: arrays to receive the weight gradients, by linear layer name (each `[outFeatures, inFeatures]`
   * floats, row-major), which the returned `weightGradients` then hold; for example a quantizer's own gradient buffer,
   * so nothing is copied into it. Layers not named (or with an array of another size) get the model's arrays.
   */
  readonly weightGradientsInto?: ReadonlyMap<string, Float32Array>;
}

/**
 * The block-level capability of the step contract: the block in hand as a differentiable function of its linear
 * layers' weights, for learned quantization (AutoRound, OmniQuant-style clipping, learned rotations). Sequences
 * are addressed by index into the calibration batch (`batch`, default all); tokens of the selected sequences are
 * stored one sequence after another, each its own causal context. Memory stays bounded by one block: only the
 * block's input and its float output are held.
 *
 * The runner creates it before the block's first `quantize` step, so `target` is the output of the block as the
 * transforms left it, with float weights. Trial weights are `[outFeatures, inFeatures]` float32 arrays by layer
 * name; layers not named keep their current weights. Nothing here modifies the model.
 *
 * @example
 * ```ts
 * const g = context.blockGradients!;
 * const target = await g.target([0, 1]);
 * const { output, weightGradients } = await g.backward(trial, [0, 1], (y) => y.data.map((v, i) => (2 * (v - target.data[i]!)) / y.data.length));
 * ```
 */
export interface BlockGradients {
  /** Token count of every calibration sequence. */
  readonly lengths: readonly number[];
  readonly hiddenSize: number;
  /**
   * The arithmetic its passes run (see {@link BlockGradientsOptions.arithmetic}); absent means `'reference'`. A
   * learned step can run its own per-weight loops in the same arithmetic (AutoRound's learnable rounding in float32
   * under `'native'`).
   */
  readonly arithmetic?: 'reference' | 'native';
  /** The block's input rows of the selected sequences, `[tokens, hiddenSize]` (a view; do not modify). */
  input(batch?: readonly number[]): Matrix;
  /** The float block's output on those rows, `[tokens, hiddenSize]` (computed once, then cached; do not modify). */
  target(batch?: readonly number[]): Promise<Matrix>;
  /** The block's output with trial weights (and `overrides` as in {@link BlockGradients.backward}). */
  forward(weights: ReadonlyMap<string, Float32Array>, batch?: readonly number[], overrides?: BlockPassOverrides): Promise<Matrix>;
  /**
   * Forward with trial weights, then backward: `seed` maps the output to the gradient of the caller's loss with
   * respect to it (same length), and the weight gradients of every linear layer of the block come back.
   * `overrides` replaces the input rows and fake-quantizes the linears' inputs (optional; a model that cannot do
   * either throws rather than ignore them).
   */
  backward(
    weights: ReadonlyMap<string, Float32Array>,
    batch: readonly number[] | undefined,
    seed: (output: Matrix) => Float32Array,
    overrides?: BlockPassOverrides,
  ): Promise<BlockBackward>;
  /**
   * Ends the capability: its memory may serve the next block's capability, and its later calls are refused. The
   * recipe runner calls it after the block's steps; a step must not keep the capability beyond its `run`. Optional.
   */
  release?(): void;
}

/** Options of {@link DifferentiableModel.blockGradients}. */
export interface BlockGradientsOptions {
  /**
   * The arithmetic of the passes' non-linear parts, where the model offers a choice: `'reference'` (the calibration
   * forward's bits on every backend) or `'native'` (the backend's native kernels, float32 activations, faster).
   * Default: the model's own (`@bitsmith/models`' `trainingArithmetic`).
   */
  readonly arithmetic?: 'reference' | 'native';
}

/** A {@link QuantizableModel} whose blocks can be differentiated: the runner then fills `StepContext.blockGradients`. */
export interface DifferentiableModel extends QuantizableModel {
  /**
   * The block-level capability for block `index` on its calibration input `hidden` (the handle `runBlock` takes),
   * snapshotting the block's current linear weights as the float reference for `target`. `options.arithmetic` asks
   * for an arithmetic (a model with one arithmetic ignores it).
   */
  blockGradients(index: number, hidden: HiddenStatesHandle, options?: BlockGradientsOptions): BlockGradients;
}

/**
 * Whether a model offers {@link DifferentiableModel.blockGradients}.
 *
 * @example
 * ```ts
 * if (isDifferentiableModel(model)) context = { ...context, blockGradients: model.blockGradients(i, hidden) };
 * ```
 */
export function isDifferentiableModel(model: QuantizableModel): model is DifferentiableModel {
  return typeof (model as Partial<DifferentiableModel>).blockGradients === 'function';
}
