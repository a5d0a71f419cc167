/// <reference types="@webgpu/types" />
import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import { choleskyInPlace, meanDiagonal } from '../cholesky.js';
import { invertLowerInPlace } from '../triangular-inverse-recursive.js';
import { createJsBackend } from './js-backend.js';
import type { WebgpuBackend, WebgpuMatrix } from './webgpu-backend.js';
import { bufferUsage } from './webgpu-device.js';

/** Options of {@link webgpuCholeskyInverseUpper}. */
export interface WebgpuCholeskyOptions {
  /** Columns per block: each diagonal block is factored and inverted on the CPU in float64. Default 128. */
  blockSize?: number;
}

const REVERSE_SHADER = `
struct P { count: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.count) { dst[i] = src[p.count - 1u - i]; }
}
`;

/**
 * GPTQ's inverse Hessian factor on the GPU in float32, the arithmetic of the reference implementation on CUDA:
 * the upper-triangular `U` with `H^-1 = U^T U` (Frantar et al., arXiv:2210.17323), resident on the GPU for
 * {@link webgpuGptqSolve}. With `J` the reversal, `J H J = L L^T` and `U = J L^-1 J`: a blocked right-looking Cholesky
 * of the reversed matrix (each diagonal block factored and inverted on the CPU in float64, the panel solve and the
 * trailing update as float32 GEMMs on the GPU), then `L^-1` block row by block row (`X_i,<i = -L_ii^-1 L_i,<i X_<i,<i`,
 * two GEMMs per block row) and one reversal. `H` is read once and nothing but the `b x b` diagonal blocks comes back.
 * The caller dampens `H` first; the CPU path (`choleskyInverseUpper`, float64 throughout) stays the precise one.
 *
 * @param backend - A `webgpu` backend.
 * @param hessian - Symmetric positive definite `n x n` (row-major, float64; only read).
 * @param n - Its order.
 * @param options - `blockSize` (128).
 * @returns `U` as a resident float32 `n x n` matrix (release it when done).
 * @throws `NumericalError` (from the diagonal blocks' factorization) when `H` is not positive definite in float32
 *   arithmetic; `ShapeMismatchError` when `hessian` is not `n x n`.
 * @example
 * ```ts
 * const u = await webgpuCholeskyInverseUpper(gpu, dampedHessian, n);
 * const { codesT } = await webgpuGptqSolve(gpu, { rows, columns: n, weightT, factor: u, levels, groupSize, groupScales });
 * gpu.release(u);
 * ```
 */
