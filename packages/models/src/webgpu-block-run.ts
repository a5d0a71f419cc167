import type { BlockHessians } from '@bitsmith/core';
import { webgpuDecoderBlock, webgpuSequences, type WebgpuBackend, type WebgpuDecoderBlockHessians, type WebgpuMatrix } from '@bitsmith/linalg';
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

/** A float32 `X^T X` of which only the upper triangle is valid, as a full symmetric float64 matrix times `scale`. */
function symmetricFromUpper(upper: Float32Array, n: number, scale: number): Float64Array {
  const h = new Float64Array(n * n);
  const tile = 64;
  for (let a0 = 0; a0 < n; a0 += tile) {
    const a1 = Math.min(n, a0 + tile);
    for (let b0 = a0; b0 < n; b0 += tile) {
      const b1 = Math.min(n, b0 + tile);
      for (let a = a0; a < a1; a++) {
        for (let b = Math.max(a, b0); b < b1; b++) {
          const v = upper[a * n + b]! * scale;
          h[a * n + b] = v;
          h[b * n + a] = v;
        }
      }
    }
  }
  return h;
}

/** Options of {@link runBlockOnWebgpu}. */
export interface WebgpuBlockRunOptions {
  /** Accumulate the Hessians of these linears (by name); none by default. */
  hessians?: ReadonlySet<string>;
  /** Read the block's output back (default true). */
  output?: boolean;
  /** Most tokens per GPU pass (whole sequences); default {@link WEBGPU_BLOCK_CHUNK_TOKENS}. */
  chunkTokens?: number;
}

/**
 * Runs block `index` of a graph whose backend is `webgpu` on the GPU: its weights are uploaded once, the hidden
 * states go up in chunks of whole sequences, linalg's `webgpuDecoderBlock` runs each chunk, and only the output
 * (and at the end the requested Hessians, `X^T X / tokens` as full float64 matrices) come back: the linears' inputs
 * never leave the GPU. The block must pass {@link webgpuBlockUnsupported}.
 *
 * @returns `output` (unless `output: false`) and `hessians` (when asked; q/k/v and gate/up share one array each).
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
): Promise<{ output?: HiddenStates; hessians?: BlockHessians }> {
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
  const weight = (l: LinearLayer) => upload(l.weight.data, l.outFeatures, l.inFeatures);
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
      const x = gpu.upload(hidden.states.data.subarray(row * width, (row + n) * width), n, width);
      const y = gpu.zeros(n, width);
      const sequences = webgpuSequences(gpu, lengths);
      try {
        webgpuDecoderBlock(gpu, { x, out: y, weights, geometry, sequences, cos, sin, hessians: resident });
        if (out) out.set(await gpu.read(y), row * width);
        else await gpu.finish();
      } finally {
        sequences.release();
        gpu.release(x);
        gpu.release(y);
      }
      row += n;
    }
    const result: { output?: HiddenStates; hessians?: BlockHessians } = {};
    if (out) result.output = { states: { dtype: 'float32', shape: [tokens, width], data: out }, lengths: hidden.lengths };
    if (wanted.size > 0) {
      const hessians = new Map<string, Float64Array>();
      for (const [key, layers] of Object.entries(groups) as [keyof WebgpuDecoderBlockHessians, LinearLayer[]][]) {
        const m = resident[key];
        if (!m) continue;
        const h = symmetricFromUpper(await gpu.read(m), m.rows, 1 / Math.max(1, tokens));
        for (const l of layers) if (wanted.has(l.name)) hessians.set(l.name, h);
      }
      result.hessians = { hessians, tokens };
    }
    return result;
  } finally {
    for (const m of owned) gpu.release(m);
  }
}
