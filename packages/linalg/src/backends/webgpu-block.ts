/// <reference types="@webgpu/types" />
import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import type { WebgpuBackend, WebgpuMatrix } from './webgpu-backend.js';
import { bufferUsage } from './webgpu-device.js';
import { dispatchKernel, kernelPipeline, uniformWords } from './webgpu-gptq-kernels.js';

/**
 * A decoder block's forward pass on resident matrices (Llama form: RMSNorm, rotary embeddings, causal grouped-query
 * attention, SwiGLU/GeGLU MLP), so that a block's calibration runs on the GPU: the kernels here, the projections as
 * the backend's GEMMs, and each linear layer's Hessian `X^T X` accumulated on the GPU where the caller asks.
 */

/** Sequences of a batch stored one after another (`lengths` sum to the rows), positions from 0 in each; on the GPU. */
export interface WebgpuSequences {
  readonly tokens: number;
  readonly lengths: readonly number[];
  readonly maxLength: number;
  /** @internal Per token, the row where its sequence starts (u32). */
  readonly starts: GPUBuffer;
  /** Frees the GPU buffer. */
  release(): void;
}

/**
 * Uploads a batch's sequence layout for {@link webgpuRope} and {@link webgpuAttention}.
 *
 * @param backend - A `webgpu` backend.
 * @param lengths - Tokens per sequence (positive integers).
 * @example
 * ```ts
 * const seq = webgpuSequences(gpu, [512, 512]);
 * ```
 */
export function webgpuSequences(backend: WebgpuBackend, lengths: readonly number[]): WebgpuSequences {
  if (lengths.length === 0 || lengths.some((l) => !Number.isInteger(l) || l < 1)) throw new InvalidArgumentError('lengths', `expected positive integers, got [${lengths.join(', ')}]`);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  const starts = new Uint32Array(tokens);
  for (let s = 0, row = 0; s < lengths.length; s++) {
    const start = row;
    for (let p = 0; p < lengths[s]!; p++) starts[row++] = start;
  }
  const buffer = backend.device.createBuffer({ size: Math.max(16, tokens * 4), usage: bufferUsage().storage | bufferUsage().copyDst });
  backend.device.queue.writeBuffer(buffer, 0, starts);
  return { tokens, lengths: [...lengths], maxLength: Math.max(...lengths), starts: buffer, release: () => buffer.destroy() };
}

const RMS_NORM_SHADER = `
struct P { rows: u32, columns: u32, eps: f32, gainOffset: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gain: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
var<workgroup> part: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x + wg.y * nwg.x;
  if (r >= p.rows) { return; }
  let o = r * p.columns;
  var s = 0.0;
  for (var j = lid; j < p.columns; j += 256u) { let v = x[o + j]; s += v * v; }
  part[lid] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid < w) { part[lid] += part[lid + w]; }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(part[0] / f32(p.columns) + p.eps);
  for (var j = lid; j < p.columns; j += 256u) { out[o + j] = (x[o + j] * scale) * (p.gainOffset + gain[j]); }
}
`;

const ROPE_SHADER = `
struct P { tokens: u32, heads: u32, headDim: u32, pairs: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> data: array<f32>;
@group(0) @binding(2) var<storage, read> cosTable: array<f32>;
@group(0) @binding(3) var<storage, read> sinTable: array<f32>;
@group(0) @binding(4) var<storage, read> starts: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * 256u;
  if (e >= p.pairs) { return; }
  let half = p.headDim / 2u;
  let i = e % half;
  let th = e / half;
  let h = th % p.heads;
  let t = th / p.heads;
  let pos = t - starts[t];
  let c = cosTable[pos * half + i];
  let s = sinTable[pos * half + i];
  let o = t * p.heads * p.headDim + h * p.headDim;
  let a = data[o + i];
  let b = data[o + half + i];
  data[o + i] = a * c - b * s;
  data[o + half + i] = b * c + a * s;
}
`;

/**
 * tanh through exp on a clamped argument: drivers may lower WGSL's tanh to a hardware approximation (about 2^-11
 * relative on NVIDIA) or to a form that is NaN for large arguments; tanh(15) is 1 in float32.
 */
