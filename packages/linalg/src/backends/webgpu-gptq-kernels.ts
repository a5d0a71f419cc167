/// <reference types="@webgpu/types" />
import { bufferUsage } from './webgpu-device.js';

/**
 * WGSL kernels of GPTQ's GPU path that keep the factor and the column loop free of round trips to the CPU: the
 * Hessian's dampening and reversal, the diagonal blocks of the blocked Cholesky and their inverses, the weight's
 * transpose, the min-max group scales and the codes' repacking. Internal to the `webgpu` backend's GPTQ functions.
 */

/** Elements of the packed lower triangle of a `b x b` block (row `i` holds columns `0..i`). */
export const packedTriangle = (b: number): number => (b * (b + 1)) / 2;

/**
 * Mean of the diagonal of `H` (`n x n`, float32) into `stats[0]`, one workgroup: each thread sums a strided share,
 * then a tree reduction in workgroup memory.
 */
export const MEAN_DIAGONAL_SHADER = `
struct P { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
var<workgroup> part: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < p.n; i += 256u) { s += h[i * p.n + i]; }
  part[lid] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid < w) { part[lid] += part[lid + w]; }
    workgroupBarrier();
  }
  if (lid == 0u) { stats[0] = part[0] / f32(p.n); }
}
`;

/**
 * `A = J (H + d I) J` with `J` the reversal and `d = damp * stats[0]`, reading only the upper triangle of `H`
 * (`A[i][j] = H[min(n-1-i, n-1-j)][max(n-1-i, n-1-j)]`), so that `H` may hold garbage below its diagonal (a Gram
 * matrix of which only the upper tiles were formed).
 */
export const REVERSE_DAMP_SHADER = `
struct P { n: u32, pad0: u32, damp: f32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> a: array<f32>;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y;
  let j = gid.x;
  if (i >= p.n || j >= p.n) { return; }
  let ri = p.n - 1u - i;
  let rj = p.n - 1u - j;
  var v = h[min(ri, rj) * p.n + max(ri, rj)];
  if (i == j) { v += p.damp * stats[0]; }
  a[i * p.n + j] = v;
}
`;

/**
 * One diagonal block of the blocked right-looking Cholesky of `A` (order `n`, block at `k0`, `kb <= b` rows), in one
 * workgroup: the block's lower triangle is read into workgroup memory (packed), factored column by column
 * (`l_kk = sqrt(a_kk)`, the column below scaled, the trailing triangle updated by its outer product), then thread `j`
 * forms column `j` of `L_kk^-1` by forward substitution and writes it to `inv` (`kb x kb` at `invOffset`, leading
 * dimension `kb`) and to the diagonal block of `x` (`L^-1`, leading dimension `n`). A pivot that is not positive
 * is recorded in `status` (`[0]`: 1 + its row in `A`, `[1]`: the pivot's bits; the first one only) and replaced by 1
 * so that the rest stays finite; the caller reads `status` once at the end.
 */
export const diagonalBlockShader = (b: number): string => `
struct P { n: u32, k0: u32, kb: u32, invOffset: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> inv: array<f32>;
@group(0) @binding(4) var<storage, read_write> status: array<u32>;
var<workgroup> t: array<f32, ${packedTriangle(b)}>;
fn at(i: u32, j: u32) -> u32 { return i * (i + 1u) / 2u + j; }
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  let n = p.n;
  let kb = p.kb;
  let base = p.k0 * n + p.k0;
  for (var e = lid; e < kb * kb; e += 256u) {
    let i = e / kb;
    let j = e % kb;
    if (j <= i) { t[at(i, j)] = a[base + i * n + j]; }
  }
  workgroupBarrier();
  for (var k = 0u; k < kb; k++) {
    let d = t[at(k, k)];
    var r = 1.0;
    if (d > 0.0) { r = sqrt(d); } else if (lid == 0u && status[0] == 0u) { status[0] = p.k0 + k + 1u; status[1] = bitcast<u32>(d); }
    for (var i = k + 1u + lid; i < kb; i += 256u) { t[at(i, k)] = t[at(i, k)] / r; }
    workgroupBarrier();
    if (lid == 0u) { t[at(k, k)] = r; }
    let m = kb - k - 1u;
    for (var e = lid; e < m * m; e += 256u) {
      let i = k + 1u + e / m;
      let j = k + 1u + e % m;
      if (j <= i) { t[at(i, j)] = t[at(i, j)] - t[at(i, k)] * t[at(j, k)]; }
    }
    workgroupBarrier();
  }
  if (lid < kb) {
    let j = lid;
    let o = p.invOffset;
    let xj = 1.0 / t[at(j, j)];
    inv[o + j * kb + j] = xj;
    x[base + j * n + j] = xj;
    for (var i = j + 1u; i < kb; i++) {
      var s = 0.0;
      for (var q = j; q < i; q++) { s += t[at(i, q)] * inv[o + q * kb + j]; }
      let v = -s / t[at(i, i)];
      inv[o + i * kb + j] = v;
      x[base + i * n + j] = v;
    }
  }
}
`;

