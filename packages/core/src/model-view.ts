import type { ArchitectureMapping } from './architecture-mapping.js';
import type { KvCacheQuantization } from './kv-cache-quantization.js';
import type { Matrix } from './tensor.js';
import type { StoredForm } from './stored-form.js';

/**
 * A transform applied to a linear layer's input at run time, before the weight multiplies it — for example QuaRot's
 * online Hadamard before `down_proj` (the weight is stored as `W H`, the input is multiplied by `H` at run time).
 * `apply` rewrites `input` (`[rows, columns]`, row-major) in place. `describe` says how a runtime must apply it, for
 * exported configs.
 */
export interface RuntimeInputTransform {
  /** Identifier, for example `'hadamard'`. */
  readonly name: string;
  apply(input: Float32Array, rows: number, columns: number): void | Promise<void>;
  /** A JSON-serialisable description for exported configs (kind, size, signs, ...). */
  describe(): Record<string, unknown>;
}

/**
 * A linear layer `y = x W^T + b` of a model, as steps see it. The fields are writable: transforms and quantizers
 * replace `weight` (keeping its shape `[outFeatures, inFeatures]`), `bias`, and may set `inputTransform`.
 */
export interface LinearView {
  /** Full module name, for example `model.layers.0.self_attn.q_proj`. */
  readonly name: string;
  /** Role in the block: `q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`, `lm_head`. */
  readonly kind: string;
  weight: Matrix;
  bias: Float32Array | undefined;
  inputTransform: RuntimeInputTransform | undefined;
}

/** A normalisation layer whose per-channel `weight` (gain) multiplies its output; writable so scales can fold into it. */
export interface NormView {
  readonly name: string;
  /** `rms` (RMSNorm: no mean subtraction, commutes with orthogonal rotations when its weight is 1) or `layer`. */
  readonly type: 'rms' | 'layer';
  weight: Float32Array;
  bias?: Float32Array;
  /**
   * The norm multiplies by `gainOffset + weight` (Gemma's RMSNorm: `x * (1 + w)`). Default 0. Folding a scale `s`
   * into the norm sets `weight ← (gainOffset + weight) / s - gainOffset`.
   */
  readonly gainOffset?: number;
}

/**
 * Linear layers that read one and the same input, and what produced that input, so that a per-input-channel scale
 * `s` can be folded exactly: inputs are divided by `s` at the producer, the group's weight columns multiplied by `s`.
 * - `norm`: the input is a norm's output; divide the norm's weight (and bias) by `s`.
 * - `linear`: the input is another linear's output channel for channel (for example `up_proj` → `down_proj` through
 *   the elementwise SwiGLU product); divide that linear's rows (and bias) by `s`.
 * - `none`: nothing to fold into (for example `o_proj` under grouped-query attention): scaling would change the model.
 */
export interface InputGroup {
  readonly linears: readonly LinearView[];
  readonly producer: { readonly kind: 'norm'; readonly norm: NormView } | { readonly kind: 'linear'; readonly linear: LinearView } | { readonly kind: 'none' };
}

/** Attention geometry, for transforms that act per head. */
export interface AttentionGeometry {
  readonly numHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
}

/** One block (decoder layer) of a model as steps see it. */
export interface BlockView {
  readonly index: number;
  /** For example `model.layers.3`. */
  readonly name: string;
  /** Every linear of the block, in execution order. */
  readonly linears: readonly LinearView[];
  /** Norms in execution order (for a Llama block: input_layernorm, post_attention_layernorm). */
  readonly norms: readonly NormView[];
  readonly inputGroups: readonly InputGroup[];
  readonly attention?: AttentionGeometry;
  /**
   * Linears computed in the block but not quantized by default (MoE routers, shared-expert gates): not in `linears`,
   * but transforms that change what the block reads (rotations, folded scales) must change them too.
   */
  readonly auxiliaryLinears?: readonly LinearView[];
  /**
   * The block's key/value-cache quantization, writable: the recipe runner installs it when a recipe declares
   * `kvCache`. Absent on models without attention caches (the property is then missing, not undefined).
   */
  kvCache?: KvCacheQuantization | undefined;
}

/**
 * A whole model as model-level transforms (rotations) see it: its blocks and their linears, which is all a
 * calibratable model needs. Writable in the same way as the views it holds. A language model's embedding, final norm
 * and LM head are a separate capability, `LanguageModelHead` (check it with `hasLanguageModelHead`); an encoder has
 * blocks only.
 */
export interface ModelView {
  readonly architecture: string;
  /**
   * The architecture's mapping table (which norm feeds which linears, residual writers, ...), resolved per block
   * with `resolveBlockMapping`. Rotations need it; models without one (encoders) leave it out.
   */
  readonly mapping?: ArchitectureMapping;
  readonly hiddenSize: number;
  readonly blocks: readonly BlockView[];
}

/** Opaque hidden states between blocks (owned by the model implementation). */
export type HiddenStatesHandle = unknown;

/** Receives each linear layer's input `[tokens, inFeatures]` during a block's forward pass; valid only during the call. */
export type LinearInputCallback = (name: string, input: Matrix) => void | Promise<void>;

/** Hints to {@link QuantizableModel.runBlock}. */
export interface RunBlockOptions {
  /**
   * The observer needs only the first `observeRows` rows (tokens) of each linear's input: a model may then observe
   * only a leading batch of whole sequences holding at least that many rows, and run the rest where inputs are
   * costly to copy out (a GPU). A hint: a model may deliver more; models that ignore it behave as before.
   */
  readonly observeRows?: number;
  /**
   * The caller reads only what the observer sees, not the returned states (a statistics pass whose output the
   * propagation computes again with the new weights): a model may then skip gathering the output and return empty
   * states (`shape [0, hidden]`), sparing a `tokens x hidden` array per pass. A hint: models that ignore it return
   * the output as before.
   */
  readonly discardOutput?: boolean;
}