export async function webgpuCholeskyInverseUpper(backend: WebgpuBackend, hessian: Float64Array, n: number, options: WebgpuCholeskyOptions = {}): Promise<WebgpuMatrix> {
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('n', `got ${n}; expected a positive integer`);
  if (hessian.length !== n * n) throw new ShapeMismatchError('hessian', [n, n], [hessian.length], 'a square float64 matrix');
  const b = Math.min(options.blockSize ?? 128, n);
  if (!Number.isInteger(b) || b < 1) throw new InvalidArgumentError('blockSize', `got ${options.blockSize}; expected a positive integer`);
  const device = backend.device;
  const usage = bufferUsage();
  const cpu = createJsBackend();
  const scale = meanDiagonal(n, hessian);
  // A = J H J (the reversed flat array), float32.
  const reversed = new Float32Array(n * n);
  for (let i = 0, j = n * n - 1; j >= 0; i++, j--) reversed[i] = hessian[j]!;
  const a = backend.upload(reversed, n, n);
  const l = backend.zeros(n, n);
  const x = backend.zeros(n, n);
  const blocks = Math.ceil(n / b);
  const inverses = backend.zeros(blocks * b, b); // L_ii^-1, one b x b block after another
  const identity = new Float32Array(b * b);
  for (let i = 0; i < b; i++) identity[i * b + i] = 1;
  const eye = backend.upload(identity, b, b);
  const panel = backend.zeros(Math.max(1, n - b), b);
  const band = backend.zeros(b, n);
  const own = [a, l, inverses, eye, panel, band];
  const writeBlock = (target: WebgpuMatrix, data: Float32Array, row0: number, col0: number, kb: number, ld: number): void => {
    for (let r = 0; r < kb; r++) device.queue.writeBuffer(target.buffer, ((row0 + r) * ld + col0) * 4, data.buffer, data.byteOffset + r * kb * 4, kb * 4);
  };
  try {
    for (let k = 0; k < blocks; k++) {
      const k0 = k * b;
      const kb = Math.min(b, n - k0);
      const rest = n - k0 - kb;
      // The updated diagonal block back to the CPU: factor and invert it in float64.
      const staging = device.createBuffer({ size: kb * kb * 4, usage: usage.mapRead | usage.copyDst });
      const encoder = device.createCommandEncoder();
      for (let r = 0; r < kb; r++) encoder.copyBufferToBuffer(a.buffer, ((k0 + r) * n + k0) * 4, staging, r * kb * 4, kb * 4);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(0x1);
      const block = Float64Array.from(new Float32Array(staging.getMappedRange()));
      staging.unmap();
      staging.destroy();
      await choleskyInPlace(kb, block, cpu, kb, scale);
      for (let i = 0; i < kb; i++) for (let j = i + 1; j < kb; j++) block[i * kb + j] = 0;
      writeBlock(l, Float32Array.from(block), k0, k0, kb, n);
      await invertLowerInPlace(kb, block, cpu);
      const inverse = Float32Array.from(block);
      writeBlock(x, inverse, k0, k0, kb, n);
      device.queue.writeBuffer(inverses.buffer, k * b * b * 4, inverse.buffer, inverse.byteOffset, kb * kb * 4);
      if (rest === 0) break;
      // L21 = A21 L11^-T, kept in `panel` and copied into L; then A22 -= L21 L21^T.
      backend.gemmStrided({ a, b: inverses, c: panel, m: rest, n: kb, k: kb, lda: n, ldb: kb, ldc: kb, aOffset: (k0 + kb) * n + k0, bOffset: k * b * b, transB: true });
      backend.gemmStrided({ a: panel, b: eye, c: l, m: rest, n: kb, k: kb, lda: kb, ldb: b, ldc: n, cOffset: (k0 + kb) * n + k0 });
      backend.gemmStrided({ a: panel, b: panel, c: a, m: rest, n: rest, k: kb, lda: kb, ldb: kb, ldc: n, cOffset: (k0 + kb) * (n + 1), transB: true, alpha: -1, beta: 1 });
    }
    // X = L^-1 block row by block row: X[i, <i] = -L_ii^-1 (L[i, <i] X[<i, <i]).
    for (let i = 1; i < blocks; i++) {
      const i0 = i * b;
      const ib = Math.min(b, n - i0);
      backend.gemmStrided({ a: l, b: x, c: band, m: ib, n: i0, k: i0, lda: n, ldb: n, ldc: n, aOffset: i0 * n });
      backend.gemmStrided({ a: inverses, b: band, c: x, m: ib, n: i0, k: ib, lda: ib, ldb: n, ldc: n, aOffset: i * b * b, cOffset: i0 * n, alpha: -1 });
    }
    // U = J X J.
    const u = backend.zeros(n, n);
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: REVERSE_SHADER }), entryPoint: 'main' } });
    const params = device.createBuffer({ size: 16, usage: usage.uniform | usage.copyDst });
    device.queue.writeBuffer(params, 0, Uint32Array.of(n * n, 0, 0, 0));
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [params, x.buffer, u.buffer].map((buffer, binding) => ({ binding, resource: { buffer } })) }));
    const groups = Math.ceil((n * n) / 256);
    pass.dispatchWorkgroups(Math.min(groups, 65535), Math.ceil(groups / 65535));
    pass.end();
    device.queue.submit([encoder.finish()]);
    params.destroy();
    return u;
  } finally {
    for (const matrix of own) backend.release(matrix);
    backend.release(x);
  }
}
