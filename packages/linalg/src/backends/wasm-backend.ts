import type { AttentionArguments, Backend, GatedActivationArguments, BackendOptions, FwhtArguments, GemmArguments, GramArguments } from '../backend.js';
import { attentionWithSgemm } from './attention-sgemm.js';
import { gatedActivationReference } from './gated-activation-loop.js';
import { checkAttentionArguments, checkFwhtArguments, checkGatedActivationArguments, checkGemmArguments, checkGramArguments } from './check-arguments.js';
import { MAX_PAGES, PAGE_BYTES, WasmArena, wasmApi, type WasmMemory, type WasmModule } from './wasm-memory.js';
import { ARGUMENTS_OFFSET, KERNEL_NAMES, WORKER_SOURCE } from './wasm-worker.js';
import { nodeBuiltin } from '../node-builtin.js';
import { compileOptimized, nodeV8, readWasmFile } from './wasm-load.js';

/** Options of {@link createWasmBackend}. */
export interface WasmBackendOptions extends BackendOptions {
  /**
   * Use the kernels built with relaxed SIMD (fused multiply-add): 20-30% faster GEMM and Gram on x86 CPUs with FMA.
   * In Node versions whose V8 still hides relaxed SIMD behind a flag (Node 20), the backend turns on
   * `--experimental-wasm-relaxed-simd` through `v8.setFlagsFromString` for the process. When relaxed SIMD
   * cannot be had, the plain SIMD kernels are used. Default true.
   */
  relaxedSimd?: boolean;
  /**
   * Largest slice of `X` (bytes) that `gram` copies into the WebAssembly memory at once; X is streamed in
   * slices of whole 256-row blocks, so memory stays bounded for tall inputs. Default 64 MiB.
   */
  gramChunkBytes?: number;
}

/** The `wasm` backend: a {@link Backend} that also says which kernels it runs. */
export interface WasmBackend extends Backend {
  readonly name: 'wasm';
  /** Whether the kernels use relaxed-SIMD fused multiply-adds (false: plain 128-bit SIMD multiply and add). */
  readonly relaxedSimd: boolean;
}

type KernelName = (typeof KERNEL_NAMES)[number];
type Kernel = (...args: number[]) => void;
interface KernelExports {
  sgemm: Kernel;
  dgemm: Kernel;
  gram: Kernel;
  gramMirror: Kernel;
  fwht: Kernel;
  relaxed: () => number;
  WORK_BYTES: { value: number };
}

/** Most threads one backend runs (the argument slots hold this many). */
const MAX_THREADS = 64;
/** Work areas start here; below are the control words and argument slots. */
const WORK_OFFSET = 65536;
/** Below this many multiply-adds a call runs on the calling thread alone. */
const PARALLEL_MIN_FLOPS = 1 << 19;
/** Default largest slice of X (bytes) copied into the memory at once by `gram`. */
const GRAM_CHUNK_BYTES = 64 << 20;
/** Size of the row chunks `fwht` streams through the cache. */
const FWHT_CHUNK_BYTES = 512 << 10;
/** The calling thread transforms chunks this many times (log2) smaller than the workers' between hand-offs. */
const FWHT_MAIN_SHIFT = 2;
/** Rows of X per gram chunk are a multiple of this (the kernels' KC). */
const GRAM_ROW_QUANTUM = 256;

const workerNames: readonly KernelName[] = KERNEL_NAMES;

/**
 * The URLs of the two kernel builds. Each is written as `new URL('./literal.wasm', import.meta.url)` so that Vite,
 * webpack and Parcel see the asset, copy it into the build and rewrite the URL; tsup's build copies the files next to
 * `dist/*.js` (scripts/build-wasm.mjs). esbuild leaves the expression as it is: copy `dist/*.wasm` next to the bundle
 * (examples/browser/build.mjs does).
 */
function kernelUrls(file: 'kernels.wasm' | 'kernels-relaxed.wasm'): URL[] {
  const bundled = file === 'kernels.wasm' ? new URL('./kernels.wasm', import.meta.url) : new URL('./kernels-relaxed.wasm', import.meta.url);
  // `../../wasm` from src/backends/*.ts (vitest, tsx run the sources; the built files are in packages/linalg/wasm).
  return [bundled, new URL(`../../wasm/${file}`, import.meta.url)];
}

function readKernelFile(file: 'kernels.wasm' | 'kernels-relaxed.wasm'): Promise<Uint8Array> {
  return readWasmFile(file, kernelUrls(file));
}

