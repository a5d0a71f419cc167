/// <reference types="@webgpu/types" />
import { InvalidArgumentError } from '@bitsmith/core';
import type { WebgpuBackend, WebgpuMatrix } from './webgpu-backend.js';
import { dispatchKernel, kernelPipeline, uniformWords } from './webgpu-gptq-kernels.js';

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
