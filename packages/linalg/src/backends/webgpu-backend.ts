/// <reference types="@webgpu/types" />
import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import type { Backend, BackendOptions, FwhtArguments, GemmArguments, GramArguments } from '../backend.js';
import { checkFwhtArguments, checkGemmArguments, checkGramArguments } from './check-arguments.js';
import { addUpperBlock, mirrorUpper, scaleGram } from './gram-accumulate.js';
import { createJsBackend } from './js-backend.js';
import { createWasmBackend } from './wasm-backend.js';
import { bufferUsage, requestWebgpuDevice, type WebgpuDeviceHandle } from './webgpu-device.js';
import {
  DEFAULT_GEMM_TILE,
  FWHT_SEGMENT,
  FWHT_STAGE_SHADER,
  FWHT_UNIFORM_BYTES,
  GEMM_UNIFORM_BYTES,
  fwhtSegmentShader,
  gemmShader,
  tileExtent,
  type GemmTile,
} from './webgpu-kernels.js';

/** Options of {@link createWebgpuBackend}. */
export interface WebgpuBackendOptions extends BackendOptions {
  /**
   * Calls with fewer multiply-adds than this (`m * n * k` for GEMM, `rows * columns^2` for Gram, `rows * n * log2 n`
   * for the FWHT) run on the CPU backend instead: below it the copies to and from the GPU cost more than the work.
   * Default 2^25 (a 320^3 GEMM). 0 sends every call to the GPU (the tests do, to check the kernels).
   */
  minGpuWork?: number;
  /** The backend for `dgemm` (WGSL has no float64) and for calls below `minGpuWork`. Default: `wasm`, else `js`. */
  cpu?: Backend;
  /** Tile shape of the GEMM kernels. Default {@link DEFAULT_GEMM_TILE} (128 x 128 tiles, 8 x 8 per thread, 16 deep). */
  tile?: GemmTile;
  /** Dawn's bounds checks of shader memory accesses (Node only; see `requestWebgpuDevice`). Default true. */
  robustness?: boolean;
  /** A `GPU` object to use (browser `navigator.gpu`, or the `webgpu` package's `create()`). Default: found automatically. */
  gpu?: GPU;
  /** Most rows of `X` per Gram chunk formed in float32 on the GPU before the float64 add on the CPU. Default 16384. */
  gramChunkRows?: number;
}

/** A float32 (or float16) matrix resident in GPU memory, row-major; made by a {@link WebgpuBackend}. */
export interface WebgpuMatrix {
  readonly rows: number;
  readonly columns: number;
  /** Element type on the GPU. */
  readonly dtype: 'float32' | 'float16';
  /** @internal The storage buffer (4 bytes per element, or 2 for float16, padded to 4 bytes). */
  readonly buffer: GPUBuffer;
}

/** A general matrix multiply on resident matrices: `C = alpha * op(A) op(B) + beta * C`; all three share one dtype. */
export interface WebgpuGemmArguments {
  a: WebgpuMatrix;
  b: WebgpuMatrix;
  c: WebgpuMatrix;
  /** Use `A^T` (A holds `k x m`). Default false. */
  transA?: boolean;
  /** Use `B^T` (B holds `n x k`). Default false. */
  transB?: boolean;
  /** Default 1. */
  alpha?: number;
  /** Default 0 (C's prior contents ignored). */
  beta?: number;
  /**
   * Only the tiles of C on or above the diagonal are computed (square C; for `X^T X`, whose lower triangle the caller
   * then ignores or mirrors); the others keep their contents. Default false.
   */
  upper?: boolean;
}

/** A GEMM over sub-matrices of resident float32 matrices (see {@link WebgpuBackend.gemmStrided}). */
export interface WebgpuStridedGemmArguments {
  a: WebgpuMatrix;
  b: WebgpuMatrix;
  c: WebgpuMatrix;
  m: number;
  n: number;
  k: number;
  lda: number;
  ldb: number;
  ldc: number;
  /** Default 0. */
  aOffset?: number;
  /** Default 0. */
  bOffset?: number;
  /** Default 0. */
  cOffset?: number;
  /** Default false. */
  transA?: boolean;
  /** Default false. */
  transB?: boolean;
  /** Default 1. */
  alpha?: number;
  /** Default 0. */
  beta?: number;
}

/**
 * The `webgpu` backend: the {@link Backend} contract (float32 GEMM, Gram and FWHT on the GPU, float64 on the CPU)
 * and a resident-matrix API (`upload`, `gemm`, `read`) with which a caller keeps its matrices on the GPU across a
 * block's work instead of copying per call.
 */
