/// <reference types="@webgpu/types" />
import { InvalidArgumentError } from '@bitsmith/core';
import type { WebgpuBackend, WebgpuMatrix } from './webgpu-backend.js';
import { dispatchKernel, kernelPipeline, readBuffer, uniformWords } from './webgpu-gptq-kernels.js';

const MIRROR_SHADER = `
struct P { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let column = gid.x;
  let row = gid.y;
  if (row >= p.n || column >= row) { return; }
  m[row * p.n + column] = m[column * p.n + row];
}
`;

const DIAGONAL_SHADER = `
struct P { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> d: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i < p.n) { d[i] = m[i * p.n + i]; }
}
`;

/**
 * Copies the upper triangle of a square resident matrix onto its lower triangle (`m[a][b] = m[b][a]` for `a > b`),
 * queued: a Gram matrix accumulated with `gemm({ upper: true })` becomes the full symmetric matrix on the GPU, so that
 * reading it back needs no transposing pass on the host.
 *
 * @param backend - A `webgpu` backend.
 * @param m - A square float32 matrix.
 * @throws `InvalidArgumentError` for a matrix that is not square or not float32.
 * @example
 * ```ts
 * gpu.gemm({ a: x, b: x, c: h, transA: true, upper: true });
 * webgpuMirrorUpper(gpu, h);
 * const full = await gpu.read(h);
 * ```
 */
export function webgpuMirrorUpper(backend: WebgpuBackend, m: WebgpuMatrix): void {
  if (m.rows !== m.columns) throw new InvalidArgumentError('m', `expected a square matrix, got ${m.rows} x ${m.columns}`);
  if (m.dtype !== 'float32') throw new InvalidArgumentError('m', 'float32 matrices only');
  const n = m.rows;
  if (n < 2) return;
  const tiles = Math.ceil(n / 16);
  if (tiles > 65535) throw new InvalidArgumentError('m', `at most ${65535 * 16} rows; got ${n}`);
  const device = backend.device;
  dispatchKernel(device, kernelPipeline(device, MIRROR_SHADER, 'symmetric.mirrorUpper'), uniformWords([n]), [m.buffer], tiles, tiles);
}

/**
 * The diagonal of a square resident float32 matrix, read back (one small dispatch and an `n`-float read): what a
 * caller that keeps a Hessian on the GPU needs on the host (dead columns, the mean diagonal, a finiteness check).
 *
 * @param backend - A `webgpu` backend.
 * @param m - A square float32 matrix.
 * @returns `m[i][i]` for every `i`.
 * @throws `InvalidArgumentError` for a matrix that is not square or not float32.
 * @example
 * ```ts
 * const diagonal = await webgpuDiagonal(gpu, h); // Float32Array of h.rows values
 * ```
 */
export async function webgpuDiagonal(backend: WebgpuBackend, m: WebgpuMatrix): Promise<Float32Array> {
  if (m.rows !== m.columns) throw new InvalidArgumentError('m', `expected a square matrix, got ${m.rows} x ${m.columns}`);
  if (m.dtype !== 'float32') throw new InvalidArgumentError('m', 'float32 matrices only');
  const n = m.rows;
  if (n === 0) return new Float32Array(0);
  const groups = Math.ceil(n / 256);
  if (groups > 65535) throw new InvalidArgumentError('m', `at most ${65535 * 256} rows; got ${n}`);
  const device = backend.device;
  const out = backend.zeros(1, n);
  try {
    dispatchKernel(device, kernelPipeline(device, DIAGONAL_SHADER, 'symmetric.diagonal'), uniformWords([n]), [m.buffer, out.buffer], groups);
    return new Float32Array(await readBuffer(device, out.buffer, n * 4));
  } finally {
    backend.release(out);
  }
}