const TANH = `
fn tanhExp(y: f32) -> f32 {
  let e = exp(2.0 * clamp(y, -15.0, 15.0));
  return 1.0 - 2.0 / (e + 1.0);
}
`;

const GATED_SHADER = `${TANH}
struct P { length: u32, activation: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.length) { return; }
  let x = gate[i];
  var a = 0.0;
  if (p.activation == 0u) {
    a = x / (1.0 + exp(-x));
  } else {
    a = 0.5 * x * (1.0 + tanhExp(0.7978845608028654 * (x + 0.044715 * x * x * x)));
  }
  gate[i] = a * up[i];
}
`;

/** Threads of the attention kernel (one workgroup per query token and head). */
const ATTENTION_THREADS = 128;
/** Largest head dimension of the attention kernel. */
const ATTENTION_MAX_HEAD_DIM = 256;

const attentionShader = (maxKeys: number): string => `${TANH}
struct P { numHeads: u32, numKvHeads: u32, headDim: u32, tokens: u32, scale: f32, softcap: f32, window: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> starts: array<u32>;
var<workgroup> qs: array<f32, ${ATTENTION_MAX_HEAD_DIM}>;
var<workgroup> scores: array<f32, ${maxKeys}>;
var<workgroup> red: array<f32, ${ATTENTION_THREADS}>;
@compute @workgroup_size(${ATTENTION_THREADS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let id = wg.x + wg.y * nwg.x;
  if (id >= p.tokens * p.numHeads) { return; }
  let t = id / p.numHeads;
  let h = id % p.numHeads;
  let kvh = h / (p.numHeads / p.numKvHeads);
  let d = p.headDim;
  let qStride = p.numHeads * d;
  let kvStride = p.numKvHeads * d;
  for (var c = lid; c < d; c += ${ATTENTION_THREADS}u) { qs[c] = q[t * qStride + h * d + c]; }
  workgroupBarrier();
  var first = starts[t];
  if (p.window > 0u && t + 1u > first + p.window) { first = t + 1u - p.window; }
  let count = t + 1u - first;
  var m = -3.0e38;
  for (var jj = lid; jj < count; jj += ${ATTENTION_THREADS}u) {
    let o = (first + jj) * kvStride + kvh * d;
    var s = 0.0;
    for (var c = 0u; c < d; c++) { s += qs[c] * k[o + c]; }
    s *= p.scale;
    if (p.softcap > 0.0) { s = p.softcap * tanhExp(s / p.softcap); }
    scores[jj] = s;
    m = max(m, s);
  }
  red[lid] = m;
  workgroupBarrier();
  for (var w = ${ATTENTION_THREADS / 2}u; w > 0u; w >>= 1u) {
    if (lid < w) { red[lid] = max(red[lid], red[lid + w]); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();
  var l = 0.0;
  for (var jj = lid; jj < count; jj += ${ATTENTION_THREADS}u) {
    let e = exp(scores[jj] - mx);
    scores[jj] = e;
    l += e;
  }
  red[lid] = l;
  workgroupBarrier();
  for (var w = ${ATTENTION_THREADS / 2}u; w > 0u; w >>= 1u) {
    if (lid < w) { red[lid] += red[lid + w]; }
    workgroupBarrier();
  }
  let total = red[0];
  for (var c = lid; c < d; c += ${ATTENTION_THREADS}u) {
    var acc = 0.0;
    for (var jj = 0u; jj < count; jj++) { acc += scores[jj] * v[(first + jj) * kvStride + kvh * d + c]; }
    out[t * qStride + h * d + c] = acc / total;
  }
}
`;

const groups2d = (count: number): [number, number] => [Math.min(count, 65535), Math.ceil(count / 65535)];

const expectShape = (name: string, m: WebgpuMatrix, rows: number, columns: number): void => {
  if (m.rows * m.columns !== rows * columns || m.dtype !== 'float32') throw new ShapeMismatchError(name, [rows, columns], [m.rows, m.columns], 'a resident float32 matrix');
};

