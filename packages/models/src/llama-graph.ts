import { InvalidArgumentError, ShapeMismatchError, copyMatrix, heldMatrix, heldMatrixAccess, sameMatrix, type ArchitectureMapping, type HeldRowDecoder, type KvCacheQuantization, type Matrix, type Tensor } from '@bitsmith/core';
import { defaultBackend, type Backend } from '@bitsmith/linalg';
import { architectureMapping } from './architecture-mappings.js';
import { cacheAfterAttention, cacheAfterRope, cacheKeysBeforeRope } from './kv-cache.js';
import { applyLinear, createLinearLayer, type LinearInputObserver, type LinearKind, type LinearLayer } from './linear-layer.js';
import { isWeightResident, lazyLinearLayer, peekLinearWeight, type WeightSource } from './lazy-weight.js';
import type { LlamaConfig } from './llama-config.js';
import { ModelFileError } from './model-file-error.js';
import { fusedGatedMlp } from './fused-mlp.js';
import { runMoeMlp, type GatedMlp, type MoeCalibration, type MoeMlp } from './moe-mlp.js';
import { addRmsNorm, rmsNorm } from './rms-norm.js';
import { applyRope, ropeTables, type RopeTables } from './rope.js';

/** An RMSNorm layer: its writable gain vector and epsilon. */
export interface RmsNormLayer {
  /** Always `'rms'` (core's `NormView` type). */
  readonly type: 'rms';
  /** Full module name, e.g. `'model.layers.0.input_layernorm'` (the tensor is `${name}.weight`). */
  readonly name: string;
  /** `[hiddenSize]` gain; writable (rotations fold it into the next linear layers). */
  weight: Float32Array;
  readonly eps: number;
  /** The gain is `gainOffset + weight` (Gemma: 1); 0 otherwise. */
  readonly gainOffset: number;
}

/**
 * Hidden states of a batch of token sequences, stored one sequence after another:
 * `states` is `[sum(lengths), hiddenSize]`; sequence `s` occupies rows `sum(lengths[0..s)) ..`, positions from 0.
 */
export interface HiddenStates {
  readonly states: Matrix<'float32'>;
  readonly lengths: readonly number[];
}

/**
 * One decoder block: attention with its norm, then the MLP with its norm, each with a residual. Gemma adds
 * "sandwich" norms (`postAttentionLayernorm` normalizes the attention output, the MLP reads `preFeedforwardLayernorm`,
 * `postFeedforwardLayernorm` normalizes its output); Qwen3 and Gemma 3 norm each query/key head (`qNorm`, `kNorm`).
 * The MLP is dense (`mlp`) or a mixture of experts (`moe`).
 */
export interface LlamaBlock {
  readonly index: number;
  /** `'model.layers.<index>'`. */
  readonly name: string;
  /** Full causal attention or a sliding window of `config.slidingWindow` tokens. */
  readonly attentionType: 'full' | 'sliding';
  readonly inputLayernorm: RmsNormLayer;
  /** Llama: the norm the MLP reads. Gemma: the norm of the attention output (before the residual add). */
  readonly postAttentionLayernorm: RmsNormLayer;
  /** Gemma: the norm the MLP reads. */
  readonly preFeedforwardLayernorm: RmsNormLayer | undefined;
  /** Gemma: the norm of the MLP output (before the residual add). */
  readonly postFeedforwardLayernorm: RmsNormLayer | undefined;
  /** Per-head RMSNorm of queries and keys (Qwen3, Gemma 3), `[headDim]`. */
  readonly qNorm: RmsNormLayer | undefined;
  readonly kNorm: RmsNormLayer | undefined;
  readonly selfAttention: { readonly qProj: LinearLayer; readonly kProj: LinearLayer; readonly vProj: LinearLayer; readonly oProj: LinearLayer };
  /** The dense gated MLP, or undefined in a mixture-of-experts block. */
  readonly mlp: GatedMlp | undefined;
  /** The mixture-of-experts MLP, or undefined in a dense block. */
  readonly moe: MoeMlp | undefined;
  /** The quantizable linear layers in execution order (q, k, v, o, then the MLP's; experts expert by expert). */
  readonly linears: readonly LinearLayer[];
  /** Linears computed but not quantized by default: a mixture's router and shared-expert gate. */
  readonly auxiliaryLinears: readonly LinearLayer[];
  /** The norms that act on hidden-size vectors, in execution order. */
  readonly norms: readonly RmsNormLayer[];
  /** Key/value-cache quantization applied in every forward pass (set by the recipe runner); undefined: float cache. */
  kvCache: KvCacheQuantization | undefined;
}

