import { InvalidArgumentError, ShapeMismatchError, UnsupportedFormatError, type LinearInputAdjoint, type LinearInputQuantizer } from '@bitsmith/core';
import { siluGateFloat32Loop, swigluBackwardFloat32Loop, tryReferenceKernels, type Backend, type ReferenceKernels } from '@bitsmith/linalg';
import { causalAttentionBackwardGemm } from './attention-backward-gemm.js';
import { rmsNormBackward, swigluBackward } from './block-backward-ops.js';
import { addInto, addRmsNormRows, onKernels, rmsNormBackwardRows, rmsNormRows, ropeRows } from './block-row-kernels.js';
import { withReferenceKernels } from './reference-kernel-pool.js';
import { cacheAfterAttention, cacheAfterRope, cacheKeysBeforeRope } from './kv-cache.js';
import type { LinearLayer } from './linear-layer.js';
import type { LlamaConfig } from './llama-config.js';
import type { HiddenStates, LlamaBlock } from './llama-graph.js';
import { ropeTables, type RopeTables } from './rope.js';

/**
 * Most SwiGLU elements (tokens x intermediate size) whose float64 exponentials a training pass keeps in its workspace
 * for the backward (2^24: 128 MiB); above it the backward computes them again (the same bits either way).
 */
const KEPT_EXPONENTIALS = 1 << 24;

/**
 * Room a {@link BlockWorkspace} reserves in its kernels' memory on its first `prepare` (256 MiB, or `arenaBytes` if
 * less): reserved, not touched, so a small model's passes cost only what they use.
 */
export const ARENA_INITIAL_BYTES = 256 * 1024 * 1024;

/** Options of {@link llamaBlockForward} and {@link llamaBlockBackward}. */
export interface BlockPassOptions {
  /**
   * Trial weights `[outFeatures, inFeatures]` by linear layer name, used instead of the block's own (the block is not
   * modified). Layers not named keep their weights.
   */
  weights?: ReadonlyMap<string, Float32Array>;
  /** RoPE tables covering the longest sequence; default: built from the config. */
  rope?: RopeTables;
  /**
   * Scratch arrays reused across calls for the pass's intermediate activations (the tape) and temporaries, so a
   * loop of passes over batches of the same size (AutoRound's iterations) allocates nothing large and leaves the
   * garbage collector idle. The returned output and gradients are always fresh arrays. Default: fresh arrays.
   */
  workspace?: BlockWorkspace;
  /**
   * Fake-quantizes each linear layer's input (a copy) before its weight multiplies it; the backward pass forms the
   * weight gradient from the quantized input and passes the input gradient through the adjoint the quantizer returns
   * (straight-through when it returns none). Default: none.
   */
  quantizeInput?: LinearInputQuantizer;
  /**
   * `llamaBlockBackward` only: compute the linear layers' weight (and bias) gradients and leave out the block's input
   * gradient and the norms' gain gradients, with the products only they need (`dX` of q/k/v, the first norm's
   * backward): `inputGradient` is then empty and `normGradients` has no entries. Ignored with `quantizeInput` (its
   * adjoints need the input gradients). Default false.
   */
  weightGradientsOnly?: boolean;
  /**
   * With a `workspace`: the returned output and gradients live in the workspace too, valid until its next pass, so a
   * loop of passes (AutoRound's iterations) allocates nothing at all. Default false (fresh arrays).
   */
  transientResults?: boolean;
  /**
   * `llamaBlockBackward` only: arrays to receive the weight gradients by layer name (`[outFeatures, inFeatures]` each),
   * returned in `weightGradients`; layers not named, or with an array of another size, get the pass's own.
   */
  weightGradientsInto?: ReadonlyMap<string, Float32Array>;
  /**
   * The arithmetic of the block's non-linear parts.
   * - `'reference'` (default): exactly what `LlamaGraph.runBlock` computes for calibration: the backends' reference
   *   attention and SiLU in float64 with `fastExp`, the same bits on every backend.
   * - `'native'`: attention's forward on the backend's native kernel (`Backend.attention` without `reference`:
   *   onnxruntime's graph on `ort`, the reference on the others), and SiLU and SwiGLU's backward in float32 as PyTorch
   *   computes them (`@bitsmith/linalg`'s `siluGateFloat32`, each sigmoid kept for the backward). Within float32
   *   rounding of the reference and faster, but the bits may differ between backends and releases. Attention's
   *   backward is the reference either way (its softmax recomputed in float64).
   */
  arithmetic?: 'reference' | 'native';
}

