/**
 * The contract every numerical backend implements: the few dense kernels whose speed decides the speed of
 * calibrated quantization. Everything else in `@bitsmith/linalg` (Cholesky, triangular solves, inverses,
 * eigendecomposition, SVD, QR) is written once in TypeScript over float64 and calls these kernels for the
 * O(n^3) parts, LAPACK-style.
 *
 * Conventions, for every method:
 * - All matrices are dense and row-major, with no padding: an `m x k` matrix `A` is `a[i * k + j]`.
 *   When `transA` is true, the stored array is the `k x m` matrix whose transpose is `op(A)`.
 * - Methods never keep references to the arrays they are given after their promise settles (a GEMM's `constantB`
 *   weight only weakly, as the key of its prepared copy).
 * - Methods are async so that backends may run work on worker threads or native thread pools; callers
 *   must not touch output arrays until the promise resolves.
 */
export type BackendName = 'js' | 'wasm' | 'ort' | 'tfjs' | 'webgpu';

/** Float element types a kernel accepts. */
export type FloatArray = Float32Array | Float64Array;

/** Arguments of a general matrix multiply `C = alpha * op(A) * op(B) + beta * C` with `op(A)` `m x k`, `op(B)` `k x n`, `C` `m x n`. */
export interface GemmArguments<T extends FloatArray> {
  /** Rows of `op(A)` and of `C`. */
  m: number;
  /** Columns of `op(B)` and of `C`. */
  n: number;
  /** Columns of `op(A)`, rows of `op(B)`. */
  k: number;
  a: T;
  b: T;
  c: T;
  /** Use `A^T` (the array holds `k x m`). Default false. */
  transA?: boolean;
  /** Use `B^T` (the array holds `n x k`). Default false. */
  transB?: boolean;
  /** Default 1. */
  alpha?: number;
  /** Default 0; with 0, `C`'s prior contents are ignored (NaN in C does not propagate). */
  beta?: number;
  /**
   * `B` is a weight that later calls pass again (the same array object, usually with the same contents), so a backend
   * may keep a prepared copy of it between calls. The `ort` backend then multiplies with a session that holds `B` as
   * a constant, which MLAS packs once, when `m` is at least its `constantWeightMinRows`; it fingerprints `B`'s
   * contents (64 bits) on every such call and prepares it again when they changed. The product may differ from the
   * plain one in the last bits (the packed kernel adds in another order). Applies to float32 with `transA` false,
   * `alpha` 1 and `beta` 0; ignored otherwise and by the other backends. Default false.
   */
  constantB?: boolean;
}

/**
 * Arguments of a batch of independent float32 GEMMs `C[e] = alpha * op(A[e]) op(B[e])`, `e = 0 .. batch - 1`, all of
 * one shape and stored back to back: `a` holds `batch` matrices of `m x k` (`k x m` with `transA`), `b` `batch` of
 * `k x n` (`n x k` with `transB`), `c` receives `batch` of `m x n` (overwritten).
 */
export interface BatchedGemmArguments {
  batch: number;
  m: number;
  n: number;
  k: number;
  a: Float32Array;
  b: Float32Array;
  c: Float32Array;
  /** Use `A[e]^T` (each stored `k x m`). Default false. */
  transA?: boolean;
  /** Use `B[e]^T` (each stored `n x k`). Default false. */
  transB?: boolean;
  /** Default 1. */
  alpha?: number;
}

/**
 * Arguments of Gram/Hessian accumulation `H = beta * H + alpha * X^T X` with `X` `rows x columns` (float32) and `H`
 * `columns x columns` (float64).
 *
 * Precision: `H` is a float64 accumulator across calls and across row chunks. The `js` backend also forms each
 * product in float64 (relative error ~1e-15). The fast backends (`wasm`, `ort`, `tfjs`) form the product of each
 * chunk of rows (a few thousand) in float32 and add it into `H` in float64, so the error is bounded by the float32
 * error of one chunk (about 1e-7 relative to `sqrt(H_ii H_jj)`) and does not grow with the number of chunks.
 */
export interface GramArguments {
  rows: number;
  columns: number;
  x: Float32Array;
  /** The float64 accumulator, full symmetric `columns x columns` (both triangles written, unless `lower`). */
  h: Float64Array;
  /**
   * Accumulate the lower triangle (with the diagonal) only; a backend may leave the upper triangle as it was (some
   * write it anyway). For callers that add many chunks and mirror once when they read the sum (the statistics
   * collector): the per-call mirror of a wide `h` (8192 x 8192: about 0.4 s on this machine) is then paid once.
   * Default false.
   */
  lower?: boolean;
  /** Default 1. */
  alpha?: number;
  /** Default 1 (accumulate). */
  beta?: number;
}

/** Arguments of the fast Walsh-Hadamard transform of every row of a `rows x n` matrix, in place. */
export interface FwhtArguments<T extends FloatArray> {
  rows: number;
  /** Row length; a power of two. */
  n: number;
  data: T;
  /** Multiply by `1/sqrt(n)` so the transform is orthonormal. Default true. */
  normalize?: boolean;
}