/**
 * Mean `X^T X / tokens` of the inputs of some of a block's linears, computed by the model itself
 * ({@link QuantizableModel.blockHessians}): `hessians` maps each requested linear's name to a float64, full
 * (symmetric) `in x in` matrix (layers that read one input, q/k/v or gate/up, may share one array); `tokens` is the
 * number of calibration tokens the block saw.
 */
export interface BlockHessians {
  readonly hessians: ReadonlyMap<string, Float64Array>;
  readonly tokens: number;
  /**
   * Hessians left where the model computed them (asked with `blockHessians(..., { resident: true })`): a layer named
   * here may be absent from `hessians`.
   */
  readonly resident?: ReadonlyMap<string, ResidentHessian>;
}

/**
 * A layer's mean Hessian `X^T X / tokens` held where a model computed it (a GPU buffer), for a step that can use it
 * there ({@link BlockHessians.resident}, `LayerStatistics.residentHessian`). Layers that read one input (q/k/v,
 * gate/up) may share one. The model keeps it alive until the block's output errors are measured or the next block's
 * Hessians are asked for.
 */
export interface ResidentHessian {
  /** Order `n` (the layer's input features). */
  readonly columns: number;
  /**
   * The model's handle, for the step to recognise: on linalg's `webgpu` backend `{ backend, matrix }`, with `matrix`
   * a resident float32 symmetric `n x n` matrix holding the Hessian divided by `scale`.
   */
  readonly handle: unknown;
  /** The handle's values times `scale` are the mean Hessian (for a Gram matrix `X^T X`: `1 / tokens`). */
  readonly scale: number;
  /** The mean Hessian read back as a full float64 matrix (what `LayerStatistics.hessian` would have been). */
  read(): Promise<Float64Array>;
}

/**
 * One layer's output-error terms on the first `rows` rows of its input `X` (the input of the layer with the block's
 * current weights): `squaredError = ||X (W - Q)^T||_F^2` and `squaredReference = ||X W^T||_F^2`, with `W` the
 * reference (float) weight and `Q` the layer's current weight ({@link QuantizableModel.blockOutputErrors}).
 */
export interface OutputErrorTerms {
  readonly rows: number;
  readonly squaredError: number;
  readonly squaredReference: number;
}

/** Per-channel magnitudes of a linear's input over `rows` rows: `absMax[c] = max |x_c|`, `absSum[c] = sum |x_c|`. */
export interface InputChannelStatistics {
  readonly rows: number;
  readonly absMax: Float32Array;
  readonly absSum: Float64Array;
}

/**
 * What {@link QuantizableModel.blockOutputErrors} returns: the block's output, each named layer's error terms and,
 * optionally, the channel statistics of each named layer's input over the same rows (for reports of activation
 * outliers; layers that read one input may share one object).
 */
export interface BlockOutputErrors {
  readonly output: HiddenStatesHandle;
  readonly errors: ReadonlyMap<string, OutputErrorTerms>;
  readonly inputChannels?: ReadonlyMap<string, InputChannelStatistics>;
}

/**
 * A model that the recipe runner can calibrate block by block (DESIGN.md's data flow): embed calibration sequences
 * and run one block at a time while observing each linear's inputs. The head's forward pass (`logits`) belongs to
 * the language-model head capability (`LanguageModelLogits`, `QuantizableLanguageModel`), which encoders lack.
 */
export interface QuantizableModel extends ModelView {
  /** Embeds token sequences into the first block's input. */
  embed(sequences: readonly ArrayLike<number>[]): Promise<HiddenStatesHandle>;
  /** Runs block `index` on `hidden`, calling `observe` with every linear's input, and returns the block's output. */
  runBlock(index: number, hidden: HiddenStatesHandle, observe?: LinearInputCallback, options?: RunBlockOptions): Promise<HiddenStatesHandle>;
  /**
   * Optional: the Hessians of the named linears of block `index` on `hidden`, computed by the model without handing
   * each input to an observer (a GPU model accumulates `X^T X` where the activations are), or `undefined` when it
   * cannot for this block; the recipe runner then observes `runBlock` as usual. Used only for steps whose sole
   * statistic is the Hessian. With `resident: true` (the step asked `{ kind: 'hessian', resident: true }`) the model
   * may leave them where it computed them ({@link BlockHessians.resident}).
   */
  blockHessians?(index: number, hidden: HiddenStatesHandle, layers: ReadonlySet<string>, options?: { readonly resident?: boolean }): Promise<BlockHessians | undefined>;
  /**
   * Optional: runs block `index` on `hidden` with its current weights (what `runBlock` without an observer returns)
   * and measures each named layer's {@link OutputErrorTerms} against its reference weight (`references`, `[out, in]`)
   * on the first `rows` rows of the layer's input, where the inputs are (a GPU model: no input is copied out), or
   * returns `undefined` when it cannot for this block; the recipe runner then observes `runBlock` as usual.
   */
  blockOutputErrors?(index: number, hidden: HiddenStatesHandle, references: ReadonlyMap<string, Matrix>, rows: number): Promise<BlockOutputErrors | undefined>;
  /**
   * Called by the recipe runner when block `index` is finished, with the final stored form of each of its quantized
   * layers: a model that holds weights lazily may drop their float32 copies (keeping the stored forms, or its
   * checkpoint bytes for untouched layers, to produce them again on demand). Optional; reading a weight afterwards
   * must still give exactly the same values.
   */
  releaseBlock?(index: number, stored: ReadonlyMap<string, StoredForm>): void;
}