/**
 * Scratch arrays by name for {@link llamaBlockForward} and {@link llamaBlockBackward}, grown on demand and reused
 * by later passes (one pass at a time per workspace).
 *
 * After {@link prepare} (which its owner calls between passes), the arrays the passes asked for so far live in the
 * memory of the workspace's own reference-kernel instance (`@bitsmith/linalg`'s WebAssembly kernels), where the
 * passes' row operations (RMSNorm and its backward, RoPE, the residual add, SiLU and its backward) work on them in
 * place instead of copying them in and out; onnxruntime reads and writes them there like any other array. Without
 * `prepare`, or where the kernels are unavailable, they are ordinary arrays. Either way the results are the same bits.
 *
 * @example
 * ```ts
 * const workspace = new BlockWorkspace();
 * for (const batch of batches) {
 *   await workspace.prepare();
 *   await llamaBlockBackward(config, block, batch, backend, seed, { workspace });
 * }
 * ```
 */
export class BlockWorkspace {
  readonly #arrays = new Map<string, Float32Array>();
  readonly #doubles = new Map<string, Float64Array>();
  /** Byte size of every name asked for so far (float32 and float64 names apart), the largest request each. */
  readonly #wanted = new Map<string, number>();
  /** Where each arena name lies (byte offset from the arena's start, bytes); the names not there are ordinary arrays. */
  readonly #layout = new Map<string, { at: number; bytes: number }>();
  #kernels: ReferenceKernels | null | undefined;
  #buffer: ArrayBuffer | undefined;
  /** Bytes laid out in the arena, the room reserved for it, and its first byte in the kernels' memory. */
  #arenaEnd = 0;
  #capacity = 0;
  #arenaStart = 0;
  readonly #arenaLimit: number;

  /**
   * @param options `arenaBytes`: the most bytes of arrays to keep in the kernels' memory (default 1 GiB, at most
   *   3 GiB: WebAssembly memory is 4 GiB); arrays beyond it stay ordinary.
   */
  constructor(options: { arenaBytes?: number } = {}) {
    const limit = options.arenaBytes ?? 2 ** 30;
    if (!(limit >= 0 && limit <= 3 * 2 ** 30)) throw new InvalidArgumentError('arenaBytes', `got ${limit}; expected 0 to 3 GiB`);
    this.#arenaLimit = limit;
  }