/** Options of {@link LlamaGraph.runBlock} and {@link LlamaGraph.forward}. */
export interface RunOptions {
  /** Called with each linear layer's input before it is applied (awaited). */
  observer?: LinearInputObserver;
  /** Checked between blocks and layers; aborting rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Mixture-of-experts blocks under an observer: every token through every expert (default) or routed tokens only. */
  moeCalibration?: MoeCalibration;
  /**
   * Attention and the gated activation with the backends' reference arithmetic (`reference` of `Backend.attention`
   * and `gatedActivation`: float64 softmax and SiLU with `fastExp`, bit for bit on every backend's `sgemm`) instead
   * of a native kernel. The calibration model (`llamaQuantizableModel`) sets it, so that quantized results do not
   * move when a backend's attention gets faster; evaluation and generation use the native kernels, except in blocks
   * that simulate activation or key/value quantization (a layer with an input transform, a quantized cache), which
   * always run the reference. Default `false`.
   */
  reference?: boolean;
  /**
   * The caller reads only what `observer` sees, not the block's output (a statistics pass): once down_proj's input
   * has been observed, its product and the residual are skipped and the block returns empty states (`[0, hidden]`).
   * Only with an observer, in dense MLP blocks whose down_proj has no run-time input transform (other blocks compute
   * their output as before).
   * Default `false`.
   */
  observeOnly?: boolean;
}

/** Options of {@link createLlamaGraph} and `loadLlamaGraph`. */
export interface LlamaGraphOptions {
  /** Numerical backend for the linear layers. Default: `await defaultBackend()` from `@bitsmith/linalg`. */
  backend?: Backend;
  /**
   * Weights to hold lazily: a shape and a source that decodes the weight to float32 on first use, e.g. the checkpoint's
   * bfloat16 bytes. Block linears become `lazyLinearLayer`s; `model.embed_tokens.weight` and `lm_head.weight` become
   * streamed core `heldMatrix`es, which need `rows` (a decoder of a range of rows): the embedding then decodes only the
   * rows it looks up and the head's product a block of rows at a time, until something reads their `data`. Weights
   * it does not know (undefined) come from the lookup.
   */
  lazyWeights?: (name: string) => { readonly shape: readonly number[]; readonly source: WeightSource; readonly rows?: HeldRowDecoder } | undefined;
}

/** Looks up a float32 weight by Hugging Face tensor name; undefined when absent. */
export type WeightLookup = (name: string) => Tensor<'float32'> | undefined;

/**
 * A layer's weight as a tensor for writing: a weight held lazily is produced when `data` is read and not kept, so
 * writing a model out does not bring every weight into memory as float32 at once.
 */
function weightTensor(layer: LinearLayer): Tensor<'float32'> {
  if (isWeightResident(layer)) return layer.weight;
  const shape = [layer.outFeatures, layer.inFeatures];
  return {
    dtype: 'float32',
    shape,
    get data() {
      return peekLinearWeight(layer).data;
    },
  };
}

/** A matrix as a tensor for writing: a held one not in float32 is decoded when `data` is read, and not kept. */
function matrixTensor(m: Matrix<'float32'>): Tensor<'float32'> {
  const held = heldMatrixAccess(m);
  if (!held || held.resident) return m;
  return {
    dtype: 'float32',
    shape: [...m.shape],
    get data() {
      return held.peek();
    },
  };
}

function normGain(norm: RmsNormLayer): Float32Array {
  if (norm.gainOffset === 0) return norm.weight;
  const g = new Float32Array(norm.weight.length);
  for (let i = 0; i < g.length; i++) g[i] = norm.gainOffset + norm.weight[i]!;
  return g;
}

function applyNorm(norm: RmsNormLayer, x: Float32Array, rows: number, out?: Float32Array): Float32Array {
  const n = norm.weight.length;
  return rmsNorm(x, rows, n, normGain(norm), norm.eps, out);
}

function softcap(data: Float32Array, cap: number | undefined): void {
  if (cap === undefined) return;
  for (let i = 0; i < data.length; i++) data[i] = cap * Math.tanh(data[i]! / cap);
}

/**
 * A Hugging Face Llama-family decoder (Llama, Qwen2, Mistral) as a graph of writable layers with a float32
 * forward pass on a `@bitsmith/linalg` backend. Built for quantization: run the embedding, then one block at a
 * time with an observer that sees every linear layer's input, then the head; replace weights between blocks.
 *
 * Create with {@link createLlamaGraph} or `loadLlamaGraph(dir)`.
 *
 * @example
 * ```ts
 * const graph = await loadLlamaGraph('models/tinystories-656k');
 * let hidden = graph.embed([[1, 80, 147]]);
 * for (const block of graph.blocks) hidden = await graph.runBlock(block.index, hidden, { observer: (e) => console.log(e.name, e.input.shape) });
 * const logits = await graph.head(hidden); // [3, vocabSize]
 * ```
 */
