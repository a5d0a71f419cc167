/// <reference types="@webgpu/types" />
import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import { choleskyInPlace, meanDiagonal, notPositiveDefinite } from '../cholesky.js';
import { invertLowerInPlace } from '../triangular-inverse-recursive.js';
import { createJsBackend } from './js-backend.js';
import type { WebgpuBackend, WebgpuMatrix } from './webgpu-backend.js';
import { bufferUsage } from './webgpu-device.js';
import { diagonalBlockShader, dispatchKernel, kernelPipeline, MEAN_DIAGONAL_SHADER, packedTriangle, readBuffer, REVERSE_DAMP_SHADER, uniformWords } from './webgpu-gptq-kernels.js';

/** Options of {@link webgpuCholeskyInverseUpper}. */
export interface WebgpuCholeskyOptions {
  /**
   * Columns per block. Default 128, or 64 where the diagonal blocks are factored on the GPU and the packed triangle
   * of 128 (33 KB) does not fit the device's workgroup memory.
   */
  blockSize?: number;
  /**
   * Where each diagonal block is factored and inverted: `'gpu'` (float32, one workgroup, queued behind the GEMMs with
   * no round trip) or `'cpu'` (float64, one round trip per block). Default `'gpu'` where the block's packed triangle
   * fits workgroup memory, else `'cpu'`.
   */
  diagonalBlocks?: 'gpu' | 'cpu';
  /** Relative dampening: the factor of `H + dampening * mean(diag H) I` is formed (GPTQ's `percdamp`). Default 0. */
  dampening?: number;
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
 * of the reversed matrix (the panel solve and the trailing update as float32 GEMMs), then `L^-1` block row by block
 * row (`X_i,<i = -L_ii^-1 L_i,<i X_<i,<i`, two GEMMs per block row) and one reversal. Each diagonal block is factored
 * and inverted either on the GPU in float32 by one workgroup (default: the whole factor is then queued without a
 * round trip, and one small read at the end checks the pivots) or on the CPU in float64 (one round trip per block).
 * `H` is either a float64 host array (the caller's precise Hessian, uploaded once in float32) or a resident float32
 * matrix of which only the upper triangle is read (a Gram matrix formed on the GPU with `gemm({ upper: true })`;
 * it is not modified). The CPU path (`choleskyInverseUpper`, float64 throughout) stays the precise one.
 *
 * @param backend - A `webgpu` backend.
 * @param hessian - Symmetric positive definite `n x n`: row-major float64 (only read), or resident float32 (upper triangle read).
 * @param n - Its order.
 * @param options - `blockSize` (128; 64 where 128 does not fit), `diagonalBlocks` (`'gpu'` where it fits, else
 *   `'cpu'`), `dampening` (0).
 * @returns `U` as a resident float32 `n x n` matrix (release it when done).
 * @throws `NumericalError` when `H` (dampened) is not positive definite in float32 arithmetic, naming the pivot;
 *   `ShapeMismatchError` when `hessian` is not `n x n`; `InvalidArgumentError` on a bad block size, or
 *   `diagonalBlocks: 'gpu'` with a block whose triangle does not fit workgroup memory.
 * @example
 * ```ts
 * const h = gpu.zeros(n, n);
 * gpu.gemm({ a: x, b: x, c: h, transA: true, upper: true }); // X resident, tokens x n
 * const u = await webgpuCholeskyInverseUpper(gpu, h, n, { dampening: 0.01 });
 * const { codesT } = await webgpuGptqSolve(gpu, { rows, columns: n, weight, factor: u, levels, groupSize, groupScales });
 * gpu.release(u);
 * ```
 */
export async function webgpuCholeskyInverseUpper(
  backend: WebgpuBackend,
  hessian: Float64Array | WebgpuMatrix,
  n: number,
  options: WebgpuCholeskyOptions = {},
): Promise<WebgpuMatrix> {
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('n', `got ${n}; expected a positive integer`);
  const resident = !(hessian instanceof Float64Array);
  if (resident ? hessian.rows !== n || hessian.columns !== n || hessian.dtype !== 'float32' : hessian.length !== n * n) {
    throw new ShapeMismatchError('hessian', [n, n], resident ? [hessian.rows, hessian.columns] : [hessian.length], resident ? 'a square resident float32 matrix' : 'a square float64 matrix');
  }
  const dampening = options.dampening ?? 0;
  if (!(dampening >= 0) || !Number.isFinite(dampening)) throw new InvalidArgumentError('dampening', `got ${dampening}; expected a finite number >= 0`);
  const device = backend.device;
  const storageLimit = device.limits.maxComputeWorkgroupStorageSize;
  const fits = (size: number): boolean => packedTriangle(size) * 4 <= storageLimit;
  const b = Math.min(options.blockSize ?? (options.diagonalBlocks !== 'cpu' && !fits(128) ? 64 : 128), n);
  if (!Number.isInteger(b) || b < 1) throw new InvalidArgumentError('blockSize', `got ${options.blockSize}; expected a positive integer`);
  if (options.diagonalBlocks === 'gpu' && !fits(b)) {
    throw new InvalidArgumentError('diagonalBlocks', `a ${b} x ${b} block's triangle needs ${packedTriangle(b) * 4} bytes of workgroup memory; this device has ${storageLimit}: use a smaller blockSize or 'cpu'`);
  }
  const onGpu = (options.diagonalBlocks ?? (fits(b) ? 'gpu' : 'cpu')) === 'gpu';
  const usage = bufferUsage();
  const cpu = createJsBackend();
  const own: WebgpuMatrix[] = [];
  const keep = (m: WebgpuMatrix): WebgpuMatrix => (own.push(m), m);
  const x = keep(backend.zeros(n, n));
  const stats = keep(backend.zeros(1, 4)); // [0]: mean of H's diagonal (resident H)
  const status = keep(backend.zeros(1, 4)); // [0]: 1 + first failing pivot's row in A, [1]: its bits
  let a: WebgpuMatrix;
  let mean = 0;
  try {
    if (resident) {
      dispatchKernel(device, kernelPipeline(device, MEAN_DIAGONAL_SHADER, 'gptq.meanDiagonal'), uniformWords([n]), [hessian.buffer, stats.buffer], 1);
      a = keep(backend.zeros(n, n));
      const tiles = Math.ceil(n / 16);
      dispatchKernel(device, kernelPipeline(device, REVERSE_DAMP_SHADER, 'gptq.reverseDamp'), uniformWords([n, 0, { f: dampening }, 0]), [hessian.buffer, stats.buffer, a.buffer], tiles, tiles);
      if (!onGpu) mean = new Float32Array(await readBuffer(device, stats.buffer, 4))[0]!;
    } else {
      // A = J (H + d I) J (the reversed flat array), float32.
      mean = meanDiagonal(n, hessian);
      a = keep(backend.upload(reversedDamped(hessian, n, dampening * mean), n, n));
    }
    const scale = mean * (1 + dampening);
    const l = keep(backend.zeros(n, n));
    const blocks = Math.ceil(n / b);
    const inverses = keep(backend.zeros(blocks * b, b)); // L_ii^-1, one kb x kb block (leading dimension kb) every b * b
    const identity = new Float32Array(b * b);
    for (let i = 0; i < b; i++) identity[i * b + i] = 1;
    const eye = keep(backend.upload(identity, b, b));
    const panel = keep(backend.zeros(Math.max(1, n - b), b));
    const band = keep(backend.zeros(b, n));
    const diagonal = onGpu ? kernelPipeline(device, diagonalBlockShader(b), `gptq.diagonalBlock${b}`) : undefined;
    const writeBlock = (target: WebgpuMatrix, data: Float32Array, row0: number, col0: number, kb: number, ld: number): void => {
      for (let r = 0; r < kb; r++) device.queue.writeBuffer(target.buffer, ((row0 + r) * ld + col0) * 4, data.buffer, data.byteOffset + r * kb * 4, kb * 4);
    };
    for (let k = 0; k < blocks; k++) {
      const k0 = k * b;
      const kb = Math.min(b, n - k0);
      const rest = n - k0 - kb;
      if (diagonal) {
        // Factored and inverted in one workgroup; L's diagonal blocks are never read below, so only L_kk^-1 is kept.
        dispatchKernel(device, diagonal, uniformWords([n, k0, kb, k * b * b]), [a.buffer, x.buffer, inverses.buffer, status.buffer], 1);
      } else {
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
      }
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
    const groups = Math.ceil((n * n) / 256);
    dispatchKernel(device, kernelPipeline(device, REVERSE_SHADER, 'gptq.reverse'), uniformWords([n * n]), [x.buffer, u.buffer], Math.min(groups, 65535), Math.ceil(groups / 65535));
    if (onGpu) {
      const [flags, means] = await Promise.all([readBuffer(device, status.buffer, 8), resident ? readBuffer(device, stats.buffer, 4) : Promise.resolve(undefined)]);
      const words = new Uint32Array(flags);
      if (words[0]! !== 0) {
        backend.release(u);
        const pivot = new Float32Array(flags)[1]!;
        throw notPositiveDefinite(n - words[0]!, pivot, means ? new Float32Array(means)[0]! * (1 + dampening) : scale);
      }
    }
    return u;
  } finally {
    for (const matrix of own) backend.release(matrix);
  }
}

/**
 * `J (H + shift I) J` as float32 (the flat array reversed, the shift added to the diagonal in float64 first): a small
 * function of its own, so that the engine optimizes its loop.
 */
function reversedDamped(hessian: Float64Array, n: number, shift: number): Float32Array {
  const reversed = new Float32Array(n * n);
  for (let i = 0, j = n * n - 1; j >= 0; i++, j--) reversed[i] = hessian[j]!;
  for (let i = 0; i < n; i++) reversed[i * n + i] = hessian[(n - 1 - i) * (n + 1)]! + shift;
  return reversed;
}