/** `out = in^T` for a row-major `rows x columns` float32 matrix, through 16 x 16 tiles in workgroup memory. */
export const TRANSPOSE_SHADER = `
struct P { rows: u32, columns: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
var<workgroup> tile: array<f32, ${16 * 17}>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wg.y * 16u + lid.y;
  let c = wg.x * 16u + lid.x;
  if (r < p.rows && c < p.columns) { tile[lid.y * 17u + lid.x] = src[r * p.columns + c]; }
  workgroupBarrier();
  let tr = wg.x * 16u + lid.y;
  let tc = wg.y * 16u + lid.x;
  if (tr < p.columns && tc < p.rows) { dst[tr * p.rows + tc] = tile[lid.x * 17u + lid.y]; }
}
`;

/**
 * Min-max scales of one group, one thread per row, from the group's current weights `wt[(start + j) * rows + r]`
 * (`width` columns). Asymmetric (`symmetric == 0`): `lo = min(0, min)`, `hi = max(0, max)`, `scale = (hi - lo) /
 * maxCode`, `zero = floor(-lo / scale + 0.5)` (0 where the scale is 0). Symmetric: `scale = 2 max(-lo, hi) /
 * maxCode`, `zero = (maxCode + 1) / 2`. Written at `group * rows + r`.
 */
export const MIN_MAX_SCALES_SHADER = `
struct P { rows: u32, start: u32, width: u32, group: u32, maxCode: f32, symmetric: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> wt: array<f32>;
@group(0) @binding(2) var<storage, read_write> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> zero: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  if (r >= p.rows) { return; }
  var lo = 0.0;
  var hi = 0.0;
  for (var j = 0u; j < p.width; j++) {
    let v = wt[(p.start + j) * p.rows + r];
    lo = min(lo, v);
    hi = max(hi, v);
  }
  var s = 0.0;
  var z = 0.0;
  if (p.symmetric != 0u) {
    s = 2.0 * max(-lo, hi) / p.maxCode;
    z = (p.maxCode + 1.0) / 2.0;
  } else {
    s = (hi - lo) / p.maxCode;
    if (s > 0.0) { z = floor(-lo / s + 0.5); }
  }
  scale[p.group * p.rows + r] = s;
  zero[p.group * p.rows + r] = z;
}
`;

/**
 * Byte codes from the solve's layout (word `(i / 4) * rows + r` holds columns `i..i+3` of row `r`, one byte each) to
 * `columns x rows` bytes (byte `i * rows + r`), four bytes per thread.
 */
export const REPACK_CODES_SHADER = `
struct P { rows: u32, total: u32, words: u32, pad0: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = gid.x + gid.y * nwg.x * 256u;
  if (w >= p.words) { return; }
  var word = 0u;
  for (var b = 0u; b < 4u; b++) {
    let f = w * 4u + b;
    if (f < p.total) {
      let i = f / p.rows;
      let r = f % p.rows;
      word |= ((src[(i / 4u) * p.rows + r] >> ((i % 4u) * 8u)) & 255u) << (b * 8u);
    }
  }
  dst[w] = word;
}
`;

/**
 * Queues one compute dispatch: a uniform block from `words`, the storage buffers bound from binding 1 in order.
 * The uniform buffer is destroyed right after the submit (WebGPU keeps it alive for the queued work).
 */
export function dispatchKernel(device: GPUDevice, pipeline: GPUComputePipeline, words: ArrayBuffer, buffers: readonly GPUBuffer[], x: number, y = 1): void {
  const params = device.createBuffer({ size: words.byteLength, usage: bufferUsage().uniform | bufferUsage().copyDst });
  device.queue.writeBuffer(params, 0, words);
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [params, ...buffers].map((buffer, binding) => ({ binding, resource: { buffer } })) }));
  pass.dispatchWorkgroups(x, y);
  pass.end();
  device.queue.submit([encoder.finish()]);
  params.destroy();
}

/** Pipelines made so far, per device and per shader source (a device's pipelines die with it). */
const pipelineCache = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/**
 * A compute pipeline for `code` (entry point `main`), made once per device and shader source: a kernel dispatched
 * thousands of times per layer (GPTQ's loop, the factor's blocks) is not compiled again each time.
 */
export function kernelPipeline(device: GPUDevice, code: string, label: string): GPUComputePipeline {
  let cache = pipelineCache.get(device);
  if (!cache) pipelineCache.set(device, (cache = new Map()));
  let pipeline = cache.get(code);
  if (!pipeline) {
    pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code, label }), entryPoint: 'main' }, label });
    cache.set(code, pipeline);
  }
  return pipeline;
}

/** A uniform block of four-byte words: integers, or floats where given as `{ f: value }`. */
export function uniformWords(values: ReadonlyArray<number | { f: number }>): ArrayBuffer {
  const words = new ArrayBuffer(Math.max(16, Math.ceil(values.length / 4) * 16));
  const u = new Uint32Array(words);
  const f = new Float32Array(words);
  values.forEach((v, i) => {
    if (typeof v === 'number') u[i] = v;
    else f[i] = v.f;
  });
  return words;
}

/** Reads a small storage buffer's first `bytes` bytes back (one round trip). */
export async function readBuffer(device: GPUDevice, buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const usage = bufferUsage();
  const staging = device.createBuffer({ size: bytes, usage: usage.mapRead | usage.copyDst });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(0x1);
  const out = staging.getMappedRange().slice(0);
  staging.unmap();
  staging.destroy();
  return out;
}
