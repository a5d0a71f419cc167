import { InvalidArgumentError, type BlockHessians, type InputChannelStatistics, type OutputErrorTerms, type ResidentHessian } from '@bitsmith/core';
import {
  sumPartials,
  SUM_OF_SQUARES_PARTIALS,
  webgpuColumnAbsStatistics,
  webgpuDecoderBlock,
  webgpuMirrorUpper,
  webgpuSequences,
  webgpuSubtract,
  webgpuSumOfSquares,
  type WebgpuBackend,
  type WebgpuDecoderBlockHessians,
  type WebgpuMatrix,
} from '@bitsmith/linalg';
import type { HiddenStates, LlamaBlock, LlamaGraph, RmsNormLayer } from './llama-graph.js';
import type { LinearLayer } from './linear-layer.js';
import { ropeTables } from './rope.js';
import { tokenBatches } from './token-batches.js';

/** Tokens per GPU pass of {@link runBlockOnWebgpu} unless told: 16 sequences of 512. */
export const WEBGPU_BLOCK_CHUNK_TOKENS = 8192;

/**
 * Why block `block` of `graph` cannot run on linalg's `webgpuDecoderBlock` (a plain Llama-form block: RMSNorm,
 * rotary attention, dense gated MLP, no biases), or `undefined` when it can. The graph's backend must be `webgpu`.
 *
 * @example
 * ```ts
 * const reason = webgpuBlockUnsupported(graph, graph.blocks[0]!); // undefined: the block runs on the GPU
 * ```
 */
export function webgpuBlockUnsupported(graph: LlamaGraph, block: LlamaBlock): string | undefined {
  const c = graph.config;
  if (graph.backend.name !== 'webgpu') return `the graph's backend is ${graph.backend.name}, not webgpu`;
  if (c.sandwichNorms) return 'sandwich norms (Gemma) are not in the GPU block';
  if (block.qNorm || block.kNorm) return 'per-head q/k norms are not in the GPU block';
  if (!block.mlp || block.moe) return 'mixtures of experts are not in the GPU block';
  if (block.kvCache) return 'a quantized key/value cache is not in the GPU block';
  if (block.auxiliaryLinears.length > 0) return 'auxiliary linears are not in the GPU block';
  for (const l of block.linears) {
    if (l.bias) return `${l.name} has a bias, which the GPU block does not add`;
    if (l.inputTransform) return `${l.name} has a run-time input transform, which the GPU block does not apply`;
  }
  return undefined;
}

function gain(norm: RmsNormLayer): Float32Array {
  if (norm.gainOffset === 0) return norm.weight;
  return Float32Array.from(norm.weight, (w) => norm.gainOffset + w);
}

/** `values * scale` in float64 (a small function, so that the engine optimizes its loop). */
function scaledFloat64(values: Float32Array, scale: number): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i]! * scale;
  return out;
}

/**
 * What a run of {@link runBlockOnWebgpu} with `keepUploads` left on the GPU: the hidden-state chunks of block `index`'s
 * input `hidden` (by identity) and each linear's weight as uploaded, with the `Matrix` it was read from (by identity:
 * a later run may take it as an output-error reference only while the layer still holds that very matrix).
 */
export interface WebgpuBlockUploads {
  readonly index: number;
  readonly hidden: HiddenStates;
  readonly chunks: readonly WebgpuMatrix[];
  readonly weights: ReadonlyMap<string, { readonly source: unknown; readonly matrix: WebgpuMatrix }>;
}

/** Releases what {@link WebgpuBlockUploads} holds, except the matrices in `except` (taken over by someone else). */
export function releaseWebgpuBlockUploads(gpu: WebgpuBackend, uploads: WebgpuBlockUploads, except: ReadonlySet<WebgpuMatrix> = new Set()): void {
  for (const m of uploads.chunks) if (!except.has(m)) gpu.release(m);
  for (const { matrix } of uploads.weights.values()) if (!except.has(matrix)) gpu.release(matrix);
}

/** What {@link runBlockOnWebgpu} returns (each part when asked). */
export interface WebgpuBlockRunResult {
  output?: HiddenStates;
  hessians?: BlockHessians;
  /** With `residentHessians`: each named linear's `X^T X` left on the GPU (shared by q/k/v and by gate/up); release them. */
  residentHessians?: Map<string, WebgpuMatrix>;
  errors?: Map<string, OutputErrorTerms>;
  inputChannels?: Map<string, InputChannelStatistics>;
  /** With `keepUploads`: the chunks and weights this run left on the GPU. */
  uploads?: WebgpuBlockUploads;
}