  /**
   * Makes the kernels' memory ready for the next passes: on the first call it reserves room for arrays (up to
   * {@link ARENA_INITIAL_BYTES}, within `arenaBytes`), where arrays asked for later are placed as they are first asked
   * for; it lays out every array asked for so far that did not fit, growing the room (at least doubling it, within
   * `arenaBytes`). Call it between passes, never during one: growing the memory empties the views of earlier arrays
   * (a returned transient result, an array a caller kept), and an array that moves keeps none of its contents.
   */
  async prepare(): Promise<void> {
    if (this.#arenaLimit === 0) return;
    let needed = 0;
    for (const [name, bytes] of this.#wanted) {
      const slot = this.#layout.get(name);
      if (!slot || slot.bytes < bytes) needed += Math.ceil(bytes / 64) * 64;
    }
    if (this.#buffer && needed === 0) return;
    if (this.#kernels === undefined) this.#kernels = (await tryReferenceKernels()) ?? null;
    const kernels = this.#kernels;
    if (!kernels) return;
    if (!this.#buffer || this.#arenaEnd + needed > this.#capacity) {
      // Room is reserved, not touched: the memory's pages are only faulted in as arrays use them. Where the memory
      // cannot grow that far (a constrained host), the least room that fits, else no more room (ordinary arrays).
      const wanted = Math.min(this.#arenaLimit, Math.max(2 * this.#capacity, this.#arenaEnd + needed, ARENA_INITIAL_BYTES));
      for (const capacity of [wanted, Math.min(this.#arenaLimit, this.#arenaEnd + needed)]) {
        if (capacity <= this.#capacity && this.#buffer) break;
        try {
          const { buffer, start } = kernels.arena(capacity);
          this.#capacity = capacity;
          this.#arenaStart = start;
          this.#buffer = buffer;
          break;
        } catch {
          // try the smaller room, or keep what there is
        }
      }
      if (!this.#buffer) return;
    }
    // Names already laid out keep their place (their contents survive); new or larger ones go after them.
    for (const [name, bytes] of this.#wanted) {
      const slot = this.#layout.get(name);
      if (!slot || slot.bytes < bytes) this.#place(name, bytes);
    }
  }

  /** Lays `key` out at the end of the arena when `bytes` more fit its room; returns its offset, else undefined. */
  #place(key: string, bytes: number): number | undefined {
    const size = Math.ceil(bytes / 64) * 64;
    if (!this.#buffer || this.#arenaEnd + size > this.#capacity) return undefined;
    this.#layout.set(key, { at: this.#arenaEnd, bytes: size });
    this.#arenaEnd += size;
    if (key.startsWith('f64:')) this.#doubles.delete(key.slice(4));
    else this.#arrays.delete(key);
    return this.#arenaStart + this.#layout.get(key)!.at;
  }

  /** The reference-kernel instance whose memory holds the laid-out arrays (after a {@link prepare}), else undefined. */
  get kernels(): ReferenceKernels | undefined {
    return this.#buffer ? (this.#kernels ?? undefined) : undefined;
  }

  /** A zero-filled array of `length` floats under `name` (the same memory as the previous call with that name). */
  zeros(name: string, length: number): Float32Array {
    const view = this.uninitialised(name, length);
    view.fill(0);
    return view;
  }

  /** An array of `length` floats under `name` whose contents are left from earlier use. */
  uninitialised(name: string, length: number): Float32Array {
    const placed = this.#placed(name, 4 * length);
    if (placed !== undefined) return new Float32Array(this.#buffer!, placed, length);
    let array = this.#arrays.get(name);
    if (!array || array.length < length) {
      array = new Float32Array(length);
      this.#arrays.set(name, array);
    }
    return array.subarray(0, length);
  }

  /** An array of `length` float64 under `name` whose contents are left from earlier use. */
  float64(name: string, length: number): Float64Array {
    const placed = this.#placed(`f64:${name}`, 8 * length);
    if (placed !== undefined) return new Float64Array(this.#buffer!, placed, length);
    let array = this.#doubles.get(name);
    if (!array || array.length < length) {
      array = new Float64Array(length);
      this.#doubles.set(name, array);
    }
    return array.subarray(0, length);
  }

  /**
   * The byte offset of `key` in the arena when it holds `bytes` there, or when they fit the room left (placed now: no
   * memory grows during a pass); else records the request (for the next {@link prepare}) and undefined.
   */
  #placed(key: string, bytes: number): number | undefined {
    if (bytes > (this.#wanted.get(key) ?? -1)) this.#wanted.set(key, bytes);
    const slot = this.#layout.get(key);
    if (slot && this.#buffer && slot.bytes >= bytes) return this.#arenaStart + slot.at;
    return this.#place(key, bytes);
  }

  /** Bytes held. */
  get bytes(): number {
    let total = this.#buffer ? this.#arenaEnd : 0;
    for (const a of this.#arrays.values()) total += a.byteLength;
    for (const a of this.#doubles.values()) total += a.byteLength;
    return total;
  }
}

/** Fresh arrays when there is no workspace. */
function scratch(workspace: BlockWorkspace | undefined, name: string, length: number, zeroed = true): Float32Array {
  if (!workspace) return new Float32Array(length);
  return zeroed ? workspace.zeros(name, length) : workspace.uninitialised(name, length);
}

/** What {@link llamaBlockBackward} returns. */
export interface BlockBackwardResult {
  /** `[tokens, hiddenSize]`: the block's output (as `LlamaGraph.runBlock` computes it with the trial weights, in the pass's `arithmetic`). */
  readonly output: Float32Array;
  /** `[tokens, hiddenSize]`: gradient of the loss with respect to the block's input. */
  readonly inputGradient: Float32Array;
  /** Gradient of every linear layer's weight, `[outFeatures, inFeatures]`, by layer name. */
  readonly weightGradients: Map<string, Float32Array>;
  /** Gradient of every bias, by layer name (only layers with a bias). */
  readonly biasGradients: Map<string, Float32Array>;
  /** Gradient of both RMSNorm gains, `[hiddenSize]`, by norm name. */
  readonly normGradients: Map<string, Float32Array>;
}

/** Activations of one forward pass that the backward pass reads. */
interface BlockTape {
  tokens: number;
  lengths: readonly number[];
  positions: Int32Array;
  rope: RopeTables;
  x: Float32Array;
  n1: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  attended: Float32Array;
  h: Float32Array;
  n2: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  act: Float32Array;
  /** `fastExp(-gate)` per element, kept by the forward for the SwiGLU backward (undefined: computed there). */
  siluExps: Float64Array | undefined;
  /** With native arithmetic: the float32 sigmoid of every gate element, for the float32 SwiGLU backward. */
  siluSigmoids: Float32Array | undefined;
  out: Float32Array;
  /** With `quantizeInput`: the quantized inputs and the quantizers' adjoints, by layer name. */
  quantized: FakeQuantized;
}

/** The fake-quantized linear inputs of one pass (empty without `quantizeInput`). */
interface FakeQuantized {
  readonly quantizeInput: LinearInputQuantizer | undefined;
  readonly inputs: Map<string, Float32Array>;
  readonly adjoints: Map<string, LinearInputAdjoint>;
}

/** The input a linear multiplies: `x`, or with `quantizeInput` a fake-quantized copy (kept for the backward pass). */
async function inputOf(layer: LinearLayer, x: Float32Array, rows: number, fq: FakeQuantized): Promise<Float32Array> {
  if (!fq.quantizeInput) return x;
  const copy = x.slice(0, rows * layer.inFeatures);
  const adjoint = await fq.quantizeInput(layer.name, copy, rows, layer.inFeatures);
  fq.inputs.set(layer.name, copy);
  if (adjoint) fq.adjoints.set(layer.name, adjoint);
  return copy;
}

function weightOf(layer: LinearLayer, weights: ReadonlyMap<string, Float32Array> | undefined): Float32Array {
  const w = weights?.get(layer.name) ?? layer.weight.data;
  if (w.length !== layer.outFeatures * layer.inFeatures) {
    throw new ShapeMismatchError(`${layer.name} trial weight`, [layer.outFeatures * layer.inFeatures], [w.length], 'trial weights are [outFeatures, inFeatures], row-major');
  }
  return w;
}

async function linear(layer: LinearLayer, x: Float32Array, rows: number, backend: Backend, weights: ReadonlyMap<string, Float32Array> | undefined, out: Float32Array = new Float32Array(rows * layer.outFeatures)): Promise<Float32Array> {
  if (layer.inputTransform) {
    throw new UnsupportedFormatError(`${layer.name} has a run-time input transform (${layer.inputTransform.name}); the block backward pass supports plain linear layers only`);
  }
  if (rows > 0) await backend.sgemm({ m: rows, n: layer.outFeatures, k: layer.inFeatures, a: x, b: weightOf(layer, weights), c: out, transB: true });
  const { bias } = layer;
  if (bias) {
    const n = layer.outFeatures;
    for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) out[r * n + j]! += bias[j]!;
  }
  return out;
}

/**
 * The dense SwiGLU MLP of a block whose computation is Llama's (the backward pass covers that one); other
 * architectures (Gemma's norms and soft-capping, Qwen3's q/k norms, mixtures of experts) are refused by name.
 */
function requireLlamaComputation(config: LlamaConfig, block: LlamaBlock): NonNullable<LlamaBlock['mlp']> {
  const llamaScale = Math.abs(config.attentionScale * Math.sqrt(config.headDim) - 1) < 1e-12;
  if (!block.mlp || config.qkNorm || config.sandwichNorms || config.normGainOffset !== 0 || config.hiddenActivation !== 'silu' || config.attentionSoftcap !== undefined || !llamaScale) {
    throw new UnsupportedFormatError(`the block backward pass computes Llama blocks; ${config.modelType} (${block.name}) computes differently`);
  }
  return block.mlp;
}

async function forwardTape(config: LlamaConfig, block: LlamaBlock, input: HiddenStates, backend: Backend, options: BlockPassOptions, forBackward: boolean): Promise<BlockTape> {
  if (forBackward && block.kvCache) {
    throw new UnsupportedFormatError(`${block.name} quantizes its key/value cache; the block backward pass supports a float cache only (quantize the cache after learned weight quantization)`);
  }
  const hidden = config.hiddenSize;
  const [tokens, columns] = input.states.shape;
  if (columns !== hidden) throw new ShapeMismatchError('hidden states', [tokens, hidden], input.states.shape);
  const lengths = input.lengths;
  const positions = new Int32Array(tokens);
  let maxLength = 0;
  for (let s = 0, row = 0; s < lengths.length; s++) {
    for (let p = 0; p < lengths[s]!; p++) positions[row++] = p;
    maxLength = Math.max(maxLength, lengths[s]!);
  }
  const rope = options.rope && options.rope.positions >= maxLength ? options.rope : ropeTables(config, Math.max(1, maxLength));
  const w = options.weights;
  const ws = options.workspace;
  // The workspace's own kernels (its arrays live in their memory after a prepare), else the pool's.
  const own = ws?.kernels;
  const native = options.arithmetic === 'native';
  const x = input.states.data;
  const fq: FakeQuantized = { quantizeInput: options.quantizeInput, inputs: new Map(), adjoints: new Map() };
  const { qProj, kProj, vProj, oProj } = block.selfAttention;
  const { gateProj, upProj, downProj } = requireLlamaComputation(config, block);
  const n1 = await rmsNormRows(x, tokens, hidden, block.inputLayernorm.weight, block.inputLayernorm.eps, scratch(ws, 'n1', tokens * hidden, false), own);
  const q = await linear(qProj, await inputOf(qProj, n1, tokens, fq), tokens, backend, w, scratch(ws, 'q', tokens * qProj.outFeatures, false));
  const k = await linear(kProj, await inputOf(kProj, n1, tokens, fq), tokens, backend, w, scratch(ws, 'k', tokens * kProj.outFeatures, false));
  const v = await linear(vProj, await inputOf(vProj, n1, tokens, fq), tokens, backend, w, scratch(ws, 'v', tokens * vProj.outFeatures, false));
  const geometry = { numHeads: config.numAttentionHeads, numKvHeads: config.numKeyValueHeads, headDim: config.headDim };
  await cacheKeysBeforeRope(block.kvCache, k, tokens, geometry);
  await ropeRows(q, rope, tokens, config.numAttentionHeads, positions, false, own);
  await ropeRows(k, rope, tokens, config.numKeyValueHeads, positions, false, own);
  await cacheAfterRope(block.kvCache, q, k, v, tokens, geometry, backend);
  const shape = { numHeads: config.numAttentionHeads, numKvHeads: config.numKeyValueHeads, headDim: config.headDim, slidingWindow: block.attentionType === 'sliding' ? config.slidingWindow : undefined };
  const attended = scratch(ws, 'attended', tokens * config.numAttentionHeads * config.headDim, false);
  await backend.attention({ q, k, v, out: attended, lengths, numHeads: shape.numHeads, numKvHeads: shape.numKvHeads, headDim: shape.headDim, slidingWindow: shape.slidingWindow, scale: config.attentionScale, reference: !native });
  await cacheAfterAttention(block.kvCache, attended, tokens, geometry, backend);
  const h = await linear(oProj, await inputOf(oProj, attended, tokens, fq), tokens, backend, w, scratch(ws, 'h', tokens * hidden, false));
  // h += x, then n2 = rmsNorm(h), in one pass (the same bits as the add loop and rmsNorm).
  const n2 = await addRmsNormRows(h, x, tokens, hidden, block.postAttentionLayernorm.weight, block.postAttentionLayernorm.eps, scratch(ws, 'n2', tokens * hidden, false), own);
  const gate = await linear(gateProj, await inputOf(gateProj, n2, tokens, fq), tokens, backend, w, scratch(ws, 'gate', tokens * gateProj.outFeatures, false));
  const up = await linear(upProj, await inputOf(upProj, n2, tokens, fq), tokens, backend, w, scratch(ws, 'up', tokens * upProj.outFeatures, false));
  const act = scratch(ws, 'act', gate.length, false);
  // Attention and SiLU as the calibration model's runBlock computes them (the backend's reference arithmetic), so this
  // forward matches the block outputs that calibration captured bit for bit. A training pass keeps SiLU's exponentials
  // (float64, in the workspace, up to a bound) so that its backward does not compute them again: the same bits.
  const keep = (kernels: ReferenceKernels | null): Float64Array | undefined => {
    if (!kernels || !ws) return undefined;
    const exps = ws.float64('silu-exps', gate.length);
    kernels.siluGateKeep(gate, up, act, exps, gate.length);
    return exps;
  };
  // Native arithmetic: SiLU in float32, its sigmoids kept (also in a forward alone, whose scratch they then are).
  let siluSigmoids: Float32Array | undefined;
  if (native) {
    const sigmoids = scratch(ws, 'silu-sigmoids', gate.length, false);
    await onKernels(own, (k) => (k ? k.siluGateFloat32(gate, up, act, sigmoids, gate.length) : siluGateFloat32Loop(gate, up, act, sigmoids, gate.length)));
    siluSigmoids = sigmoids;
  }
  const siluExps = !native && forBackward && ws && gate.length <= KEPT_EXPONENTIALS ? await onKernels(own, keep) : undefined;
  if (!native && !siluExps) await backend.gatedActivation({ gate, up, out: act, activation: 'silu', reference: true });
  const out = await linear(downProj, await inputOf(downProj, act, tokens, fq), tokens, backend, w, options.transientResults && ws ? ws.uninitialised('out', tokens * hidden) : undefined);
  await addInto(out, h, own);
  return { tokens, lengths, positions, rope, x, n1, q, k, v, attended, h, n2, gate, up, act, siluExps, siluSigmoids, out, quantized: fq };
}

/**
 * The forward pass of one Llama-family decoder block with optional trial weights, computing exactly what
 * `LlamaGraph.runBlock` computes (same kernels, same order) without modifying the block; with `arithmetic: 'native'`
 * the backend's native attention and float32 SiLU instead (within float32 rounding of it).
 *
 * @param config The model's config (sizes, heads, RoPE).
 * @param block The block, for its norms, biases and the weights not overridden.
 * @param input The block's input hidden states.
 * @param backend The backend whose `sgemm` runs the linear layers.
 * @param options `weights`: trial weights by layer name; `rope`: precomputed tables; `arithmetic` (default
 *   `'reference'`).
 * @example
 * ```ts
 * const out = await llamaBlockForward(graph.config, graph.blocks[0], hidden, graph.backend, { weights: new Map([[name, wq]]) });
 * ```
 */
export async function llamaBlockForward(config: LlamaConfig, block: LlamaBlock, input: HiddenStates, backend: Backend, options: BlockPassOptions = {}): Promise<Float32Array> {
  return (await forwardTape(config, block, input, backend, options, false)).out;
}

/**
 * `dX = dY W` and `dW = dY^T X` (and `db = sum_rows dY`) for `Y = X W^T + b`, on the backend's GEMM. Without `dx`
 * (the input gradient is not wanted) only `dW` (and `db`) are formed.
 */
async function linearBackward(
  layer: LinearLayer,
  x: Float32Array,
  dy: Float32Array,
  rows: number,
  backend: Backend,
  weights: ReadonlyMap<string, Float32Array> | undefined,
  dx: Float32Array | undefined,
  accumulate: boolean,
  result: BlockBackwardResult,
  dw: Float32Array,
  adjoint?: LinearInputAdjoint,
): Promise<void> {
  const { outFeatures: n, inFeatures: m } = layer;
  if (rows > 0 && adjoint && dx) {
    // The input quantizer's backward needs this layer's input gradient alone.
    const own = new Float32Array(rows * m);
    await backend.sgemm({ m: rows, n: m, k: n, a: dy, b: weightOf(layer, weights), c: own });
    await adjoint(own);
    if (accumulate) for (let i = 0; i < own.length; i++) dx[i]! += own[i]!;
    else dx.set(own);
  } else if (rows > 0 && dx) {
    await backend.sgemm({ m: rows, n: m, k: n, a: dy, b: weightOf(layer, weights), c: dx, beta: accumulate ? 1 : 0 });
  } else if (dx && !accumulate) dx.fill(0);
  if (rows > 0) await backend.sgemm({ m: n, n: m, k: rows, a: dy, b: x, c: dw, transA: true });
  else dw.fill(0);
  result.weightGradients.set(layer.name, dw);
  if (layer.bias) {
    const db = new Float64Array(n);
    for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) db[j] += dy[r * n + j]!;
    result.biasGradients.set(layer.name, Float32Array.from(db));
  }
}

/**
 * Forward and backward pass of one Llama-family decoder block (RMSNorm, RoPE attention with grouped-query heads
 * and a causal mask, SwiGLU MLP, two residuals), written the way llm.c writes GPT-2's: every linear layer's
 * backward is two GEMMs on the `@bitsmith/linalg` backend (`dX = dY W`, `dW = dY^T X`), attention's backward is five
 * GEMMs per chunk of queries with the softmax recomputed rather than stored (`causalAttentionBackwardGemm`), and the
 * reductions over tokens of norms, keys and values accumulate in float64.
 *
 * The loss is the caller's: `seed` receives the block's output and returns `dLoss/dOutput` (same shape).
 * Run-time input transforms (online Hadamards) and a quantized key/value cache are refused with `UnsupportedFormatError`.
 *
 * @param seed Maps the output `[tokens, hiddenSize]` to the gradient of the loss with respect to it.
 * @param options `weights`: trial weights by layer name (gradients are with respect to these); `rope`: tables.
 * @example
 * ```ts
 * // Gradient of the squared error against a target output:
 * const r = await llamaBlockBackward(config, block, hidden, backend, (y) => y.map((v, i) => 2 * (v - target[i])));
 * r.weightGradients.get('model.layers.0.mlp.down_proj'); // [hidden, intermediate]
 * ```
 */
export async function llamaBlockBackward(
  config: LlamaConfig,
  block: LlamaBlock,
  input: HiddenStates,
  backend: Backend,
  seed: (output: Float32Array) => Float32Array | Promise<Float32Array>,
  options: BlockPassOptions = {},
): Promise<BlockBackwardResult> {
  const t = await forwardTape(config, block, input, backend, options, true);
  const dOut = await seed(t.out);
  if (dOut.length !== t.out.length) throw new InvalidArgumentError('seed', `returned ${dOut.length} values for an output of ${t.out.length}`);
  const w = options.weights;
  const { tokens } = t;
  const hidden = config.hiddenSize;
  const { qProj, kProj, vProj, oProj } = block.selfAttention;
  const { gateProj, upProj, downProj } = requireLlamaComputation(config, block);
  const ws = options.workspace;
  const own = ws?.kernels;
  const transient = options.transientResults === true && ws !== undefined;
  // An input quantizer's adjoints see the input gradients: with one, everything is computed.
  const weightsOnly = options.weightGradientsOnly === true && !options.quantizeInput;
  // With `quantizeInput` the weights multiplied fake-quantized inputs: their gradients use those (and the adjoints).
  const seen = (layer: LinearLayer, x: Float32Array) => t.quantized.inputs.get(layer.name) ?? x;
  const adjointOf = (layer: LinearLayer) => t.quantized.adjoints.get(layer.name);
  const gradientOf = (layer: LinearLayer): Float32Array => {
    const size = layer.outFeatures * layer.inFeatures;
    const given = options.weightGradientsInto?.get(layer.name);
    if (given && given.length === size) return given;
    return transient ? ws.uninitialised(`grad:${layer.name}`, size) : new Float32Array(size);
  };
  const result: BlockBackwardResult = {
    output: t.out,
    inputGradient: weightsOnly ? new Float32Array(0) : transient ? ws.uninitialised('inputGradient', tokens * hidden) : new Float32Array(tokens * hidden),
    weightGradients: new Map(),
    biasGradients: new Map(),
    normGradients: new Map(),
  };

  // MLP: out = h + down(silu(gate) * up), gate/up = linear(n2), n2 = rmsnorm(h).
  const dAct = scratch(ws, 'dAct', t.act.length, false);
  await linearBackward(downProj, seen(downProj, t.act), dOut, tokens, backend, w, dAct, false, result, gradientOf(downProj), adjointOf(downProj));
  // gate/up now hold their gradients: on the backend's threads where it offers them, else here (the same bits).
  const exps = t.siluExps;
  const sigmoids = t.siluSigmoids;
  if (sigmoids) {
    await onKernels(own, (k) => (k ? k.swigluBackwardFloat32(t.gate, t.up, dAct, sigmoids, t.gate, t.up, t.gate.length) : swigluBackwardFloat32Loop(t.gate, t.up, dAct, sigmoids, t.gate, t.up, t.gate.length)));
  } else if (exps) {
    await onKernels(own, (k) => (k ? k.swigluBackwardKept(t.gate, t.up, dAct, exps, t.gate, t.up, t.gate.length) : swigluBackward(t.gate, t.up, dAct, t.gate, t.up, null)));
  } else if (!(await backend.swigluBackward?.({ gate: t.gate, up: t.up, dOut: dAct, dGate: t.gate, dUp: t.up }))) {
    await withReferenceKernels((kernels) => swigluBackward(t.gate, t.up, dAct, t.gate, t.up, kernels));
  }
  const dN2 = scratch(ws, 'dN2', tokens * hidden, false);
  await linearBackward(gateProj, seen(gateProj, t.n2), t.gate, tokens, backend, w, dN2, false, result, gradientOf(gateProj), adjointOf(gateProj));
  await linearBackward(upProj, seen(upProj, t.n2), t.up, tokens, backend, w, dN2, true, result, gradientOf(upProj), adjointOf(upProj));
  const dh = scratch(ws, 'dh', dOut.length, false); // the residual
  dh.set(dOut);
  if (weightsOnly) {
    await rmsNormBackwardRows(t.h, tokens, hidden, block.postAttentionLayernorm.weight, block.postAttentionLayernorm.eps, dN2, dh, true, own);
  } else {
    const dNorm2 = new Float64Array(hidden);
    rmsNormBackward(t.h, tokens, hidden, block.postAttentionLayernorm.weight, block.postAttentionLayernorm.eps, dN2, dh, dNorm2, true);
    result.normGradients.set(block.postAttentionLayernorm.name, Float32Array.from(dNorm2));
  }

  // Attention: h = x + o(attn(rope(q), rope(k), v)), q/k/v = linear(n1), n1 = rmsnorm(x).
  const dAttended = scratch(ws, 'dAttended', t.attended.length, false);
  await linearBackward(oProj, seen(oProj, t.attended), dh, tokens, backend, w, dAttended, false, result, gradientOf(oProj), adjointOf(oProj));
  const shape = { numHeads: config.numAttentionHeads, numKvHeads: config.numKeyValueHeads, headDim: config.headDim, slidingWindow: block.attentionType === 'sliding' ? config.slidingWindow : undefined };
  const dq = scratch(ws, 'dq', t.q.length, false);
  const dk = scratch(ws, 'dk', t.k.length, false);
  const dv = scratch(ws, 'dv', t.v.length, false);
  await causalAttentionBackwardGemm(t.q, t.k, t.v, t.lengths, shape, dAttended, dq, dk, dv, backend, ws ? { scratch: { float32: (name, length) => ws.uninitialised(name, length), float64: (name, length) => ws.float64(name, length) } } : {});
  await ropeRows(dq, t.rope, tokens, config.numAttentionHeads, t.positions, true, own);
  await ropeRows(dk, t.rope, tokens, config.numKeyValueHeads, t.positions, true, own);
  const dN1 = weightsOnly ? undefined : scratch(ws, 'dN1', tokens * hidden, false);
  await linearBackward(qProj, seen(qProj, t.n1), dq, tokens, backend, w, dN1, false, result, gradientOf(qProj), adjointOf(qProj));
  await linearBackward(kProj, seen(kProj, t.n1), dk, tokens, backend, w, dN1, true, result, gradientOf(kProj), adjointOf(kProj));
  await linearBackward(vProj, seen(vProj, t.n1), dv, tokens, backend, w, dN1, true, result, gradientOf(vProj), adjointOf(vProj));
  if (dN1) {
    const dx = result.inputGradient;
    dx.set(dh);
    const dNorm1 = new Float64Array(hidden);
    rmsNormBackward(t.x, tokens, hidden, block.inputLayernorm.weight, block.inputLayernorm.eps, dN1, dx, dNorm1, true);
    result.normGradients.set(block.inputLayernorm.name, Float32Array.from(dNorm1));
  }
  return result;
}