/**
 * RMSNorm of each row on the GPU: `out = x / sqrt(mean(x^2) + eps) * (gainOffset + gain)` (Zhang & Sennrich,
 * arXiv:1910.07467; Llama's form). Sums of squares in float32 (a tree per row).
 *
 * @param backend - A `webgpu` backend.
 * @param args - `x` (`rows x columns`), `gain` (`columns`), `out` (same shape as `x`, another matrix), `eps`,
 *   `gainOffset` (0; Gemma: 1), `rows` and `columns` (default: `x`'s shape; per-head norms view `x` as
 *   `tokens * heads x headDim`).
 * @example
 * ```ts
 * webgpuRmsNorm(gpu, { x, gain, out: normed, eps: 1e-5 });
 * ```
 */
export function webgpuRmsNorm(backend: WebgpuBackend, args: { x: WebgpuMatrix; gain: WebgpuMatrix; out: WebgpuMatrix; eps: number; gainOffset?: number; rows?: number; columns?: number }): void {
  const rows = args.rows ?? args.x.rows;
  const columns = args.columns ?? args.x.columns;
  expectShape('x', args.x, rows, columns);
  expectShape('out', args.out, rows, columns);
  expectShape('gain', args.gain, 1, columns);
  if (args.x === args.out) throw new InvalidArgumentError('out', 'must be another matrix than x');
  const device = backend.device;
  dispatchKernel(device, kernelPipeline(device, RMS_NORM_SHADER, 'block.rmsNorm'), uniformWords([rows, columns, { f: args.eps }, { f: args.gainOffset ?? 0 }]), [args.x.buffer, args.gain.buffer, args.out.buffer], ...groups2d(rows));
}

/**
 * Rotary position embeddings in place on the GPU, Hugging Face Llama's rotate-half convention (RoFormer,
 * arXiv:2104.09864): per head, `[a, b] -> [a cos - b sin, b cos + a sin]` over the two halves of the head, at each
 * token's position in its sequence.
 *
 * @param backend - A `webgpu` backend.
 * @param args - `data` (`tokens x heads * headDim`), `cos` and `sin` tables (`positions x headDim / 2`, `cos[p][i] =
 *   cos(p * invFreq[i])`, at least `sequences.maxLength` positions), `heads`, `headDim`, `sequences`.
 * @example
 * ```ts
 * webgpuRope(gpu, { data: q, cos, sin, heads: 32, headDim: 128, sequences });
 * ```
 */
export function webgpuRope(backend: WebgpuBackend, args: { data: WebgpuMatrix; cos: WebgpuMatrix; sin: WebgpuMatrix; heads: number; headDim: number; sequences: WebgpuSequences }): void {
  const { data, cos, sin, heads, headDim, sequences } = args;
  const half = headDim / 2;
  if (!Number.isInteger(half) || half < 1) throw new InvalidArgumentError('headDim', `got ${headDim}; expected an even positive integer`);
  expectShape('data', data, sequences.tokens, heads * headDim);
  if (cos.columns !== half || sin.columns !== half || cos.rows < sequences.maxLength || sin.rows < sequences.maxLength) {
    throw new ShapeMismatchError('cos', [sequences.maxLength, half], [cos.rows, cos.columns], 'a table of at least the longest sequence\'s positions');
  }
  const pairs = sequences.tokens * heads * half;
  const device = backend.device;
  dispatchKernel(device, kernelPipeline(device, ROPE_SHADER, 'block.rope'), uniformWords([sequences.tokens, heads, headDim, pairs]), [data.buffer, cos.buffer, sin.buffer, sequences.starts], ...groups2d(Math.ceil(pairs / 256)));
}

/**
 * The gated MLP product in place on the GPU: `gate = act(gate) * up`, with `act` SiLU (SwiGLU, arXiv:2002.05202) or
 * the tanh approximation of GELU (GeGLU).
 *
 * @param backend - A `webgpu` backend.
 * @param args - `gate` (overwritten), `up` (same size), `activation`.
 * @example
 * ```ts
 * webgpuGatedActivation(gpu, { gate: g, up: u, activation: 'silu' });
 * ```
 */