async function compileKernels(relaxedSimd: boolean): Promise<WasmModule> {
  const v8 = await nodeV8();
  if (relaxedSimd) {
    const bytes = await readKernelFile('kernels-relaxed.wasm');
    if (!wasmApi.validate(bytes)) v8?.setFlagsFromString('--experimental-wasm-relaxed-simd');
    if (wasmApi.validate(bytes)) return compileOptimized(bytes, v8);
  }
  return compileOptimized(await readKernelFile('kernels.wasm'), v8);
}

async function defaultThreads(): Promise<number> {
  const os = await nodeBuiltin<typeof import('node:os')>('os');
  if (!os) return 1;
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : Math.max(1, os.cpus().length);
}

/** Splits [0, total) into at most `parts` ranges whose bounds are multiples of `quantum` (but the last). */
function splitEven(total: number, parts: number, quantum: number): Array<[number, number]> {
  const size = Math.max(quantum, Math.ceil(total / parts / quantum) * quantum);
  const ranges: Array<[number, number]> = [];
  for (let start = 0; start < total; start += size) ranges.push([start, Math.min(total, start + size)]);
  return ranges;
}

/** Splits the columns of an upper triangle so that each range holds about the same area (j^2 growth). */
function splitTriangle(total: number, parts: number, quantum: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let start = 0;
  for (let t = 1; t <= parts && start < total; t++) {
    let end = t === parts ? total : Math.round((total * Math.sqrt(t / parts)) / quantum) * quantum;
    end = Math.min(total, Math.max(end, start + quantum));
    ranges.push([start, end]);
    start = end;
  }
  return ranges;
}

class WasmBackendImpl implements WasmBackend {
  readonly name = 'wasm' as const;
  private readonly arena: WasmArena;
  private readonly control: Int32Array;
  private readonly workBytes: number;
  private sequence = 0;
  /** The sequence number of the job last posted to each worker (1-based). */
  private readonly posted: number[] = [];
  private disposed = false;

  constructor(
    readonly threads: number,
    private readonly memory: WasmMemory,
    private readonly kernels: KernelExports,
    private readonly workers: Array<import('node:worker_threads').Worker>,
    /** Whether the kernels use relaxed-SIMD fused multiply-adds. */
    readonly relaxedSimd: boolean,
    private readonly gramChunkBytes: number,
  ) {
    this.workBytes = Math.ceil(kernels.WORK_BYTES.value / 64) * 64;
    this.control = new Int32Array(memory.buffer, 0, 1024);
    this.arena = new WasmArena(memory, WORK_OFFSET + threads * this.workBytes);
  }

  private work(thread: number): number {
    return WORK_OFFSET + thread * this.workBytes;
  }

  private live(): void {
    if (this.disposed) throw new Error('this wasm backend was disposed');
  }

  /** Hands `args` for `kernel` to worker `t` (1-based) without waiting. */
  private post(t: number, kernel: KernelName, args: readonly number[]): void {
    const control = this.control;
    const base = 16 * t;
    new Float64Array(this.memory.buffer, ARGUMENTS_OFFSET + 256 * t, 32).set(args);
    control[base + 2] = workerNames.indexOf(kernel);
    control[base + 3] = args.length;
    control[base + 4] = 0;
    this.sequence = (this.sequence + 1) | 0;
    this.posted[t] = this.sequence;
    Atomics.store(control, base, this.sequence);
    Atomics.notify(control, base);
  }

  /** Whether worker `t` finished the job last posted to it. */
  private finished(t: number): boolean {
    return Atomics.load(this.control, 16 * t + 1) === this.posted[t];
  }

  /** Blocks until worker `t` finished its job; throws if the job failed. */
  private join(t: number, kernel: KernelName): void {
    const control = this.control;
    const done = 16 * t + 1;
    const seq = this.posted[t];
    for (let seen = Atomics.load(control, done); seen !== seq; seen = Atomics.load(control, done)) {
      Atomics.wait(control, done, seen);
    }
    if (control[16 * t + 4] !== 0) throw new Error(`the wasm ${kernel} kernel failed on a worker thread`);
  }

  /** Runs jobs[0] on this thread and jobs[t] on worker t (1-based), then waits for all of them. */
  private run(kernel: KernelName, jobs: number[][]): void {
    for (let t = 1; t < jobs.length; t++) this.post(t, kernel, jobs[t]);
    let error: unknown;
    try {
      if (jobs.length > 0) this.kernels[kernel](...jobs[0]);
    } catch (cause) {
      error = cause;
    }
    for (let t = 1; t < jobs.length; t++) {
      try {
        this.join(t, kernel);
      } catch (cause) {
        error ??= cause;
      }
    }
    if (error) throw error;
  }