export class LlamaGraph {
  readonly config: LlamaConfig;
  readonly backend: Backend;
  /**
   * `[vocabSize, hiddenSize]`. With tied embeddings it is the same object as `lmHead.weight` until one is replaced.
   * Loaded with `keepStoredDtype` from 16-bit weights, a streamed core `heldMatrix` (float32 only once its `data` is read).
   */
  embedTokens: Matrix<'float32'>;
  readonly blocks: readonly LlamaBlock[];
  /** The final norm `model.norm`. */
  readonly norm: RmsNormLayer;
  /** `lm_head`: `[vocabSize, hiddenSize]`. */
  readonly lmHead: LinearLayer;
  private rope: RopeTables;
  private localRope: RopeTables | undefined;
  /**
   * Scratch of {@link runBlock} (normed input, q/k/v, attention output, residual, gate/up), reused from block to
   * block so that a forward pass does not allocate (and collect) them per block; a runBlock that finds it taken (calls
   * overlapping in time) allocates its own. Released by {@link releaseScratch}.
   */
  private scratch = new Map<string, Float32Array>();
  private scratchTaken = false;
  /**
   * The hidden states {@link forward} passes from block to block (two buffers in turn), kept between calls: fresh
   * arrays of this size cost more in page faults than a block's GEMMs on some machines (a new 8 MiB array: about 70 ms
   * here, against 1 ms to write one already mapped).
   */
  private forwardStates: Float32Array[] = [];
  private forwardStatesTaken = false;

  /** @internal Use {@link createLlamaGraph}. */
  constructor(config: LlamaConfig, backend: Backend, embedTokens: Matrix<'float32'>, blocks: LlamaBlock[], norm: RmsNormLayer, lmHead: LinearLayer) {
    this.config = config;
    this.backend = backend;
    this.embedTokens = embedTokens;
    this.blocks = blocks;
    this.norm = norm;
    this.lmHead = lmHead;
    this.rope = ropeTables(config, Math.min(config.maxPositionEmbeddings, 4096));
  }

  /** The architecture's mapping table (which norm feeds which linears, residual writers, fused tensors). */
  get mapping(): ArchitectureMapping {
    return architectureMapping(this.config.modelType);
  }

  /** Whether the LM head and the embedding share one weight matrix (tied and not yet replaced). */
  get tiedEmbeddings(): boolean {
    return sameMatrix(this.lmHead.weight, this.embedTokens);
  }

  /**
   * Gives the LM head its own copy of the weight, so that embedding and head can be changed independently (a held
   * weight not yet decoded gets a new held matrix over the same bytes: nothing is decoded now).
   */
  untieEmbeddings(): void {
    if (this.tiedEmbeddings) this.lmHead.weight = copyMatrix(this.lmHead.weight);
  }

  /** Every block's quantizable linear layers, in execution order (the LM head, routers and gates not included). */
  linearLayers(): LinearLayer[] {
    return this.blocks.flatMap((b) => b.linears);
  }

  /** A linear layer by full name (`'model.layers.0.self_attn.q_proj'` or `'lm_head'`); throws when unknown. */
  linear(name: string): LinearLayer {
    if (name === this.lmHead.name) return this.lmHead;
    const found = this.blocks.flatMap((b) => [...b.linears, ...b.auxiliaryLinears]).find((l) => l.name === name);
    if (!found) throw new InvalidArgumentError('name', `no linear layer named "${name}"`);
    return found;
  }

  /**
   * Looks up token embeddings for a batch of sequences (any lengths; each is its own causal context).
   *
   * @param sequences Token ids per sequence.
   */
  embed(sequences: readonly ArrayLike<number>[]): HiddenStates {
    return this.embedInto(sequences);
  }

  /** {@link embed} into `buffer` (at least `tokens * hiddenSize` floats) when given. */
  private embedInto(sequences: readonly ArrayLike<number>[], buffer?: Float32Array): HiddenStates {
    const hidden = this.config.hiddenSize;
    const vocab = this.embedTokens.shape[0];
    const lengths = sequences.map((s) => s.length);
    const tokens = lengths.reduce((a, b) => a + b, 0);
    const states = buffer ? buffer.subarray(0, tokens * hidden) : new Float32Array(tokens * hidden);
    // A held table not yet in float32 decodes the rows it looks up (the same values as its float32 copy's rows).
    const held = heldMatrixAccess(this.embedTokens);
    const rowsOf = held && !held.resident ? held : undefined;
    const table = rowsOf ? undefined : this.embedTokens.data;
    const scale = Math.fround(this.config.embeddingScale);
    let row = 0;
    for (const seq of sequences) {
      for (let i = 0; i < seq.length; i++, row++) {
        const id = seq[i]!;
        if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new InvalidArgumentError('sequences', `token id ${id} is outside the vocabulary [0, ${vocab})`);
        if (table) states.set(table.subarray(id * hidden, (id + 1) * hidden), row * hidden);
        else rowsOf!.rows(id, id + 1, states.subarray(row * hidden, (row + 1) * hidden));
      }
    }
    if (scale !== 1) for (let i = 0; i < states.length; i++) states[i] = states[i]! * scale;
    return { states: { dtype: 'float32', shape: [tokens, hidden], data: states }, lengths };
  }