export interface WebgpuBackend extends Backend {
  readonly name: 'webgpu';
  /** The adapter the backend runs on. */
  readonly adapter: { readonly vendor: string; readonly architecture: string; readonly description: string };
  /** Whether float16 kernels (`shader-f16`) are available. */
  readonly shaderF16: boolean;
  /** @internal The device, for kernels outside this module (GPTQ's solve). */
  readonly device: GPUDevice;
  /** Copies `data` (`rows x columns`, row-major) to a new resident matrix; float16 when `dtype` says so. */
  upload(data: Float32Array, rows: number, columns: number, dtype?: 'float32' | 'float16'): WebgpuMatrix;
  /** A new resident matrix of zeros. */
  zeros(rows: number, columns: number, dtype?: 'float32' | 'float16'): WebgpuMatrix;
  /** Overwrites a resident matrix from host data (float32 matrices only). */
  write(matrix: WebgpuMatrix, data: Float32Array, offset?: number): void;
  /** `C = alpha * op(A) op(B) + beta * C` on the GPU, queued; nothing returns to the host. */
  gemm(args: WebgpuGemmArguments): void;
  /**
   * `C = alpha * op(A) op(B) + beta * C` over sub-matrices of resident float32 matrices, given as element offsets and
   * leading dimensions (`op(A)[i, q]` is `a[aOffset + i * lda + q]`, or `a[aOffset + q * lda + i]` with `transA`).
   * A, B and C must be distinct matrices.
   */
  gemmStrided(args: WebgpuStridedGemmArguments): void;
  /** Copies a resident matrix back (float16 is widened to float32). */
  read(matrix: WebgpuMatrix): Promise<Float32Array>;
  /** Frees a resident matrix's memory. */
  release(matrix: WebgpuMatrix): void;
  /** Resolves when all queued GPU work is finished. */
  finish(): Promise<void>;
}

const DEFAULT_MIN_GPU_WORK = 2 ** 25;
const DEFAULT_GRAM_CHUNK_ROWS = 16384;

/** float32 to IEEE half bits (round to nearest even), for float16 uploads. */
function toHalfBits(value: number, f32: Float32Array, u32: Uint32Array): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && half & 1) ? 1 : 0));
  }
  const half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && half & 1) ? 1 : 0));
}

function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? Number.NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Creates the `webgpu` backend: WGSL kernels for float32 GEMM (128 x 128 tiles with 8 x 8 register blocking and
 * register prefetch of the next slice), Gram/Hessian `X^T X` (upper-triangle tiles only, each chunk of rows formed in
 * float32 on the GPU and added into the float64 `H` on the CPU), the Walsh-Hadamard transform (workgroup-memory
 * butterflies for segments up to 4096, one global pass per higher stage) and float16 GEMM where `shader-f16` exists.
 * `dgemm` and calls too small to pay for the copies run on a CPU backend. In Node it runs on Dawn through the optional
 * npm package `webgpu`; in browsers on `navigator.gpu`.
 *
 * @param options - `minGpuWork` (2^25 multiply-adds), `cpu` (wasm, else js), `tile` ({@link DEFAULT_GEMM_TILE}),
 *   `robustness` (true), `gpu` (found automatically), `gramChunkRows` (16384), `threads` (for the CPU backend).
 * @throws Error when no WebGPU adapter exists here (`createBackend('webgpu')` wraps it in `BackendUnavailableError`).
 * @example
 * ```ts
 * const gpu = await createWebgpuBackend();
 * const a = gpu.upload(x, 4096, 4096), c = gpu.zeros(4096, 4096);
 * gpu.gemm({ a, b: a, c, transB: true });
 * const result = await gpu.read(c);
 * await gpu.dispose();
 * ```
 */