  private threadsFor(work: number): number {
    return work < PARALLEL_MIN_FLOPS ? 1 : this.threads;
  }

  private gemm(kernel: 'sgemm' | 'dgemm', args: GemmArguments<Float32Array> | GemmArguments<Float64Array>): void {
    this.live();
    checkGemmArguments<Float32Array | Float64Array>(kernel, args as GemmArguments<Float32Array | Float64Array>);
    const { m, n, k } = args;
    const alpha = args.alpha ?? 1;
    const beta = args.beta ?? 0;
    const transA = args.transA ?? false;
    const transB = args.transB ?? false;
    if (m === 0 || n === 0) return;
    const c = args.c;
    const size = m * n;
    if (k === 0 || alpha === 0) {
      if (beta === 0) c.fill(0, 0, size);
      else if (beta !== 1) for (let i = 0; i < size; i++) c[i] *= beta;
      return;
    }
    const bytes = kernel === 'sgemm' ? 4 : 8;
    const View: new (buffer: SharedArrayBuffer, offset: number, length: number) => Float32Array | Float64Array =
      kernel === 'sgemm' ? Float32Array : Float64Array;
    const arena = this.arena;
    arena.reset();
    const pa = arena.alloc(m * k * bytes);
    const pb = arena.alloc(k * n * bytes);
    const pc = arena.alloc(size * bytes);
    const buffer = this.memory.buffer;
    new View(buffer, pa, m * k).set(args.a.subarray(0, m * k));
    new View(buffer, pb, k * n).set(args.b.subarray(0, k * n));
    const cView = new View(buffer, pc, size);
    if (beta !== 0) cView.set(c.subarray(0, size));
    const rsA = transA ? 1 : k;
    const csA = transA ? m : 1;
    const rsB = transB ? 1 : n;
    const csB = transB ? k : 1;
    const threads = this.threadsFor(m * n * k);
    const jobs: number[][] = [];
    if (n >= m) {
      for (const [j0, j1] of splitEven(n, threads, kernel === 'sgemm' ? 8 : 4)) {
        jobs.push([k, pa, rsA, csA, pb, rsB, csB, pc, n, alpha, beta, 0, m, j0, j1, this.work(jobs.length)]);
      }
    } else {
      for (const [i0, i1] of splitEven(m, threads, 4)) {
        jobs.push([k, pa, rsA, csA, pb, rsB, csB, pc, n, alpha, beta, i0, i1, 0, n, this.work(jobs.length)]);
      }
    }
    this.run(kernel, jobs);
    c.set(cView);
  }

  async sgemm(args: GemmArguments<Float32Array>): Promise<void> {
    this.gemm('sgemm', args);
  }

  async dgemm(args: GemmArguments<Float64Array>): Promise<void> {
    this.gemm('dgemm', args);
  }

  /** Chunks of query rows, two `sgemm` calls each, the softmax in JavaScript (`attentionWithSgemm`). */
  async attention(args: AttentionArguments): Promise<void> {
    this.live();
    checkAttentionArguments(args);
    await attentionWithSgemm(async (g) => this.gemm('sgemm', g), args);
  }

  /** A JavaScript loop (`gatedActivationLoop`). */
  async gatedActivation(args: GatedActivationArguments): Promise<void> {
    this.live();
    checkGatedActivationArguments(args);
    await gatedActivationReference(args);
  }

  async gram(args: GramArguments): Promise<void> {
    this.live();
    checkGramArguments(args);
    const { rows, columns } = args;
    const alpha = args.alpha ?? 1;
    const beta = args.beta ?? 1;
    if (columns === 0) return;
    const size = columns * columns;
    const arena = this.arena;
    arena.reset();
    const ph = arena.alloc(size * 8);
    const buffer0 = this.memory.buffer;
    if (beta !== 0) new Float64Array(buffer0, ph, size).set(args.h.subarray(0, size));
    const chunkRows = Math.max(GRAM_ROW_QUANTUM, Math.floor(this.gramChunkBytes / (columns * 4) / GRAM_ROW_QUANTUM) * GRAM_ROW_QUANTUM);
    const px = arena.alloc(Math.min(rows, chunkRows) * columns * 4);
    let chunkBeta = beta;
    let first = true;
    for (let r0 = 0; r0 < rows || first; r0 += chunkRows) {
      first = false;
      const count = Math.min(chunkRows, rows - r0);
      if (count > 0) new Float32Array(this.memory.buffer, px, count * columns).set(args.x.subarray(r0 * columns, (r0 + count) * columns));
      const threads = this.threadsFor(count * size / 2);
      const jobs: number[][] = [];
      for (const [j0, j1] of splitTriangle(columns, threads, 8)) {
        jobs.push([count, columns, px, ph, alpha, chunkBeta, j0, j1, this.work(jobs.length)]);
      }
      this.run('gram', jobs);
      chunkBeta = 1;
    }
    this.kernels.gramMirror(columns, ph);
    args.h.set(new Float64Array(this.memory.buffer, ph, size));
  }