  private ropeFor(maxLength: number, type: 'full' | 'sliding'): RopeTables {
    const c = this.config;
    if (type === 'sliding' && c.localRope) {
      const local = { headDim: c.headDim, ropeTheta: c.localRope.theta, ropeScaling: c.localRope.scaling };
      if (!this.localRope || maxLength > this.localRope.positions) this.localRope = ropeTables(local, Math.max(maxLength, 2 * (this.localRope?.positions ?? this.rope.positions)));
      return this.localRope;
    }
    if (maxLength > this.rope.positions) this.rope = ropeTables(c, Math.max(maxLength, 2 * this.rope.positions));
    return this.rope;
  }

  /**
   * Runs block `index` on hidden states and returns new hidden states (the input is not modified).
   * The observer receives the input of q/k/v (the same normed matrix), o_proj, gate/up, and down_proj in turn.
   */
  async runBlock(index: number, input: HiddenStates, options: RunOptions = {}): Promise<HiddenStates> {
    return this.runBlockScratch(index, input, options, false);
  }

  /**
   * {@link runBlock} on the shared scratch when it is free; `constantWeights`: the linears' weights as `constantB`;
   * `output`: where the block's output goes (not the input's buffer), else a new array.
   */
  private async runBlockScratch(index: number, input: HiddenStates, options: RunOptions, constantWeights: boolean, output?: Float32Array): Promise<HiddenStates> {
    const scratch = this.scratchTaken ? undefined : this.scratch;
    this.scratchTaken ||= scratch !== undefined;
    try {
      return await this.runBlockWith(index, input, options, scratch, constantWeights, output);
    } finally {
      if (scratch) this.scratchTaken = false;
    }
  }

  /**
   * Drops the buffers that {@link runBlock} keeps between calls (about `tokens * (2 hidden + 2 q + 2 kv + 2 intermediate)`
   * floats of the largest batch run so far; q and the attention output are `numHeads * headDim` wide, k and v `numKvHeads * headDim`).
   */
  releaseScratch(): void {
    if (!this.scratchTaken) this.scratch.clear();
    if (!this.forwardStatesTaken) this.forwardStates = [];
  }

  private async runBlockWith(
    index: number,
    input: HiddenStates,
    options: RunOptions,
    scratch: Map<string, Float32Array> | undefined,
    constantWeights: boolean,
    output?: Float32Array,
  ): Promise<HiddenStates> {
    const block = this.blocks[index];
    if (!block) throw new InvalidArgumentError('index', `block ${index} does not exist (the graph has ${this.blocks.length})`);
    const { observer, signal } = options;
    signal?.throwIfAborted();
    const c = this.config;
    const hidden = c.hiddenSize;
    const [tokens, columns] = input.states.shape;
    if (columns !== hidden) throw new ShapeMismatchError('hidden states', [tokens, hidden], input.states.shape);
    const lengths = input.lengths;
    const positions = new Int32Array(tokens);
    let maxLength = 0;
    for (let s = 0, row = 0; s < lengths.length; s++) {
      for (let p = 0; p < lengths[s]!; p++) positions[row++] = p;
      maxLength = Math.max(maxLength, lengths[s]!);
    }
    const rope = this.ropeFor(maxLength, block.attentionType);
    const backend = this.backend;
    // Simulated activation or key/value quantization rounds what attention and the activation produce, so float32
    // differences between kernels become different codes there: such blocks run the reference arithmetic too.
    const reference = options.reference === true || simulatesQuantization(block);
    const run = { observer, blockIndex: index, calibration: options.moeCalibration, constantWeight: constantWeights && !observer, reference };
    const x = input.states.data;

    // Attention: h = x + o_proj(attn(rope(q), rope(k), v)) with q, k, v projections of rmsnorm(x).
    // Buffers from the scratch (or new when runBlock calls overlap); only `out` is handed back to the caller.
    const buffer = (name: string, length: number): Float32Array => {
      if (!scratch) return new Float32Array(length);
      let b = scratch.get(name);
      if (!b || b.length < length) {
        b = new Float32Array(length);
        scratch.set(name, b);
      }
      return b.length === length ? b : b.subarray(0, length);
    };
    const into = (name: string, layer: LinearLayer) => ({ ...run, out: buffer(name, tokens * layer.outFeatures) });
    const normed = applyNorm(block.inputLayernorm, x, tokens, buffer('normed', tokens * hidden));
    const { qProj, kProj, vProj, oProj } = block.selfAttention;
    const q = await applyLinear(qProj, normed, tokens, backend, into('q', qProj));
    const k = await applyLinear(kProj, normed, tokens, backend, into('k', kProj));
    const v = await applyLinear(vProj, normed, tokens, backend, into('v', vProj));
    if (block.qNorm) applyNorm(block.qNorm, q, tokens * c.numAttentionHeads, q);
    if (block.kNorm) applyNorm(block.kNorm, k, tokens * c.numKeyValueHeads, k);
    const geometry = { numHeads: c.numAttentionHeads, numKvHeads: c.numKeyValueHeads, headDim: c.headDim };
    await cacheKeysBeforeRope(block.kvCache, k, tokens, geometry);
    applyRope(q, rope, tokens, c.numAttentionHeads, positions);
    applyRope(k, rope, tokens, c.numKeyValueHeads, positions);
    await cacheAfterRope(block.kvCache, q, k, v, tokens, geometry, backend);
    const attended = buffer('attended', tokens * c.numAttentionHeads * c.headDim);
    await backend.attention({
      q,
      k,
      v,
      out: attended,
      lengths,
      numHeads: c.numAttentionHeads,
      numKvHeads: c.numKeyValueHeads,
      headDim: c.headDim,
      slidingWindow: block.attentionType === 'sliding' ? c.slidingWindow : undefined,
      scale: c.attentionScale,
      softcap: c.attentionSoftcap,
      reference,
    });
    signal?.throwIfAborted();
    await cacheAfterAttention(block.kvCache, attended, tokens, geometry, backend);
    const h = await applyLinear(oProj, attended, tokens, backend, into('h', oProj));
    if (c.sandwichNorms) applyNorm(block.postAttentionLayernorm, h, tokens, h);

    // MLP: out = h + down_proj(act(gate_proj(n)) * up_proj(n)) with n = rmsnorm(h) (or the mixture of experts); the
    // residual add and the norm in one pass (the same bits as the add loop and then applyNorm).
    const mlpNorm = c.sandwichNorms ? block.preFeedforwardLayernorm! : block.postAttentionLayernorm;
    addRmsNorm(h, x, tokens, hidden, normGain(mlpNorm), mlpNorm.eps, normed);
    let out: Float32Array;
    if (block.moe) {
      out = await runMoeMlp(block.moe, normed, tokens, { moe: c.moe!, hiddenSize: hidden, hiddenActivation: c.hiddenActivation }, backend, run);
    } else {
      const { gateProj, upProj, downProj } = block.mlp!;
      // With constant weights and the native activation, the backend may run the whole MLP in one call (same bits;
      // its wide intermediates never come back to JavaScript).
      const fused = run.constantWeight && !reference ? await fusedGatedMlp(backend, block.mlp!, normed, tokens, c.hiddenActivation, output) : undefined;
      if (fused) out = fused;
      else {
        const gate = await applyLinear(gateProj, normed, tokens, backend, into('gate', gateProj));
        const up = await applyLinear(upProj, normed, tokens, backend, into('up', upProj));
        await backend.gatedActivation({ gate, up, out: gate, activation: c.hiddenActivation, reference });
        if (options.observeOnly && observer && !downProj.inputTransform && !c.sandwichNorms) {
          // Statistics only: down_proj's input is all the caller reads (its product is not needed).
          await observer({ name: downProj.name, layer: downProj, blockIndex: index, input: { dtype: 'float32', shape: [tokens, downProj.inFeatures], data: gate.subarray(0, tokens * downProj.inFeatures) } });
          return { states: { dtype: 'float32', shape: [0, hidden], data: new Float32Array(0) }, lengths: [] };
        }
        out = await applyLinear(downProj, gate, tokens, backend, output ? { ...run, out: output.subarray(0, tokens * hidden) } : run);
      }
    }
    if (c.sandwichNorms) applyNorm(block.postFeedforwardLayernorm!, out, tokens, out);
    for (let i = 0; i < out.length; i++) out[i]! += h[i]!;
    return { states: { dtype: 'float32', shape: [tokens, hidden], data: out }, lengths };
  }