/**
 * Arguments of causal grouped-query scaled dot-product attention over a batch of independent sequences stored one
 * after another (arXiv:1706.03762; grouped-query attention, arXiv:2305.13245): per sequence, query head `h` and
 * position `i`, `out_i = sum_{j <= i} softmax_j(cap(scale q_i . k_j)) v_j` over the keys of the same sequence, where
 * `cap(s) = softcap tanh(s / softcap)` (identity without a soft-cap) and keys at distance `>= slidingWindow` behind
 * the query are masked. Query head `h` reads key/value head `floor(h / (numHeads / numKvHeads))`.
 */
export interface AttentionArguments {
  /** `[tokens, numHeads * headDim]`, RoPE already applied. */
  q: Float32Array;
  /** `[tokens, numKvHeads * headDim]`, RoPE already applied. */
  k: Float32Array;
  /** `[tokens, numKvHeads * headDim]`. */
  v: Float32Array;
  /** `[tokens, numHeads * headDim]` output. */
  out: Float32Array;
  /** Length of each sequence; they sum to `tokens`. Each sequence attends only to itself, from position 0. */
  lengths: readonly number[];
  numHeads: number;
  /** Divides `numHeads`. */
  numKvHeads: number;
  headDim: number;
  /** Score scale. Default `1 / sqrt(headDim)`. */
  scale?: number | undefined;
  /** Soft-cap of the scaled scores (Gemma 2's `attn_logit_softcapping`). Default: none. */
  softcap?: number | undefined;
  /** Keys at distance `>= slidingWindow` behind the query are masked (Mistral, Gemma's local layers). Default: none. */
  slidingWindow?: number | undefined;
  /**
   * Compute as the reference, `attentionWithSgemm` on this backend's `sgemm` (float64 softmax with `fastExp`), so
   * that the result does not depend on a backend's native attention kernel. The calibration forward asks for it:
   * quantized results then stay bit for bit the same when a backend gains a faster kernel. Default `false` (on
   * `ort`, its native graph; the other backends always compute the reference).
   */
  reference?: boolean | undefined;
}

/**
 * Arguments of the backward pass of causal grouped-query attention without a soft-cap (see {@link AttentionArguments}
 * for the forward and {@link Backend.attentionBackward}): given the forward's `q`, `k`, `v` (RoPE applied) and the
 * output's gradient `dOut`, the gradients `dq`, `dk`, `dv`, with the softmax recomputed in float64 (`fastExp`) and the
 * keys' and values' gradients summed over query chunks and heads in float64.
 */
export interface AttentionBackwardArguments {
  /** `[tokens, numHeads * headDim]`: the forward's queries. */
  q: Float32Array;
  /** `[tokens, numKvHeads * headDim]`: the forward's keys. */
  k: Float32Array;
  /** `[tokens, numKvHeads * headDim]`: the forward's values. */
  v: Float32Array;
  /** `[tokens, numHeads * headDim]`: gradient of the loss with respect to the attention's output. */
  dOut: Float32Array;
  /** `[tokens, numHeads * headDim]`: receives the queries' gradient. */
  dq: Float32Array;
  /** `[tokens, numKvHeads * headDim]`: receives the keys' gradient. */
  dk: Float32Array;
  /** `[tokens, numKvHeads * headDim]`: receives the values' gradient. */
  dv: Float32Array;
  /** Length of each sequence; they sum to `tokens`. */
  lengths: readonly number[];
  numHeads: number;
  /** Divides `numHeads`. */
  numKvHeads: number;
  headDim: number;
  /** Score scale. Default `1 / sqrt(headDim)`. */
  scale?: number | undefined;
  /** Keys at distance `>= slidingWindow` behind the query are masked. Default: none. */
  slidingWindow?: number | undefined;
}

/** Arguments of the gated MLP product `out[i] = act(gate[i]) * up[i]` over `length` elements. */
export interface GatedActivationArguments {
  gate: Float32Array;
  up: Float32Array;
  /** Output; may be `gate` or `up` itself (in place). */
  out: Float32Array;
  /** Elements. Default `gate.length`. */
  length?: number;
  /**
   * `'silu'`: `x / (1 + exp(-x))` (SwiGLU, Llama; arXiv:2002.05202). `'gelu-tanh'`: the tanh approximation of GELU,
   * `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (GeGLU, Gemma).
   */
  activation: 'silu' | 'gelu-tanh';
  /** Compute as the reference, `gatedActivationLoop`'s arithmetic (see {@link AttentionArguments.reference}). Default `false`. */
  reference?: boolean | undefined;
}

/**
 * Arguments of {@link Backend.swigluBackward}: with `sig = 1 / (1 + exp(-g))` (the reference `fastExp`) for `g =
 * gate[i]`, `u = up[i]`, `d = dOut[i]`, `dGate[i] = d u sig (1 + g (1 - sig))` and `dUp[i] = d g sig`, float64 inside
 * each element (SwiGLU, arXiv:2002.05202).
 */