  /**
   * The transform is memory-bound, so rows stream through small buffers that stay in cache: the calling
   * thread copies chunks of rows in and out (a round trip through L2 instead of two passes over DRAM) and
   * transforms rows from the back of the matrix between hand-offs, while each worker transforms chunks from
   * the front, double-buffered. The split balances itself.
   */
  async fwht(args: FwhtArguments<Float32Array>): Promise<void> {
    this.live();
    checkFwhtArguments(args);
    const { rows, n, data } = args;
    if (rows === 0) return;
    const scale = (args.normalize ?? true) ? 1 / Math.sqrt(n) : 1;
    const rowBytes = n * 4;
    const chunkRows = Math.max(1, Math.floor(FWHT_CHUNK_BYTES / rowBytes));
    const workers = rows * n * Math.log2(Math.max(2, n)) < PARALLEL_MIN_FLOPS || rows <= chunkRows ? 0 : this.workers.length;
    const mainRows = workers > 0 ? Math.max(1, chunkRows >> FWHT_MAIN_SHIFT) : chunkRows;
    const arena = this.arena;
    arena.reset();
    const mainBuffer = arena.alloc(mainRows * rowBytes);
    const kernels = this.kernels;
    const copyIn = (offset: number, r0: number, r1: number): void => {
      new Float32Array(this.memory.buffer, offset, (r1 - r0) * n).set(data.subarray(r0 * n, r1 * n));
    };
    const copyOut = (offset: number, r0: number, r1: number): void => {
      data.set(new Float32Array(this.memory.buffer, offset, (r1 - r0) * n), r0 * n);
    };
    // Worker t (1-based) owns buffers [2t-2, 2t-1]: `current` rows in flight, `next` rows already copied in.
    const buffers: number[] = [];
    for (let i = 0; i < 2 * workers; i++) buffers.push(arena.alloc(chunkRows * rowBytes));
    const current: Array<[number, number, number] | undefined> = [];
    const next: Array<[number, number, number] | undefined> = [];
    let front = 0;
    let back = rows;
    const take = (offset: number): [number, number, number] | undefined => {
      if (front >= back) return undefined;
      const r0 = front;
      const r1 = Math.min(back, front + chunkRows);
      front = r1;
      copyIn(offset, r0, r1);
      return [offset, r0, r1];
    };
    for (let t = 1; t <= workers; t++) {
      current[t] = take(buffers[2 * t - 2]);
      if (current[t]) this.post(t, 'fwht', [current[t]![0], n, 0, current[t]![2] - current[t]![1], scale]);
      next[t] = take(buffers[2 * t - 1]);
    }
    let error: unknown;
    for (;;) {
      let busy = false;
      for (let t = 1; t <= workers; t++) {
        const job = current[t];
        if (!job) continue;
        if (!this.finished(t)) {
          busy = true;
          continue;
        }
        try {
          this.join(t, 'fwht');
        } catch (cause) {
          error ??= cause;
        }
        copyOut(job[0], job[1], job[2]);
        const upcoming = next[t];
        current[t] = upcoming;
        if (upcoming) {
          this.post(t, 'fwht', [upcoming[0], n, 0, upcoming[2] - upcoming[1], scale]);
          busy = true;
          next[t] = take(job[0]);
        }
      }
      if (front < back) {
        const r1 = back;
        const r0 = Math.max(front, back - mainRows);
        back = r0;
        copyIn(mainBuffer, r0, r1);
        try {
          kernels.fwht(mainBuffer, n, 0, r1 - r0, scale);
        } catch (cause) {
          error ??= cause;
        }
        copyOut(mainBuffer, r0, r1);
      } else if (busy) {
        for (let t = 1; t <= workers; t++) {
          if (current[t]) {
            const done = 16 * t + 1;
            const seen = Atomics.load(this.control, done);
            if (seen !== this.posted[t]) Atomics.wait(this.control, done, seen);
            break;
          }
        }
      } else {
        break;
      }
    }
    if (error) throw error;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const control = this.control;
    this.sequence = (this.sequence + 1) | 0;
    for (let t = 1; t <= this.workers.length; t++) {
      control[16 * t + 2] = -1;
      Atomics.store(control, 16 * t, this.sequence);
      Atomics.notify(control, 16 * t);
    }
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}

/**
 * Creates the `wasm` backend: GotoBLAS-style blocked kernels written in AssemblyScript with 128-bit SIMD
 * (float32 4x8 and float64 4x4 register tiles, packed panels KC 256 / MC 32 / NC 1024), run in parallel on
 * `worker_threads` that share one `SharedArrayBuffer`-backed `WebAssembly.Memory`. The calling thread
 * computes one share itself (so its event loop is busy while a call runs) and wakes the workers through
 * `Atomics.notify`; problems under about 5e5 multiply-adds run on it alone. Inputs are copied into the shared
 * memory and results copied back, so callers keep ordinary typed arrays; one call's operands must fit in the
 * 4 GiB of a 32-bit WebAssembly memory (`gram` streams `X` in slices, `fwht` streams rows). The memory
 * grows to the largest call's needs and is released by `dispose()` (WebAssembly memories cannot shrink).
 *
 * `gram` accumulates each 256-row slice of `X^T X` in float32 SIMD registers and adds it into the float64
 * `H`, computing only the upper triangle and mirroring it. The float32 part of the error is bounded by the
 * 256-term slices, so it does not grow with the number of rows: on 16384 x 256 Gaussian activations with
 * outlier channels, the largest error is 9e-8 of `sqrt(H_ii H_jj)`.
 *
 * @param options - `threads`: threads to compute on, the calling one included (default
 *   `os.availableParallelism()`, at most 64); `relaxedSimd`: use fused multiply-adds when the engine has
 *   relaxed SIMD (default true; see {@link WasmBackendOptions}); `gramChunkBytes`: largest slice of `X`
 *   that `gram` copies in at once (default 64 MiB).
 * @returns A backend that the caller owns; `dispose()` terminates its workers. Its workers never keep the
 *   process alive. Where `node:worker_threads` is missing (a browser) and `threads` was not given, it runs
 *   on the calling thread alone, loading the kernels with `fetch`.
 * @throws RangeError when `threads` is not a positive integer; an Error when the kernels cannot be loaded.
 * @example
 * ```ts
 * const backend = await createWasmBackend({ threads: 2 });
 * try {
 *   await backend.sgemm({ m: 2, n: 2, k: 2, a: new Float32Array([1, 2, 3, 4]), b: new Float32Array([1, 0, 0, 1]), c: new Float32Array(4) });
 * } finally {
 *   await backend.dispose();
 * }
 * ```
 */
export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  const requested = options.threads ?? (await defaultThreads());
  if (!Number.isInteger(requested) || requested < 1) throw new RangeError(`threads must be a positive integer, got ${requested}`);
  let threads = Math.min(MAX_THREADS, requested);
  let Worker: typeof import('node:worker_threads').Worker | undefined;
  if (threads > 1) {
    Worker = (await nodeBuiltin<typeof import('node:worker_threads')>('worker_threads'))?.Worker;
    if (!Worker) {
      // Without worker_threads (a browser) the backend runs on the calling thread, unless threads were asked for.
      if (options.threads !== undefined) throw new Error('the wasm backend needs node:worker_threads for threads > 1');
      threads = 1;
    }
  }
  const module = await compileKernels(options.relaxedSimd ?? true);
  const probe = new wasmApi.Memory({ initial: 1, maximum: 1, shared: true });
  const first = new wasmApi.Instance(module, { env: { memory: probe } }).exports as unknown as KernelExports;
  const workBytes = Math.ceil(first.WORK_BYTES.value / 64) * 64;
  const initial = Math.ceil((WORK_OFFSET + threads * workBytes) / PAGE_BYTES) + 16;
  const memory = new wasmApi.Memory({ initial, maximum: MAX_PAGES, shared: true });
  const kernels = new wasmApi.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
  const workers: import('node:worker_threads').Worker[] = [];
  if (Worker && threads > 1) {
    const ready: Promise<void>[] = [];
    for (let slot = 1; slot < threads; slot++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, memory, slot, names: workerNames } });
      worker.unref();
      workers.push(worker);
      ready.push(
        new Promise<void>((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
          worker.once('exit', (code) => reject(new Error(`wasm worker exited with code ${code} before it started`)));
        }),
      );
    }
    try {
      await Promise.all(ready);
    } catch (error) {
      await Promise.all(workers.map((worker) => worker.terminate()));
      throw error;
    }
  }
  return new WasmBackendImpl(threads, memory, kernels, workers, kernels.relaxed() === 1, options.gramChunkBytes ?? GRAM_CHUNK_BYTES);
}