  /**
   * Final norm and LM head: logits `[rows, vocabSize]` for every token, or only for each sequence's last token
   * (`lastTokenOnly`, one row per sequence). `out`: a buffer for the logits (at least rows x vocabulary floats);
   * `normed`: a buffer for the normed states (used when it holds at least rows x hidden floats), else a new array.
   */
  async head(
    hidden: HiddenStates,
    options: { lastTokenOnly?: boolean; observer?: LinearInputObserver; constantWeight?: boolean; out?: Float32Array; normed?: Float32Array } = {},
  ): Promise<Matrix<'float32'>> {
    const size = this.config.hiddenSize;
    let states = hidden.states.data;
    let rows = hidden.states.shape[0];
    if (options.lastTokenOnly) {
      const picked = new Float32Array(hidden.lengths.length * size);
      let end = 0;
      hidden.lengths.forEach((n, s) => {
        end += n;
        if (n === 0) throw new InvalidArgumentError('hidden', `sequence ${s} is empty`);
        picked.set(states.subarray((end - 1) * size, end * size), s * size);
      });
      states = picked;
      rows = hidden.lengths.length;
    }
    const normed = applyNorm(this.norm, states, rows, options.normed && options.normed.length >= rows * size ? options.normed.subarray(0, rows * size) : undefined);
    const logitsLength = rows * this.lmHead.outFeatures;
    if (options.out && options.out.length < logitsLength) throw new ShapeMismatchError('out', [logitsLength], [options.out.length], 'at least rows x vocabulary floats');
    const logits = await applyLinear(this.lmHead, normed, rows, this.backend, {
      observer: options.observer,
      blockIndex: -1,
      constantWeight: options.constantWeight === true && !options.observer,
      ...(options.out ? { out: options.out.subarray(0, logitsLength) } : {}),
    });
    softcap(logits, this.config.finalLogitSoftcap);
    return { dtype: 'float32', shape: [rows, this.lmHead.outFeatures], data: logits };
  }

