import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import type { WebgpuBackend, WebgpuMatrix } from './webgpu-backend.js';
import { webgpuAttention, webgpuGatedActivation, webgpuRmsNorm, webgpuRope, type WebgpuSequences } from './webgpu-block.js';

/** A Llama-form decoder block's weights, resident on the GPU (linear weights `[out, in]` as in Hugging Face files). */
export interface WebgpuDecoderBlockWeights {
  /** `hidden` gains. */
  inputNorm: WebgpuMatrix;
  postAttentionNorm: WebgpuMatrix;
  qProj: WebgpuMatrix;
  kProj: WebgpuMatrix;
  vProj: WebgpuMatrix;
  oProj: WebgpuMatrix;
  gateProj: WebgpuMatrix;
  upProj: WebgpuMatrix;
  downProj: WebgpuMatrix;
}

/** Shape and constants of the block. */
export interface WebgpuDecoderBlockGeometry {
  hidden: number;
  intermediate: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  eps: number;
  /** Default `'silu'`. */
  activation?: 'silu' | 'gelu-tanh';
  /** Default `1 / sqrt(headDim)`. */
  scale?: number | undefined;
  softcap?: number | undefined;
  slidingWindow?: number | undefined;
}

/**
 * Hessians to accumulate (`H += X^T X`, float32, upper tiles only: read them with `webgpuCholeskyInverseUpper`),
 * one per distinct linear input: `qkv` (the normed input of q, k and v), `o` (the attention output), `gateUp`
 * (the normed input of gate and up), `down` (the gated product). Each is `in x in` and resident.
 */
export interface WebgpuDecoderBlockHessians {
  qkv?: WebgpuMatrix;
  o?: WebgpuMatrix;
  gateUp?: WebgpuMatrix;
  down?: WebgpuMatrix;
}

/**
 * One Llama-form decoder block on the GPU, all on resident matrices: `h = x + o(attn(rope(q), rope(k), v))` with
 * q, k, v projections of `rmsnorm(x)`, then `out = h + down(act(gate(n)) * up(n))` with `n = rmsnorm(h)`
 * (Touvron et al., arXiv:2302.13971). The projections are the backend's float32 GEMMs; where `hessians` are given,
 * each linear input's `X^T X` is added to them on the GPU, so that calibrating a block for GPTQ
 * (`webgpuCholeskyInverseUpper` then `webgpuGptqSolve`) never copies activations to the host. Everything is queued;
 * nothing is read back.
 *
 * @param backend - A `webgpu` backend.
 * @param args - `x` and `out` (`tokens x hidden`, distinct), `weights`, `geometry`, `sequences`, `cos` and `sin`
 *   (rotary tables, `positions x headDim / 2`), `hessians` (none), `onInput` (none: called, in the order of the
 *   block, with each distinct linear input as soon as its work is queued, `tokens x in` and resident until the work
 *   queued by the callback is done; the callback may queue more GPU work on it but not keep it).
 * @throws `ShapeMismatchError` when a weight does not match the geometry.
 * @example
 * ```ts
 * const seq = webgpuSequences(gpu, lengths);
 * webgpuDecoderBlock(gpu, { x, out, weights, geometry, sequences: seq, cos, sin, hessians: { qkv: hq } });
 * ```
 */