export function webgpuGatedActivation(backend: WebgpuBackend, args: { gate: WebgpuMatrix; up: WebgpuMatrix; activation: 'silu' | 'gelu-tanh' }): void {
  const length = args.gate.rows * args.gate.columns;
  expectShape('up', args.up, args.gate.rows, args.gate.columns);
  if (args.activation !== 'silu' && args.activation !== 'gelu-tanh') throw new InvalidArgumentError('activation', `got ${String(args.activation)}; expected 'silu' or 'gelu-tanh'`);
  const device = backend.device;
  dispatchKernel(device, kernelPipeline(device, GATED_SHADER, 'block.gated'), uniformWords([length, args.activation === 'silu' ? 0 : 1]), [args.gate.buffer, args.up.buffer], ...groups2d(Math.ceil(length / 256)));
}

/**
 * Causal grouped-query attention on the GPU, each sequence attending to itself from position 0 (the contract of
 * `Backend.attention`): one workgroup per query token and head computes the scaled scores against its sequence's
 * keys up to itself (optionally soft-capped and within a sliding window), their softmax and the weighted sum of
 * values. Sequences up to the number of scores that fit workgroup memory (4096 where 32 KiB is available).
 *
 * @param backend - A `webgpu` backend.
 * @param args - `q`, `out` (`tokens x numHeads * headDim`), `k`, `v` (`tokens x numKvHeads * headDim`), `sequences`,
 *   `numHeads`, `numKvHeads` (divides `numHeads`), `headDim` (at most 256), `scale` (`1 / sqrt(headDim)`),
 *   `softcap` (none), `slidingWindow` (none).
 * @throws `InvalidArgumentError` for a sequence longer than the kernel's score buffer.
 * @example
 * ```ts
 * webgpuAttention(gpu, { q, k, v, out, sequences, numHeads: 32, numKvHeads: 8, headDim: 128 });
 * ```
 */
export function webgpuAttention(
  backend: WebgpuBackend,
  args: { q: WebgpuMatrix; k: WebgpuMatrix; v: WebgpuMatrix; out: WebgpuMatrix; sequences: WebgpuSequences; numHeads: number; numKvHeads: number; headDim: number; scale?: number | undefined; softcap?: number | undefined; slidingWindow?: number | undefined },
): void {
  const { q, k, v, out, sequences, numHeads, numKvHeads, headDim } = args;
  if (!(numKvHeads > 0) || numHeads % numKvHeads !== 0) throw new InvalidArgumentError('numKvHeads', `got ${numKvHeads}; expected a divisor of numHeads (${numHeads})`);
  if (headDim > ATTENTION_MAX_HEAD_DIM) throw new InvalidArgumentError('headDim', `got ${headDim}; the kernel takes at most ${ATTENTION_MAX_HEAD_DIM}`);
  const tokens = sequences.tokens;
  expectShape('q', q, tokens, numHeads * headDim);
  expectShape('out', out, tokens, numHeads * headDim);
  expectShape('k', k, tokens, numKvHeads * headDim);
  expectShape('v', v, tokens, numKvHeads * headDim);
  const device = backend.device;
  const free = device.limits.maxComputeWorkgroupStorageSize - 4 * (ATTENTION_MAX_HEAD_DIM + ATTENTION_THREADS);
  const maxKeys = Math.min(4096, 2 ** Math.floor(Math.log2(free / 4)));
  const window = args.slidingWindow ?? 0;
  const keys = window > 0 ? Math.min(window, sequences.maxLength) : sequences.maxLength;
  if (keys > maxKeys) throw new InvalidArgumentError('sequences', `a sequence of ${sequences.maxLength} tokens; the attention kernel takes at most ${maxKeys} keys per query on this device`);
  const scale = args.scale ?? 1 / Math.sqrt(headDim);
  dispatchKernel(
    device,
    kernelPipeline(device, attentionShader(maxKeys), `block.attention${maxKeys}`),
    uniformWords([numHeads, numKvHeads, headDim, tokens, { f: scale }, { f: args.softcap ?? 0 }, window, 0]),
    [q.buffer, k.buffer, v.buffer, out.buffer, sequences.starts],
    ...groups2d(tokens * numHeads),
  );
}