/**
 * Core's `BlockHessians` for Hessians that {@link runBlockOnWebgpu} left on the GPU (`residentHessians`): each layer's
 * `ResidentHessian` has the handle `{ backend, matrix }` that solvers' GPTQ factors in place, and reads back as the
 * float64 mean `X^T X / tokens` the host path gives. The matrices stay the caller's to release.
 *
 * @example
 * ```ts
 * const run = await runBlockOnWebgpu(graph, 0, hidden, { hessians: names, output: false, residentHessians: true });
 * const given = residentBlockHessians(gpu, run.residentHessians!, run.hessians!.tokens);
 * ```
 */
export function residentBlockHessians(gpu: WebgpuBackend, kept: ReadonlyMap<string, WebgpuMatrix>, tokens: number): BlockHessians {
  const scale = 1 / Math.max(1, tokens);
  const byMatrix = new Map<WebgpuMatrix, ResidentHessian>();
  const resident = new Map<string, ResidentHessian>();
  for (const [name, matrix] of kept) {
    let r = byMatrix.get(matrix);
    if (!r) {
      r = { columns: matrix.columns, handle: { backend: gpu, matrix }, scale, read: async () => scaledFloat64(await gpu.read(matrix), scale) };
      byMatrix.set(matrix, r);
    }
    resident.set(name, r);
  }
  return { hessians: new Map(), tokens, resident };
}

/** Options of {@link runBlockOnWebgpu}. */
export interface WebgpuBlockRunOptions {
  /** Accumulate the Hessians of these linears (by name); none by default. */
  hessians?: ReadonlySet<string>;
  /**
   * Leave the Hessians on the GPU (`residentHessians` of the result: the full symmetric `X^T X`, not divided by the
   * tokens, one matrix per distinct input) instead of reading them back; the caller releases them. Default false.
   */
  residentHessians?: boolean;
  /** Read the block's output back (default true). */
  output?: boolean;
  /** Most tokens per GPU pass (whole sequences); default {@link WEBGPU_BLOCK_CHUNK_TOKENS}. */
  chunkTokens?: number;
  /**
   * Measure these linears' output-error terms (core's `OutputErrorTerms`) against their reference weights (by name,
   * `[out, in]` row-major float32) on the first `rows` rows of their inputs, with the block's current weights as `Q`.
   */
  outputErrors?: { references: ReadonlyMap<string, Float32Array | WebgpuMatrix>; rows: number };
  /**
   * Keep what this run uploaded (the hidden-state chunks and the linears' weights) on the GPU and return it as
   * `uploads` (the caller releases it, or hands it to a later run as `reuse`). Default false.
   */
  keepUploads?: boolean;
  /**
   * Uploads of an earlier run of the same block on the same hidden states (`keepUploads`): its chunks are used instead
   * of uploading the hidden states again (they are not released by this run).
   */
  reuse?: WebgpuBlockUploads;
}

/**
 * Runs block `index` of a graph whose backend is `webgpu` on the GPU: its weights are uploaded once, the hidden
 * states go up in chunks of whole sequences, linalg's `webgpuDecoderBlock` runs each chunk, and only the output
 * (and at the end the requested Hessians, `X^T X / tokens` as full float64 matrices) come back: the linears' inputs
 * never leave the GPU. The block must pass {@link webgpuBlockUnsupported}.
 *
 * With `outputErrors`, each named linear's `||X (W - Q)^T||^2` and `||X W^T||^2` are formed on the GPU too (`W - Q`
 * once per block, two GEMMs per chunk on the first rows, float32 partial sums added in float64 on the host), and the
 * channel statistics of their inputs over the same rows (`inputChannels`: max |x| and sum |x| per input channel).
 *
 * @returns `output` (unless `output: false`), `hessians` (when asked; q/k/v and gate/up share one array each; with
 *   `residentHessians` the map is empty and `residentHessians` holds them on the GPU) and `errors` and `inputChannels`
 *   (with `outputErrors`).
 * @example
 * ```ts
 * const { hessians } = await runBlockOnWebgpu(graph, 0, hidden, { hessians: new Set(['model.layers.0.mlp.down_proj']), output: false });
 * ```
 */