  /**
   * The whole forward pass: embedding, every block, head. Returns logits `[tokens, vocabSize]` (or one row per
   * sequence with `lastTokenOnly`). Without an observer, the linear layers pass their weights as `constantB`, which
   * lets the `ort` backend keep them packed between calls (long inputs only; the logits can differ from
   * {@link runBlock}'s path in the last bits). Calibration runs {@link runBlock}, whose products stay the plain ones.
   * `logits`: a buffer (at least rows x vocabulary floats) the logits are written to and returned in, so that a caller
   * running many batches (evaluation) reuses one array instead of mapping fresh memory for every batch.
   */
  async forward(sequences: readonly ArrayLike<number>[], options: RunOptions & { lastTokenOnly?: boolean; logits?: Float32Array } = {}): Promise<Matrix<'float32'>> {
    // The hidden states go back and forth between two buffers kept by the graph (when no other forward holds them).
    const own = !this.forwardStatesTaken;
    this.forwardStatesTaken ||= own;
    try {
      const size = sequences.reduce((n, s) => n + s.length, 0) * this.config.hiddenSize;
      const states = own ? [0, 1].map((i) => (this.forwardStates[i] && this.forwardStates[i]!.length >= size ? this.forwardStates[i]! : (this.forwardStates[i] = new Float32Array(size)))) : undefined;
      let hidden = this.embedInto(sequences, states?.[0]);
      for (const block of this.blocks) hidden = await this.runBlockScratch(block.index, hidden, options, true, states?.[(block.index + 1) % 2]);
      options.signal?.throwIfAborted();
      // Block i writes into states[(i + 1) % 2], so the last block's output is in states[L % 2]; the final norm goes
      // into the other buffer, which held the last block's input (free now), not into fresh memory.
      const normed = states?.[(this.blocks.length + 1) % 2];
      return await this.head(hidden, { lastTokenOnly: options.lastTokenOnly, observer: options.observer, constantWeight: true, out: options.logits, normed });
    } finally {
      if (own) this.forwardStatesTaken = false;
    }
  }

  /**
   * The graph's current weights under their Hugging Face names, ready for `writeSafetensors` (tied embeddings are
   * written once, as `model.embed_tokens.weight`, when embedding and head still share one matrix).
   */
  tensors(): Map<string, Tensor<'float32'>> {
    const out = new Map<string, Tensor<'float32'>>();
    const vec = (data: Float32Array): Tensor<'float32'> => ({ dtype: 'float32', shape: [data.length], data });
    const fused = Object.entries(this.mapping.fused);
    out.set('model.embed_tokens.weight', matrixTensor(this.embedTokens));
    for (const block of this.blocks) {
      for (const norm of [...block.norms, block.qNorm, block.kNorm]) if (norm) out.set(`${norm.name}.weight`, vec(norm.weight));
      const written = new Set<LinearLayer>();
      // Fused checkpoint tensors (Phi-3's qkv_proj, gate_up_proj) are written as their parts' rows stacked.
      for (const [fusedName, parts] of fused) {
        const layers = parts.map((p) => block.linears.find((l) => l.name === `${block.name}.${p}`));
        if (layers.some((l) => !l)) continue;
        const columns = layers[0]!.inFeatures;
        const rows = layers.reduce((n, l) => n + l!.outFeatures, 0);
        const data = new Float32Array(rows * columns);
        let offset = 0;
        for (const l of layers) {
          // A part held lazily is decoded for the copy and not kept in float32.
          const weight = peekLinearWeight(l!).data;
          data.set(weight, offset);
          offset += weight.length;
          written.add(l!);
        }
        out.set(`${block.name}.${fusedName}.weight`, { dtype: 'float32', shape: [rows, columns], data });
      }
      for (const l of [...block.linears, ...block.auxiliaryLinears]) {
        if (written.has(l)) continue;
        out.set(`${l.name}.weight`, weightTensor(l));
        if (l.bias) out.set(`${l.name}.bias`, vec(l.bias));
      }
    }
    out.set(`${this.norm.name}.weight`, vec(this.norm.weight));
    if (!this.tiedEmbeddings || !this.config.tieWordEmbeddings) out.set('lm_head.weight', matrixTensor(this.lmHead.weight));
    return out;
  }
}

/**
 * Builds a {@link LlamaGraph} from a config and a weight lookup by Hugging Face tensor name. With
 * `tie_word_embeddings`, the embedding table and the head share one matrix, taken from `model.embed_tokens.weight`
 * or, when only that is stored, from `lm_head.weight`.
 *
 * @param options `backend`: default `await defaultBackend()`.
 * @throws ModelFileError naming a missing tensor or one of the wrong shape.
 * @example
 * ```ts
 * const weights = new Map(...); // name -> Tensor<'float32'>
 * const graph = await createLlamaGraph(config, (name) => weights.get(name));
 * ```
 */