export async function createWebgpuBackend(options: WebgpuBackendOptions = {}): Promise<WebgpuBackend> {
  const minGpuWork = options.minGpuWork ?? DEFAULT_MIN_GPU_WORK;
  const tile = options.tile ?? DEFAULT_GEMM_TILE;
  const gramChunkRows = options.gramChunkRows ?? DEFAULT_GRAM_CHUNK_ROWS;
  if (!(minGpuWork >= 0)) throw new InvalidArgumentError('minGpuWork', `got ${minGpuWork}; expected a number >= 0`);
  if (!Number.isInteger(gramChunkRows) || gramChunkRows < 1) throw new InvalidArgumentError('gramChunkRows', `got ${gramChunkRows}; expected a positive integer`);
  const handle: WebgpuDeviceHandle = await requestWebgpuDevice({
    ...(options.gpu ? { gpu: options.gpu } : {}),
    ...(options.robustness !== undefined ? { robustness: options.robustness } : {}),
  });
  const { device } = handle;
  let ownCpu: Backend | undefined;
  let cpu = options.cpu;
  if (!cpu) {
    try {
      ownCpu = await createWasmBackend(options.threads !== undefined ? { threads: options.threads } : {});
    } catch {
      ownCpu = createJsBackend();
    }
    cpu = ownCpu;
  }
  const cpuBackend = cpu;
  const usage = bufferUsage();
  const maxBinding = device.limits.maxStorageBufferBindingSize;
  let lost: string | undefined;
  void device.lost.then((info) => {
    lost = info.message || String(info.reason);
  });
  let disposed = false;
  const live = (op: string): void => {
    if (disposed) throw new Error(`webgpu backend: ${op} called after dispose()`);
    if (lost !== undefined) throw new Error(`webgpu backend: the device was lost (${lost})`);
  };

  const pipelines = new Map<string, GPUComputePipeline>();
  const pipeline = (key: string, code: () => string): GPUComputePipeline => {
    let p = pipelines.get(key);
    if (!p) {
      const module = device.createShaderModule({ code: code(), label: key });
      p = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
      pipelines.set(key, p);
    }
    return p;
  };
  const tileKey = `${tile.wx}.${tile.wy}.${tile.nv}.${tile.mv}.${tile.bk}`;
  const { bm, bn } = tileExtent(tile);

  const bytesOf = (rows: number, columns: number, dtype: 'float32' | 'float16'): number => {
    const raw = rows * columns * (dtype === 'float16' ? 2 : 4);
    return Math.max(4, Math.ceil(raw / 4) * 4);
  };
  const createStorage = (rows: number, columns: number, dtype: 'float32' | 'float16', mappedAtCreation = false): WebgpuMatrix => {
    if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(columns) || columns < 0) {
      throw new InvalidArgumentError('shape', `expected non-negative integer rows and columns, got ${rows} x ${columns}`);
    }
    if (dtype === 'float16' && !handle.shaderF16) throw new InvalidArgumentError('dtype', 'float16 needs the shader-f16 feature, which this adapter lacks');
    const size = bytesOf(rows, columns, dtype);
    if (size > maxBinding) {
      throw new InvalidArgumentError('shape', `a ${rows} x ${columns} ${dtype} matrix (${size} bytes) exceeds the device's largest storage binding (${maxBinding} bytes)`);
    }
    const buffer = device.createBuffer({ size, usage: usage.storage | usage.copySrc | usage.copyDst, mappedAtCreation });
    return { rows, columns, dtype, buffer };
  };
  const uniform = (words: ArrayBuffer): GPUBuffer => {
    const buffer = device.createBuffer({ size: words.byteLength, usage: usage.uniform | usage.copyDst });
    device.queue.writeBuffer(buffer, 0, words);
    return buffer;
  };
  const f32Scratch = new Float32Array(1);
  const u32Scratch = new Uint32Array(f32Scratch.buffer);

  const upload = (data: Float32Array, rows: number, columns: number, dtype: 'float32' | 'float16' = 'float32'): WebgpuMatrix => {
    live('upload');
    if (data.length < rows * columns) throw new ShapeMismatchError('upload.data', [rows, columns], [data.length], `the array holds ${data.length} elements`);
    // Written through a buffer mapped at creation (one copy into GPU-visible memory, nothing staged on the queue).
    const matrix = createStorage(rows, columns, dtype, true);
    const range = matrix.buffer.getMappedRange();
    if (dtype === 'float16') {
      const half = new Uint16Array(range, 0, rows * columns);
      for (let i = 0; i < rows * columns; i++) half[i] = toHalfBits(data[i]!, f32Scratch, u32Scratch);
    } else {
      new Float32Array(range, 0, rows * columns).set(data.subarray(0, rows * columns));
    }
    matrix.buffer.unmap();
    return matrix;
  };
  const write = (matrix: WebgpuMatrix, data: Float32Array, offset = 0): void => {
    live('write');
    if (matrix.dtype !== 'float32') throw new InvalidArgumentError('write', 'only float32 matrices can be written');
    if (offset + data.length > matrix.rows * matrix.columns) {
      throw new ShapeMismatchError('write.data', [matrix.rows, matrix.columns], [offset + data.length], 'data past the end of the matrix');
    }
    if (data.length > 0) device.queue.writeBuffer(matrix.buffer, offset * 4, data.buffer, data.byteOffset, data.length * 4);
  };
  const zeros = (rows: number, columns: number, dtype: 'float32' | 'float16' = 'float32'): WebgpuMatrix => {
    live('zeros');
    return createStorage(rows, columns, dtype); // WebGPU zero-initializes new buffers.
  };
  const read = async (matrix: WebgpuMatrix): Promise<Float32Array> => {
    live('read');
    const count = matrix.rows * matrix.columns;
    const out = new Float32Array(count);
    if (count === 0) return out;
    const size = bytesOf(matrix.rows, matrix.columns, matrix.dtype);
    const staging = device.createBuffer({ size, usage: usage.mapRead | usage.copyDst });
    const encoder = device.createCommandEncoder();
    encoder.copyBufferToBuffer(matrix.buffer, 0, staging, 0, size);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(0x1 /* GPUMapMode.READ */);
    const bytes = staging.getMappedRange();
    if (matrix.dtype === 'float16') {
      const half = new Uint16Array(bytes, 0, count);
      for (let i = 0; i < count; i++) out[i] = fromHalfBits(half[i]!);
    } else {
      out.set(new Float32Array(bytes, 0, count));
    }
    staging.unmap();
    staging.destroy();
    return out;
  };

  /** Queues `C = alpha op(A) op(B) + beta C` over element offsets and leading dimensions (the general form). */
  const dispatchGemm = (
    a: GPUBuffer,
    b: GPUBuffer,
    c: GPUBuffer,
    s: { m: number; n: number; k: number; lda: number; ldb: number; ldc: number; aOff?: number; bOff?: number; cOff?: number; transA: boolean; transB: boolean; alpha: number; beta: number; upper?: boolean; f16?: boolean },
  ): void => {
    if (s.m === 0 || s.n === 0) return;
    const f16 = s.f16 ?? false;
    const p = pipeline(`gemm.${tileKey}.${s.transA ? 'T' : 'N'}${s.transB ? 'T' : 'N'}${f16 ? '.f16' : ''}`, () => gemmShader(tile, s.transA, s.transB, f16, device.limits.maxComputeWorkgroupStorageSize));
    const words = new ArrayBuffer(GEMM_UNIFORM_BYTES);
    const u = new Uint32Array(words);
    const f = new Float32Array(words);
    u.set([s.m, s.n, s.k, s.lda, s.ldb, s.ldc, s.aOff ?? 0, s.bOff ?? 0, s.cOff ?? 0, s.upper ? 1 : 0]);
    f[10] = s.alpha;
    f[11] = s.beta;
    const params = uniform(words);
    const group = device.createBindGroup({
      layout: p.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: params } },
        { binding: 1, resource: { buffer: a } },
        { binding: 2, resource: { buffer: b } },
        { binding: 3, resource: { buffer: c } },
      ],
    });
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(p);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(Math.ceil(s.n / bn), Math.ceil(s.m / bm));
    pass.end();
    device.queue.submit([encoder.finish()]);
    params.destroy();
  };

  const gemm = (args: WebgpuGemmArguments): void => {
    live('gemm');
    const { a, b, c } = args;
    const transA = args.transA ?? false;
    const transB = args.transB ?? false;
    const m = transA ? a.columns : a.rows;
    const k = transA ? a.rows : a.columns;
    const kb = transB ? b.columns : b.rows;
    const n = transB ? b.rows : b.columns;
    if (k !== kb) throw new ShapeMismatchError('gemm.b', [k, n], [kb, n], `op(A) has ${k} columns but op(B) has ${kb} rows`);
    if (c.rows !== m || c.columns !== n) throw new ShapeMismatchError('gemm.c', [m, n], [c.rows, c.columns], 'C must be op(A) rows x op(B) columns');
    if (a.dtype !== c.dtype || b.dtype !== c.dtype) throw new InvalidArgumentError('gemm', `A, B and C must share a dtype (got ${a.dtype}, ${b.dtype}, ${c.dtype})`);
    if (args.upper && m !== n) throw new InvalidArgumentError('gemm.upper', `only for a square C; got ${m} x ${n}`);
    dispatchGemm(a.buffer, b.buffer, c.buffer, {
      m,
      n,
      k,
      lda: a.columns,
      ldb: b.columns,
      ldc: n,
      transA,
      transB,
      alpha: args.alpha ?? 1,
      beta: args.beta ?? 0,
      upper: args.upper ?? false,
      f16: c.dtype === 'float16',
    });
  };

  const gemmStrided = (s: WebgpuStridedGemmArguments): void => {
    live('gemmStrided');
    const transA = s.transA ?? false;
    const transB = s.transB ?? false;
    const aOff = s.aOffset ?? 0;
    const bOff = s.bOffset ?? 0;
    const cOff = s.cOffset ?? 0;
    if (s.a === s.c || s.b === s.c) throw new InvalidArgumentError('gemmStrided.c', 'C must not be A or B (WebGPU forbids a buffer bound both for reading and writing)');
    if (s.a.dtype !== 'float32' || s.b.dtype !== 'float32' || s.c.dtype !== 'float32') throw new InvalidArgumentError('gemmStrided', 'float32 matrices only');
    const last = (off: number, ld: number, outer: number, inner: number): number => (outer === 0 || inner === 0 ? off : off + (outer - 1) * ld + inner);
    const check = (name: string, matrix: WebgpuMatrix, end: number): void => {
      if (end > matrix.rows * matrix.columns) throw new ShapeMismatchError(`gemmStrided.${name}`, [matrix.rows, matrix.columns], [end], 'the strided view runs past the end of the matrix');
    };
    check('a', s.a, transA ? last(aOff, s.lda, s.k, s.m) : last(aOff, s.lda, s.m, s.k));
    check('b', s.b, transB ? last(bOff, s.ldb, s.n, s.k) : last(bOff, s.ldb, s.k, s.n));
    check('c', s.c, last(cOff, s.ldc, s.m, s.n));
    dispatchGemm(s.a.buffer, s.b.buffer, s.c.buffer, { m: s.m, n: s.n, k: s.k, lda: s.lda, ldb: s.ldb, ldc: s.ldc, aOff, bOff, cOff, transA, transB, alpha: s.alpha ?? 1, beta: s.beta ?? 0 });
  };

  const finish = async (): Promise<void> => {
    live('finish');
    await device.queue.onSubmittedWorkDone();
  };

  const release = (matrix: WebgpuMatrix): void => {
    matrix.buffer.destroy();
  };

  const sgemm = async (args: GemmArguments<Float32Array>): Promise<void> => {
    live('sgemm');
    checkGemmArguments('sgemm', args);
    const { m, n, k } = args;
    if (m * n * k < minGpuWork || m * n === 0) return cpuBackend.sgemm(args);
    const transA = args.transA ?? false;
    const transB = args.transB ?? false;
    const alpha = args.alpha ?? 1;
    const beta = args.beta ?? 0;
    const a = upload(args.a, transA ? k : m, transA ? m : k);
    const b = upload(args.b, transB ? n : k, transB ? k : n);
    const c = beta === 0 ? zeros(m, n) : upload(args.c, m, n);
    try {
      gemm({ a, b, c, transA, transB, alpha, beta });
      args.c.set(await read(c));
    } finally {
      release(a);
      release(b);
      release(c);
    }
  };

  const gram = async (args: GramArguments): Promise<void> => {
    live('gram');
    checkGramArguments(args);
    const { rows, columns: n, x, h } = args;
    const alpha = args.alpha ?? 1;
    const beta = args.beta ?? 1;
    if (rows * n * n < minGpuWork || n === 0) return cpuBackend.gram(args);
    scaleGram(h, n, beta);
    if (rows === 0) return;
    const chunkRows = Math.max(1, Math.min(gramChunkRows, rows, Math.floor(maxBinding / (4 * n))));
    const y = createStorage(n, n, 'float32');
    try {
      for (let r0 = 0; r0 < rows; r0 += chunkRows) {
        const count = Math.min(chunkRows, rows - r0);
        const chunk = upload(x.subarray(r0 * n, (r0 + count) * n), count, n);
        try {
          // Y = X_chunk^T X_chunk, tiles on or above the diagonal only.
          dispatchGemm(chunk.buffer, chunk.buffer, y.buffer, { m: n, n, k: count, lda: n, ldb: n, ldc: n, transA: true, transB: false, alpha: 1, beta: 0, upper: true });
        } finally {
          release(chunk);
        }
        addUpperBlock(h, n, await read(y), 0, n, 0, alpha);
      }
    } finally {
      release(y);
    }
    mirrorUpper(h, n);
  };

  const fwhtResident = (buffer: GPUBuffer, rows: number, n: number, normalize: boolean): void => {
    const scale = normalize ? 1 / Math.sqrt(n) : 1;
    const segment = Math.min(n, FWHT_SEGMENT);
    const stages = Math.log2(n) - Math.log2(segment);
    const encoder = device.createCommandEncoder();
    const buffers: GPUBuffer[] = [];
    {
      const segments = (rows * n) / segment;
      const words = new ArrayBuffer(FWHT_UNIFORM_BYTES);
      new Uint32Array(words).set([segment, segments]);
      new Float32Array(words)[2] = stages === 0 ? scale : 1;
      const params = uniform(words);
      buffers.push(params);
      const p = pipeline('fwht.segment', () => fwhtSegmentShader());
      const pass = encoder.beginComputePass();
      pass.setPipeline(p);
      pass.setBindGroup(0, device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: params } }, { binding: 1, resource: { buffer } }] }));
      pass.dispatchWorkgroups(Math.min(segments, 65535), Math.ceil(segments / 65535));
      pass.end();
    }
    const pairs = (rows * n) / 2;
    for (let s = 0; s < stages; s++) {
      const hStride = segment << s;
      const words = new ArrayBuffer(FWHT_UNIFORM_BYTES);
      new Uint32Array(words).set([n, hStride, pairs]);
      new Float32Array(words)[3] = s === stages - 1 ? scale : 1;
      const params = uniform(words);
      buffers.push(params);
      const p = pipeline('fwht.stage', () => FWHT_STAGE_SHADER);
      const pass = encoder.beginComputePass();
      pass.setPipeline(p);
      pass.setBindGroup(0, device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: params } }, { binding: 1, resource: { buffer } }] }));
      const groups = Math.ceil(pairs / 256);
      pass.dispatchWorkgroups(Math.min(groups, 65535), Math.ceil(groups / 65535));
      pass.end();
    }
    device.queue.submit([encoder.finish()]);
    for (const b of buffers) b.destroy();
  };

  const fwht = async (args: FwhtArguments<Float32Array>): Promise<void> => {
    live('fwht');
    checkFwhtArguments(args);
    const { rows, n, data } = args;
    if (rows * n * Math.log2(Math.max(2, n)) < minGpuWork || rows === 0 || n === 1) return cpuBackend.fwht(args);
    const normalize = args.normalize ?? true;
    // Rows are transformed in slices that fit one storage binding.
    const sliceRows = Math.max(1, Math.min(rows, Math.floor(maxBinding / (4 * n))));
    for (let r0 = 0; r0 < rows; r0 += sliceRows) {
      const count = Math.min(sliceRows, rows - r0);
      const view = data.subarray(r0 * n, (r0 + count) * n);
      const matrix = upload(view, count, n);
      try {
        fwhtResident(matrix.buffer, count, n, normalize);
        view.set(await read(matrix));
      } finally {
        release(matrix);
      }
    }
  };

  return {
    name: 'webgpu',
    threads: cpuBackend.threads,
    adapter: handle.info,
    shaderF16: handle.shaderF16,
    device,
    sgemm,
    dgemm: (args) => {
      live('dgemm');
      return cpuBackend.dgemm(args);
    },
    gram,
    fwht,
    attention: (args) => {
      live('attention');
      return cpuBackend.attention(args);
    },
    gatedActivation: (args) => {
      live('gatedActivation');
      return cpuBackend.gatedActivation(args);
    },
    upload,
    zeros,
    write,
    gemm,
    gemmStrided,
    read,
    release,
    finish,
    async dispose() {
      if (disposed) return;
      disposed = true;
      pipelines.clear();
      if (ownCpu) await ownCpu.dispose();
      device.destroy();
    },
  };
}

/**
 * {@link createWebgpuBackend}, or the reason it failed instead of the error: `{ backend }` where a WebGPU adapter
 * exists, `{ reason }` (the error's message, such as "requestAdapter() returned null: …") elsewhere. For code and
 * tests that use the GPU when there is one and say why not otherwise.
 *
 * @example
 * ```ts
 * const { backend, reason } = await tryCreateWebgpuBackend();
 * if (!backend) console.warn(`no GPU: ${reason}`);
 * ```
 */
export async function tryCreateWebgpuBackend(options: WebgpuBackendOptions = {}): Promise<{ backend?: WebgpuBackend; reason: string }> {
  try {
    return { backend: await createWebgpuBackend(options), reason: '' };
  } catch (error) {
    return { reason: (error as Error).message };
  }
}