export function webgpuDecoderBlock(
  backend: WebgpuBackend,
  args: {
    x: WebgpuMatrix;
    out: WebgpuMatrix;
    weights: WebgpuDecoderBlockWeights;
    geometry: WebgpuDecoderBlockGeometry;
    sequences: WebgpuSequences;
    cos: WebgpuMatrix;
    sin: WebgpuMatrix;
    hessians?: WebgpuDecoderBlockHessians;
    onInput?: (group: keyof WebgpuDecoderBlockHessians, input: WebgpuMatrix) => void;
  },
): void {
  const { x, out, weights: w, geometry: g, sequences } = args;
  const tokens = sequences.tokens;
  const qWidth = g.numHeads * g.headDim;
  const kvWidth = g.numKvHeads * g.headDim;
  const want: Array<[string, WebgpuMatrix, number, number]> = [
    ['x', x, tokens, g.hidden],
    ['out', out, tokens, g.hidden],
    ['inputNorm', w.inputNorm, 1, g.hidden],
    ['postAttentionNorm', w.postAttentionNorm, 1, g.hidden],
    ['qProj', w.qProj, qWidth, g.hidden],
    ['kProj', w.kProj, kvWidth, g.hidden],
    ['vProj', w.vProj, kvWidth, g.hidden],
    ['oProj', w.oProj, g.hidden, qWidth],
    ['gateProj', w.gateProj, g.intermediate, g.hidden],
    ['upProj', w.upProj, g.intermediate, g.hidden],
    ['downProj', w.downProj, g.hidden, g.intermediate],
  ];
  for (const [name, m, rows, columns] of want) if (m.rows !== rows || m.columns !== columns) throw new ShapeMismatchError(name, [rows, columns], [m.rows, m.columns]);
  if (x === out) throw new InvalidArgumentError('out', 'must be another matrix than x');
  const h = args.hessians ?? {};
  const own: WebgpuMatrix[] = [];
  const scratch = (rows: number, columns: number): WebgpuMatrix => {
    const m = backend.zeros(rows, columns);
    own.push(m);
    return m;
  };
  const accumulate = (hessian: WebgpuMatrix | undefined, input: WebgpuMatrix): void => {
    if (!hessian) return;
    if (hessian.rows !== input.columns || hessian.columns !== input.columns) throw new ShapeMismatchError('hessians', [input.columns, input.columns], [hessian.rows, hessian.columns]);
    backend.gemm({ a: input, b: input, c: hessian, transA: true, beta: 1, upper: true });
  };
  const seen = (group: keyof WebgpuDecoderBlockHessians, input: WebgpuMatrix): void => {
    accumulate(h[group], input);
    args.onInput?.(group, input);
  };
  const linear = (input: WebgpuMatrix, weight: WebgpuMatrix, target: WebgpuMatrix, beta = 0): void => {
    backend.gemm({ a: input, b: weight, c: target, transB: true, beta });
  };
  try {
    const normed = scratch(tokens, g.hidden);
    webgpuRmsNorm(backend, { x, gain: w.inputNorm, out: normed, eps: g.eps });
    seen('qkv', normed);
    const q = scratch(tokens, qWidth);
    const k = scratch(tokens, kvWidth);
    const v = scratch(tokens, kvWidth);
    linear(normed, w.qProj, q);
    linear(normed, w.kProj, k);
    linear(normed, w.vProj, v);
    webgpuRope(backend, { data: q, cos: args.cos, sin: args.sin, heads: g.numHeads, headDim: g.headDim, sequences });
    webgpuRope(backend, { data: k, cos: args.cos, sin: args.sin, heads: g.numKvHeads, headDim: g.headDim, sequences });
    const attended = scratch(tokens, qWidth);
    webgpuAttention(backend, { q, k, v, out: attended, sequences, numHeads: g.numHeads, numKvHeads: g.numKvHeads, headDim: g.headDim, scale: g.scale, softcap: g.softcap, slidingWindow: g.slidingWindow });
    seen('o', attended);
    // h = x + attended W_o^T, formed in `out` (a copy of x, then a GEMM with beta = 1).
    const copy = backend.device.createCommandEncoder();
    copy.copyBufferToBuffer(x.buffer, 0, out.buffer, 0, tokens * g.hidden * 4);
    backend.device.queue.submit([copy.finish()]);
    linear(attended, w.oProj, out, 1);
    const normed2 = scratch(tokens, g.hidden);
    webgpuRmsNorm(backend, { x: out, gain: w.postAttentionNorm, out: normed2, eps: g.eps });
    seen('gateUp', normed2);
    const gate = scratch(tokens, g.intermediate);
    const up = scratch(tokens, g.intermediate);
    linear(normed2, w.gateProj, gate);
    linear(normed2, w.upProj, up);
    webgpuGatedActivation(backend, { gate, up, activation: g.activation ?? 'silu' });
    seen('down', gate);
    linear(gate, w.downProj, out, 1);
  } finally {
    // Destroying a buffer that queued work still uses is allowed: WebGPU frees it once that work is done.
    for (const m of own) backend.release(m);
  }
}