export async function createLlamaGraph(config: LlamaConfig, weights: WeightLookup, options: LlamaGraphOptions = {}, source = 'weights'): Promise<LlamaGraph> {
  const backend = options.backend ?? (await defaultBackend());
  const get = (name: string, shape: readonly number[], optional = false): Float32Array | undefined => {
    const t = weights(name);
    if (!t) {
      if (optional) return undefined;
      throw new ModelFileError(source, `missing tensor "${name}" (expected shape [${shape.join(', ')}])`);
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ModelFileError(source, `tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}] from config.json`);
    }
    return t.data;
  };
  const need = (name: string, shape: readonly number[]): Float32Array => get(name, shape)!;
  const mat = (data: Float32Array, rows: number, columns: number): Matrix<'float32'> => ({ dtype: 'float32', shape: [rows, columns], data });
  const { hiddenSize: hs, intermediateSize: is, vocabSize: vs, numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: hd, rmsNormEps: eps } = config;

  // Embedding and head: a streamed held matrix when the caller holds them lazily with a row decoder, else float32.
  const table = (name: string): Matrix<'float32'> | undefined => {
    const lazy = options.lazyWeights?.(name);
    if (lazy && (lazy.shape.length !== 2 || lazy.shape[0] !== vs || lazy.shape[1] !== hs)) {
      throw new ModelFileError(source, `tensor "${name}" has shape [${lazy.shape.join(', ')}], expected [${vs}, ${hs}] from config.json`);
    }
    if (lazy?.rows) return heldMatrix(vs, hs, lazy.rows, { streamed: true, whole: lazy.source });
    const data = lazy ? lazy.source() : get(name, [vs, hs], true);
    return data ? mat(data, vs, hs) : undefined;
  };
  let embedTokens = table('model.embed_tokens.weight');
  let headWeight = table('lm_head.weight');
  if (config.tieWordEmbeddings) {
    const shared = embedTokens ?? headWeight;
    if (!shared) throw new ModelFileError(source, `missing tensor "model.embed_tokens.weight" (or "lm_head.weight", tied) of shape [${vs}, ${hs}]`);
    embedTokens = shared;
    headWeight = shared;
  }
  embedTokens ??= mat(need('model.embed_tokens.weight', [vs, hs]), vs, hs);
  headWeight ??= mat(need('lm_head.weight', [vs, hs]), vs, hs);

  // A fused checkpoint tensor (Phi-3's qkv_proj, gate_up_proj) split into its parts by rows. Held lazily, each part
  // decodes only its own rows when used (so the fused tensors stay in their stored dtype, or on disk, like the rest).
  const fusedParts = (name: string, parts: readonly { kind: LinearKind; rows: number }[], inp: number): LinearLayer[] => {
    const total = parts.reduce((n, p) => n + p.rows, 0);
    const prefix = name.slice(0, name.lastIndexOf('.'));
    const lazy = options.lazyWeights?.(`${name}.weight`);
    if (lazy) {
      if (lazy.shape.length !== 2 || lazy.shape[0] !== total || lazy.shape[1] !== inp) {
        throw new ModelFileError(source, `tensor "${name}.weight" has shape [${lazy.shape.join(', ')}], expected [${total}, ${inp}] from config.json`);
      }
      const decodeRows = lazy.rows;
      let start = 0;
      return parts.map((p) => {
        const from = start;
        start += p.rows;
        const part: WeightSource = decodeRows
          ? () => {
              const out = new Float32Array(p.rows * inp);
              decodeRows(from, from + p.rows, out);
              return out;
            }
          : () => lazy.source().slice(from * inp, (from + p.rows) * inp);
        return lazyLinearLayer(`${prefix}.${p.kind}`, p.kind, [p.rows, inp], part);
      });
    }
    const data = need(`${name}.weight`, [total, inp]);
    let offset = 0;
    return parts.map((p) => {
      const w = data.slice(offset * inp, (offset + p.rows) * inp);
      offset += p.rows;
      return createLinearLayer(`${prefix}.${p.kind}`, p.kind, mat(w, p.rows, inp));
    });
  };
  const linear = (prefix: string, kind: LinearKind, out: number, inp: number, bias: boolean, module: string = kind): LinearLayer => {
    const name = `${prefix}.${module}`;
    const lazy = options.lazyWeights?.(`${name}.weight`);
    if (lazy) {
      if (lazy.shape.length !== 2 || lazy.shape[0] !== out || lazy.shape[1] !== inp) {
        throw new ModelFileError(source, `tensor "${name}.weight" has shape [${lazy.shape.join(', ')}], expected [${out}, ${inp}] from config.json`);
      }
      return lazyLinearLayer(name, kind, [out, inp], lazy.source, bias ? need(`${name}.bias`, [out]) : undefined);
    }
    return createLinearLayer(name, kind, mat(need(`${name}.weight`, [out, inp]), out, inp), bias ? need(`${name}.bias`, [out]) : undefined);
  };
  const norm = (name: string, size = hs): RmsNormLayer => ({ type: 'rms', name, weight: need(`${name}.weight`, [size]), eps, gainOffset: config.normGainOffset });
  const gatedMlp = (prefix: string, intermediate: number, bias: boolean): GatedMlp => ({
    gateProj: linear(prefix, 'gate_proj', intermediate, hs, bias),
    upProj: linear(prefix, 'up_proj', intermediate, hs, bias),
    downProj: linear(prefix, 'down_proj', hs, intermediate, bias),
  });
  const blocks: LlamaBlock[] = [];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const name = `model.layers.${i}`;
    const attn = `${name}.self_attn`;
    let qProj: LinearLayer, kProj: LinearLayer, vProj: LinearLayer;
    if (config.fusedProjections) {
      [qProj, kProj, vProj] = fusedParts(`${attn}.qkv_proj`, [{ kind: 'q_proj', rows: nh * hd }, { kind: 'k_proj', rows: nkv * hd }, { kind: 'v_proj', rows: nkv * hd }], hs) as [LinearLayer, LinearLayer, LinearLayer];
    } else {
      qProj = linear(attn, 'q_proj', nh * hd, hs, config.qkvBias);
      kProj = linear(attn, 'k_proj', nkv * hd, hs, config.qkvBias);
      vProj = linear(attn, 'v_proj', nkv * hd, hs, config.qkvBias);
    }
    const selfAttention = { qProj, kProj, vProj, oProj: linear(attn, 'o_proj', hs, nh * hd, config.outputBias) };
    let mlp: GatedMlp | undefined;
    let moe: MoeMlp | undefined;
    const moeConfig = config.moe;
    if (moeConfig && moeConfig.sparseLayers[i]) {
      const p = `${name}.mlp`;
      const sharedSize = moeConfig.sharedExpertIntermediateSize;
      moe = {
        router: linear(p, 'router', moeConfig.numExperts, hs, false, 'gate'),
        experts: Array.from({ length: moeConfig.numExperts }, (_, e) => gatedMlp(`${p}.experts.${e}`, moeConfig.expertIntermediateSize, false)),
        sharedExpert: sharedSize > 0 ? gatedMlp(`${p}.shared_expert`, sharedSize, false) : undefined,
        sharedExpertGate: sharedSize > 0 ? linear(p, 'shared_expert_gate', 1, hs, false) : undefined,
      };
    } else if (config.fusedProjections) {
      const [gateProj, upProj] = fusedParts(`${name}.mlp.gate_up_proj`, [{ kind: 'gate_proj', rows: is }, { kind: 'up_proj', rows: is }], hs) as [LinearLayer, LinearLayer];
      mlp = { gateProj, upProj, downProj: linear(`${name}.mlp`, 'down_proj', hs, is, false) };
    } else {
      mlp = gatedMlp(`${name}.mlp`, is, config.mlpBias);
    }
    const inputLayernorm = norm(`${name}.input_layernorm`);
    const postAttentionLayernorm = norm(`${name}.post_attention_layernorm`);
    const preFeedforwardLayernorm = config.sandwichNorms ? norm(`${name}.pre_feedforward_layernorm`) : undefined;
    const postFeedforwardLayernorm = config.sandwichNorms ? norm(`${name}.post_feedforward_layernorm`) : undefined;
    const mlpLinears = mlp
      ? [mlp.gateProj, mlp.upProj, mlp.downProj]
      : [...moe!.experts.flatMap((e) => [e.gateProj, e.upProj, e.downProj]), ...(moe!.sharedExpert ? [moe!.sharedExpert.gateProj, moe!.sharedExpert.upProj, moe!.sharedExpert.downProj] : [])];
    blocks.push({
      index: i,
      name,
      attentionType: config.layerTypes[i]!,
      inputLayernorm,
      postAttentionLayernorm,
      preFeedforwardLayernorm,
      postFeedforwardLayernorm,
      qNorm: config.qkNorm ? norm(`${attn}.q_norm`, hd) : undefined,
      kNorm: config.qkNorm ? norm(`${attn}.k_norm`, hd) : undefined,
      selfAttention,
      mlp,
      moe,
      linears: [qProj, kProj, vProj, selfAttention.oProj, ...mlpLinears],
      auxiliaryLinears: moe ? [moe.router, ...(moe.sharedExpertGate ? [moe.sharedExpertGate] : [])] : [],
      norms: [inputLayernorm, postAttentionLayernorm, ...(preFeedforwardLayernorm ? [preFeedforwardLayernorm, postFeedforwardLayernorm!] : [])],
      kvCache: undefined,
    });
  }
  const finalNorm = norm('model.norm');
  const lmHead = createLinearLayer('lm_head', 'lm_head', headWeight);
  return new LlamaGraph(config, backend, embedTokens, blocks, finalNorm, lmHead);
}

/** Whether a block simulates quantized activations or a quantized key/value cache (input transforms, a cache quantizer). */
function simulatesQuantization(block: LlamaBlock): boolean {
  if (block.kvCache) return true;
  for (const layer of [...block.linears, ...block.auxiliaryLinears]) if (layer.inputTransform) return true;
  return false;
}