export async function runBlockOnWebgpu(
  graph: LlamaGraph,
  index: number,
  hidden: HiddenStates,
  options: WebgpuBlockRunOptions = {},
): Promise<WebgpuBlockRunResult> {
  const gpu = graph.backend as WebgpuBackend;
  const block = graph.blocks[index]!;
  const c = graph.config;
  const width = c.hiddenSize;
  const [tokens] = hidden.states.shape;
  const wanted = options.hessians ?? new Set<string>();
  const { qProj, kProj, vProj, oProj } = block.selfAttention;
  const { gateProj, upProj, downProj } = block.mlp!;
  const owned: WebgpuMatrix[] = [];
  const upload = (data: Float32Array, rows: number, columns: number): WebgpuMatrix => {
    const m = gpu.upload(data, rows, columns);
    owned.push(m);
    return m;
  };
  const keptWeights = new Map<string, { source: unknown; matrix: WebgpuMatrix }>();
  const weight = (l: LinearLayer): WebgpuMatrix => {
    const source = l.weight;
    const m = upload(source.data as Float32Array, l.outFeatures, l.inFeatures);
    if (options.keepUploads) keptWeights.set(l.name, { source, matrix: m });
    return m;
  };
  const reuse = options.reuse && options.reuse.index === index && options.reuse.hidden === hidden ? options.reuse.chunks : undefined;
  const keptChunks: WebgpuMatrix[] = [];
  try {
    const weights = {
      inputNorm: upload(gain(block.inputLayernorm), 1, width),
      postAttentionNorm: upload(gain(block.postAttentionLayernorm), 1, width),
      qProj: weight(qProj),
      kProj: weight(kProj),
      vProj: weight(vProj),
      oProj: weight(oProj),
      gateProj: weight(gateProj),
      upProj: weight(upProj),
      downProj: weight(downProj),
    };
    const groups: Record<keyof WebgpuDecoderBlockHessians, LinearLayer[]> = { qkv: [qProj, kProj, vProj], o: [oProj], gateUp: [gateProj, upProj], down: [downProj] };
    const resident: WebgpuDecoderBlockHessians = {};
    for (const [key, layers] of Object.entries(groups) as [keyof WebgpuDecoderBlockHessians, LinearLayer[]][]) {
      if (!layers.some((l) => wanted.has(l.name))) continue;
      const n = layers[0]!.inFeatures;
      const m = gpu.zeros(n, n);
      owned.push(m);
      resident[key] = m;
    }
    // Output errors: D = W - Q resident per measured layer (made on first use), two partial-sum slots per layer.
    const measure = options.outputErrors;
    const measured = new Map<string, { slot: number; layer: LinearLayer; weight: WebgpuMatrix; difference?: WebgpuMatrix }>();
    if (measure) {
      if (!Number.isInteger(measure.rows) || measure.rows < 0) throw new InvalidArgumentError('outputErrors.rows', `got ${measure.rows}; expected a non-negative integer`);
      const byName = new Map(Object.entries(weights).map(([key, m]) => [key, m] as const));
      for (const [key, l] of [['qProj', qProj], ['kProj', kProj], ['vProj', vProj], ['oProj', oProj], ['gateProj', gateProj], ['upProj', upProj], ['downProj', downProj]] as const) {
        const reference = measure.references.get(l.name);
        if (!reference) continue;
        const size = reference instanceof Float32Array ? reference.length : reference.rows * reference.columns;
        if (size !== l.outFeatures * l.inFeatures || (!(reference instanceof Float32Array) && (reference.rows !== l.outFeatures || reference.dtype !== 'float32'))) {
          throw new InvalidArgumentError('outputErrors.references', `${l.name}: got ${size} values; expected ${l.outFeatures} x ${l.inFeatures} float32`);
        }
        if (!(reference instanceof Float32Array)) owned.push(reference); // taken over: released with this run's buffers
        measured.set(l.name, { slot: measured.size, layer: l, weight: byName.get(key)! });
      }
    }
    const partials = measured.size > 0 ? gpu.zeros(2 * measured.size, SUM_OF_SQUARES_PARTIALS) : undefined;
    if (partials) owned.push(partials);
    let measuredRows = 0;
    // Channel statistics (max |x|, sum |x|) of each input that a measured layer reads, over the same rows.
    const channels = new Map<keyof WebgpuDecoderBlockHessians, { absMax: WebgpuMatrix; absSum: WebgpuMatrix }>();
    const measureInputs = (take: number) => (group: keyof WebgpuDecoderBlockHessians, input: WebgpuMatrix): void => {
      if (groups[group].some((l) => measured.has(l.name))) {
        let c = channels.get(group);
        if (!c) {
          channels.set(group, (c = { absMax: gpu.zeros(1, input.columns), absSum: gpu.zeros(1, input.columns) }));
          owned.push(c.absMax, c.absSum);
        }
        webgpuColumnAbsStatistics(gpu, { x: input, rows: take, absMax: c.absMax, absSum: c.absSum });
      }
      for (const l of groups[group]) {
        const m = measured.get(l.name);
        if (!m) continue;
        if (!m.difference) {
          // A resident reference (the float weight kept from the Hessian pass) becomes D in place; it is this run's now.
          const reference = measure!.references.get(l.name)!;
          if (reference instanceof Float32Array) m.difference = upload(reference, l.outFeatures, l.inFeatures);
          else m.difference = reference;
          webgpuSubtract(gpu, { a: m.difference, b: m.weight });
        }
        // E = X D^T: its squares; then E + X Q^T = X W^T in the same buffer: its squares.
        const product = gpu.zeros(take, l.outFeatures);
        const strided = { a: input, c: product, m: take, n: l.outFeatures, k: l.inFeatures, lda: l.inFeatures, ldb: l.inFeatures, ldc: l.outFeatures, transB: true };
        gpu.gemmStrided({ ...strided, b: m.difference });
        webgpuSumOfSquares(gpu, { x: product, out: partials!, slot: 2 * m.slot });
        gpu.gemmStrided({ ...strided, b: m.weight, beta: 1 });
        webgpuSumOfSquares(gpu, { x: product, out: partials!, slot: 2 * m.slot + 1 });
        gpu.release(product);
      }
    };
    const maxLength = Math.max(1, ...hidden.lengths);
    const rope = ropeTables(c, maxLength);
    const cos = upload(rope.cos, maxLength, c.headDim / 2);
    const sin = upload(rope.sin, maxLength, c.headDim / 2);
    const geometry = {
      hidden: width,
      intermediate: gateProj.outFeatures,
      numHeads: c.numAttentionHeads,
      numKvHeads: c.numKeyValueHeads,
      headDim: c.headDim,
      eps: block.inputLayernorm.eps,
      activation: c.hiddenActivation,
      scale: c.attentionScale,
      softcap: c.attentionSoftcap,
      slidingWindow: block.attentionType === 'sliding' ? c.slidingWindow : undefined,
    };
    const wantOutput = options.output ?? true;
    const out = wantOutput ? new Float32Array(tokens * width) : undefined;
    let row = 0;
    for (const lengths of tokenBatches(hidden.lengths, options.chunkTokens ?? WEBGPU_BLOCK_CHUNK_TOKENS)) {
      const n = lengths.reduce((a, b) => a + b, 0);
      const chunk = keptChunks.length;
      const reused = reuse?.[chunk] && reuse[chunk]!.rows === n && reuse[chunk]!.columns === width ? reuse[chunk] : undefined;
      const x = reused ?? gpu.upload(hidden.states.data.subarray(row * width, (row + n) * width), n, width);
      keptChunks.push(x);
      const y = gpu.zeros(n, width);
      const sequences = webgpuSequences(gpu, lengths);
      const take = partials ? Math.min(n, measure!.rows - measuredRows) : 0;
      try {
        webgpuDecoderBlock(gpu, { x, out: y, weights, geometry, sequences, cos, sin, hessians: resident, ...(take > 0 ? { onInput: measureInputs(take) } : {}) });
        if (out) out.set(await gpu.read(y), row * width);
        else await gpu.finish();
      } finally {
        sequences.release();
        if (!reused && !options.keepUploads) gpu.release(x);
        gpu.release(y);
      }
      row += n;
      measuredRows += take;
    }
    const result: WebgpuBlockRunResult = {};
    if (measure) {
      result.errors = new Map();
      const sums = partials ? sumPartials(await gpu.read(partials)) : new Float64Array(0);
      for (const [name, m] of measured) result.errors.set(name, { rows: measuredRows, squaredError: sums[2 * m.slot]!, squaredReference: sums[2 * m.slot + 1]! });
      result.inputChannels = new Map();
      for (const [group, c] of channels) {
        const statistics: InputChannelStatistics = { rows: measuredRows, absMax: await gpu.read(c.absMax), absSum: Float64Array.from(await gpu.read(c.absSum)) };
        for (const l of groups[group]) if (measured.has(l.name)) result.inputChannels.set(l.name, statistics);
      }
    }
    if (out) result.output = { states: { dtype: 'float32', shape: [tokens, width], data: out }, lengths: hidden.lengths };
    if (options.keepUploads) {
      for (const { matrix } of keptWeights.values()) owned.splice(owned.indexOf(matrix), 1);
      result.uploads = { index, hidden, chunks: keptChunks, weights: keptWeights };
    }
    if (wanted.size > 0) {
      const hessians = new Map<string, Float64Array>();
      const kept = new Map<string, WebgpuMatrix>();
      for (const [key, layers] of Object.entries(groups) as [keyof WebgpuDecoderBlockHessians, LinearLayer[]][]) {
        const m = resident[key];
        if (!m) continue;
        // Only the upper tiles were accumulated: the lower triangle is mirrored on the GPU, the host only scales.
        webgpuMirrorUpper(gpu, m);
        if (options.residentHessians) {
          owned.splice(owned.indexOf(m), 1);
          for (const l of layers) if (wanted.has(l.name)) kept.set(l.name, m);
          continue;
        }
        const h = scaledFloat64(await gpu.read(m), 1 / Math.max(1, tokens));
        for (const l of layers) if (wanted.has(l.name)) hessians.set(l.name, h);
      }
      result.hessians = { hessians, tokens };
      if (options.residentHessians) result.residentHessians = kept;
    }
    return result;
  } finally {
    for (const m of owned) gpu.release(m);
  }
}