export interface SwigluBackwardArguments {
  gate: Float32Array;
  up: Float32Array;
  /** Gradient of the loss with respect to `silu(gate) * up`. */
  dOut: Float32Array;
  /** Output; may be `gate` itself. */
  dGate: Float32Array;
  /** Output; may be `up` itself. */
  dUp: Float32Array;
  /** Elements. Default `gate.length`. */
  length?: number;
}

/**
 * Arguments of a whole gated MLP with constant weights, `out = (act(x gate^T) * (x up^T)) down^T` (see
 * {@link Backend.gatedMlp}): `x` `rows x hidden`, `gate` and `up` `intermediate x hidden`, `down` `hidden x
 * intermediate` (a linear layer's `[out, in]` weights), `out` `rows x hidden`.
 */
export interface GatedMlpArguments {
  x: Float32Array;
  rows: number;
  hidden: number;
  intermediate: number;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
  activation: 'silu' | 'gelu-tanh';
  out: Float32Array;
}

/** A numerical backend. Create one with `createBackend(name)` or take the fastest with `defaultBackend()`. */
export interface Backend {
  /** Which implementation this is. */
  readonly name: BackendName;
  /** Threads the backend uses (1 for `js`). */
  readonly threads: number;
  /** General matrix multiply in float32. */
  sgemm(args: GemmArguments<Float32Array>): Promise<void>;
  /**
   * Optional: a batch of equal-shape float32 GEMMs in one call (see {@link BatchedGemmArguments}), each product
   * computed as `sgemm` computes it alone (same bits), the batch spread over the backend's threads. Callers use
   * `sgemmBatched(backend, args)`, which loops over `sgemm` where a backend leaves this out. `ort` implements it.
   */
  sgemmBatched?(args: BatchedGemmArguments): Promise<void>;
  /** General matrix multiply in float64. */
  dgemm(args: GemmArguments<Float64Array>): Promise<void>;
  /** `H = beta * H + alpha * X^T X`, float32 input, float64 accumulation (see {@link GramArguments} for precision). */
  gram(args: GramArguments): Promise<void>;
  /** In-place fast Walsh-Hadamard transform of each row (Sylvester order, no bit reversal). */
  fwht(args: FwhtArguments<Float32Array>): Promise<void>;
  /**
   * Causal grouped-query attention in float32 (see {@link AttentionArguments}). The `js`, `wasm` and `tfjs` backends
   * run it as chunks of query rows with two `sgemm` calls each and the softmax in float64 (`attentionWithSgemm`,
   * WebAssembly SIMD where available); `ort` runs batches of equal-length sequences as one onnxruntime graph (scores,
   * mask, softmax and the weighted values in native code) unless `reference` is set; `webgpu` hands it to its CPU backend.
   */
  attention(args: AttentionArguments): Promise<void>;
  /**
   * The gated MLP product `out = act(gate) * up` in float32 (see {@link GatedActivationArguments}): the reference
   * arithmetic (`gatedActivationReference`, WebAssembly SIMD for SiLU) on `js`, `wasm` and `tfjs`, one onnxruntime
   * graph (`Sigmoid`/`Gelu`, `Mul`) on `ort` unless `reference` is set, the CPU backend's on `webgpu`.
   */
  gatedActivation(args: GatedActivationArguments): Promise<void>;
  /**
   * Optional: the whole gated MLP in one native call, with the three weights kept prepared between calls as
   * `constantB` keeps one (see {@link GatedMlpArguments}), so that its two wide intermediates never leave the
   * backend. Bit for bit what `sgemm` with `constantB` on the three products and `gatedActivation` (not `reference`)
   * give. Resolves `false` when the backend declines (too few rows, over its budget of prepared weights): the caller
   * then runs those calls itself. `ort` implements it; the others leave it out.
   */
  gatedMlp?(args: GatedMlpArguments): Promise<boolean>;
  /**
   * Optional: SwiGLU's backward in the reference arithmetic (see {@link SwigluBackwardArguments}), bit for bit the
   * reference kernels' `swigluBackward` (and `@bitsmith/models`' loop), spread over more threads where the backend
   * has them. Resolves `false` when the backend declines (too short, no helper threads): the caller then computes it
   * itself. `ort` implements it with its reference helper threads; the others leave it out.
   */
  swigluBackward?(args: SwigluBackwardArguments): Promise<boolean>;
  /**
   * Optional: the attention's backward pass (see {@link AttentionBackwardArguments}), bit for bit
   * `attentionBackwardWithBatchedSgemm` on this backend's batched products with query chunks of
   * `ATTENTION_CHUNK` (128) rows, its (sequence, key/value head) pairs spread over more threads where the backend has
   * them. Resolves `false` when the backend declines (too little work, no helper threads): the caller then computes it
   * itself. `ort` implements it with its reference helper threads; the others leave it out.
   */
  attentionBackward?(args: AttentionBackwardArguments): Promise<boolean>;
  /** Releases workers, sessions and memory. The backend must not be used afterwards. */
  dispose(): Promise<void>;
}

/** Options common to all backend factories. */
export interface BackendOptions {
  /** Worker or native threads to use. Default: the number of CPU cores. */
  threads?: number;
}
