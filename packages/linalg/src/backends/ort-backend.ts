import { ShapeMismatchError } from '@bitsmith/core';
import type { AttentionArguments, AttentionBackwardArguments, Backend, BatchedGemmArguments, GatedActivationArguments, GatedMlpArguments, BackendOptions, FloatArray, GemmArguments, GramArguments } from '../backend.js';
import { attentionWithSgemm } from './attention-sgemm.js';
import { attentionWithBatchedSgemm } from './attention-batched-sgemm.js';
import { attentionBackwardWithBatchedSgemm } from './attention-backward-batched-sgemm.js';
import { referenceKernelsModule, tryReferenceKernels, type ReferenceKernels } from '../reference-kernels.js';
import { batchedModelKey, startReferenceHelpers, type ReferenceHelpers } from './ort-reference-threads.js';
import { gatedActivationReference } from './gated-activation-loop.js';
import { BackendUnavailableError } from '../backend-unavailable-error.js';
import { checkAttentionArguments, checkAttentionBackwardArguments, checkBatchedGemmArguments, checkFwhtArguments, checkGatedActivationArguments, checkGatedMlpArguments, checkGemmArguments, checkGramArguments } from './check-arguments.js';
import { fwhtRadix4 } from './fwht-radix4.js';
import { weightFingerprint } from './weight-fingerprint.js';
import { addLowerBlock, addLowerBlockPair, gemmEpilogue, mirrorLower, scaleGram } from './gram-accumulate.js';
import { nodeBuiltin } from '../node-builtin.js';
import { ortOutputReleaser } from './ort-output-release.js';
import { buildAttentionModel, buildBatchedGemmModel, buildConstantWeightGemmModel, buildGatedMlpModel, buildGatedActivationModel, buildGemmModel, buildGramModel, gramBlocks, ONNX_DOUBLE, ONNX_FLOAT, type Onnx } from './ort-graph.js';

// The few parts of onnxruntime-node's API this backend uses, declared here so that neither the build nor the
// published types depend on the optional package being installed.
type OrtElementType = 'float32' | 'float64' | 'int64';
interface OrtTensor {
  readonly data: unknown;
}
interface OrtTensorConstructor {
  new (type: OrtElementType, data: FloatArray | BigInt64Array, dims: readonly number[]): OrtTensor;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>, fetches: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface OrtSessionOptions {
  intraOpNumThreads: number;
  interOpNumThreads: number;
  executionMode: 'sequential';
  graphOptimizationLevel: 'all';
  logSeverityLevel: 0 | 1 | 2 | 3 | 4;
  extra: { session: { intra_op: { allow_spinning: '0' | '1' } } };
}
interface OrtModule {
  InferenceSession: { create(model: Uint8Array, options: OrtSessionOptions): Promise<OrtSession> };
  Tensor: OrtTensorConstructor;
}

/** The optional dependency this backend runs on. */
const ORT_PACKAGE: string = 'onnxruntime-node';

/**
 * Default most rows of `X` per Gram chunk: each chunk's `X^T X` is summed in float32 by MLAS, then added to the
 * float64 `H`. Wide `X` gets fewer rows, so that the chunk's column-blocked copy stays near {@link GRAM_CHUNK_BYTES}.
 */
export const ORT_GRAM_CHUNK_ROWS = 16384;
/** Target bytes of the column-blocked copy of one Gram chunk (`4 * rows * columns`): 64 MiB, 16384 rows of 1024 columns. */
const GRAM_CHUNK_BYTES = 64 * 1024 * 1024;
/** Fewest rows per Gram chunk however wide `X` is (each chunk costs one O(columns^2) float64 add). */
const GRAM_MIN_CHUNK_ROWS = 2048;
/** Columns per block of the symmetric Gram graph (see {@link gramBlocks}); fewer columns than twice this use one full product. */
const GRAM_BLOCK_COLUMNS = 128;
/**
 * Default most column blocks of a Gram graph: `b` blocks compute `(b + 1) / 2b` of the full `X^T X` flops in
 * `b (b + 1) / 2` products. 4 (5/8 of the flops in 10 products of 256 x 256 at 1024 columns) measured 4-6 ms
 * faster than 8 (9/16 in 36 products of 128 x 128): bigger products, fewer and longer pieces for the split.
 */
const GRAM_MAX_BLOCKS = 4;

/** Options of {@link createOrtBackend}. */
export interface OrtBackendOptions extends BackendOptions {
  /**
   * Most rows of `X` per Gram chunk, summed in float32 before they are added to the float64 `H`. Smaller is more
   * precise, larger has less per-chunk overhead. Default {@link ORT_GRAM_CHUNK_ROWS} (16384), fewer for wide `X`
   * (about 64 MiB of column-blocked chunk, at least 2048 rows).
   */
  gramChunkRows?: number;
  /** Most column blocks of the symmetric Gram graph (1 computes the full `X^T X`). Default 4. */
  gramBlocks?: number;
  /**
   * GEMMs of at most this many multiply-adds (`m n k`) run on one thread (a second session); 0 runs every GEMM on
   * `threads` threads. Default {@link ORT_SMALL_GEMM_WORK} (2^24).
   */
  smallGemmWork?: number;
  /**
   * Most bytes of float32 scores (`sequences * numHeads * n^2 * 4`) one attention graph run may hold: equal-length
   * sequences go through the graph in batches under this; a sequence whose scores alone exceed it runs in query
   * chunks on `sgemm` instead (`attentionWithSgemm`, which also skips the masked half). Default
   * {@link ORT_ATTENTION_SCORE_BYTES} (64 MiB).
   */
  attentionScoreBytes?: number;
  /**
   * Blocks of query rows in the attention graph, each against only the keys up to its last row: `p` blocks compute
   * `(p + 1) / 2p` of the full square of scores in smaller products (at least 128 rows per block; measured on 8 x 512
   * tokens, 8 heads of 64: 2 or 3 blocks 25% faster than 1, none faster at 128 tokens). Default
   * {@link ORT_ATTENTION_PARTS}.
   */
  attentionParts?: number;
  /**
   * Let idle onnxruntime pool threads spin (onnxruntime's default) instead of blocking. Default false: each session has
   * its own pool, and threads spinning after one session's run compete with the next session's threads and with
   * JavaScript; llama-docs-29m's forward (GEMM, attention and activation sessions in turn) measured 2.65 s without
   * spinning against 3.35 s with it, on 2 cores; back-to-back GEMMs of one session were the same within noise.
   */
  spinning?: boolean;
  /**
   * Most bytes of float32 weights kept in constant-weight sessions for GEMMs whose `B` is marked `constantB` (a
   * linear layer's weight in an evaluation forward pass): each such weight gets its own session with the weight as
   * a constant, packed by MLAS once. Weights beyond this budget run on the plain GEMM session. A session is released
   * when its weight's contents change (seen at the next call), when the weight array is garbage-collected, or by
   * `dispose()`. 0 turns the sessions off. Default {@link ORT_CONSTANT_WEIGHT_BYTES} (256 MiB).
   */
  constantWeightBytes?: number;
  /** Fewest rows of `A` for a `constantB` GEMM to use a constant-weight session. Default {@link ORT_CONSTANT_WEIGHT_MIN_ROWS} (2048). */
  constantWeightMinRows?: number;
  /**
   * Most bytes of output per onnxruntime run: a GEMM (without `transA`) whose `C` is larger runs in row blocks of at
   * most this size. onnxruntime-node hands every run's outputs back as new arrays; above glibc's 32 MiB mmap
   * threshold each is fresh memory, and on this machine page faults then cost more than the product (4096 x 8192 x
   * 512: 690 ms in one run, 150 ms in blocks of 16 MiB). Same results bit for bit (MLAS splits rows anyway).
   * Default {@link ORT_OUTPUT_CHUNK_BYTES} (16 MiB).
   */
  outputChunkBytes?: number;
  /**
   * Threads that share a `reference` attention or SiLU `gatedActivation` call: the calling thread and
   * `referenceThreads - 1` helper worker threads each compute a share of the attention's (sequence, key/value head)
   * pairs, every thread with its own single-threaded onnxruntime sessions and reference kernels, or of the SiLU
   * gate's elements; without helpers the attention's products use `threads` MLAS threads and everything else
   * (copies, softmax rows, the SiLU gate) the calling thread alone. Same results bit for bit either way. Default
   * `threads`; 1 starts no helper. Where worker threads or the worker module are unavailable, the calling thread runs
   * it all.
   */
  referenceThreads?: number;
  /**
   * The helper threads' module (see {@link referenceThreads}). Default the `ort-reference-worker.js` built next to this
   * module (tests pass a bundle of the source).
   */
  referenceWorker?: URL;
}

/** The helper threads' module, named at run time so that bundlers do not take it for an asset of the browser build. */
const REFERENCE_WORKER_FILE: string = './ort-reference-worker.js';

/** Default most bytes of output per onnxruntime run (see {@link OrtBackendOptions.outputChunkBytes}). */
export const ORT_OUTPUT_CHUNK_BYTES = 16 * 1024 * 1024;

/**
 * Default budget of constant-weight sessions: 256 MiB of float32 weights (llama-docs-29m's linear layers and head
 * are 118 MB). onnxruntime holds its packed copy of each, in addition to the caller's array.
 */
export const ORT_CONSTANT_WEIGHT_BYTES = 256 * 1024 * 1024;
/**
 * Default fewest rows for a constant-weight GEMM: fingerprinting `B` on each call costs about 8% of the product at
 * 2048 rows (4% at 4096), about what packing once saves there; shorter products keep the plain session.
 */
export const ORT_CONSTANT_WEIGHT_MIN_ROWS = 2048;

/**
 * Default most bytes of attention scores per graph run (64 MiB: 8 sequences of 512 tokens with 8 heads). onnxruntime
 * keeps its arena at the largest size used, about three times this (scores, masked scores, probabilities).
 */
export const ORT_ATTENTION_SCORE_BYTES = 64 * 1024 * 1024;
/** The additive mask's value for hidden keys: float32's lowest finite number, as in `@bitsmith/formats`' ONNX export. */
const MASKED = -3.4028234663852886e38;
/** Masks kept per backend: at most this many, and beyond the two most recent ones at most 64 MiB of them. */
const MASK_CACHE_SIZE = 8;
const MASK_CACHE_BYTES = 64 * 1024 * 1024;
/** Default query blocks of the attention graph (see {@link OrtBackendOptions.attentionParts}). */
export const ORT_ATTENTION_PARTS = 2;
/** Fewest query rows per block of the attention graph. */
const ATTENTION_PART_MIN_ROWS = 128;
/** Scratch bytes a backend keeps between calls (the block products of `gram`, about 2.5 MiB for 1024 columns; a copy of a chunk of `X` on a `SharedArrayBuffer`). */
const SCRATCH_KEEP_BYTES = 96 * 1024 * 1024;
/** Sessions kept per backend; the least recently used one is released beyond this. */
const SESSION_CACHE_SIZE = 32;
/**
 * GEMMs with at most this many multiply-adds (`m n k`) run on a single MLAS thread: for the small products of
 * attention (a 256 x 256 x 64 score block), waking the second thread costs more than it saves (measured: attention over
 * 64 sequences of 256 tokens took 1.2 s with two threads per product, 0.57 s with one).
 */
export const ORT_SMALL_GEMM_WORK = 1 << 24;

function unavailable(message: string, cause?: unknown): BackendUnavailableError {
  return new BackendUnavailableError('ort', message, cause === undefined ? undefined : { cause });
}

async function loadOrt(): Promise<OrtModule> {
  let module: Record<string, unknown>;
  try {
    // A non-literal specifier: bundlers (tsup here, webpack/vite for users) leave the optional native package
    // alone instead of inlining it and its `.node` binaries; Node resolves it at run time.
    const specifier = ORT_PACKAGE;
    module = (await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier)) as Record<string, unknown>;
  } catch (cause) {
    throw unavailable(
      `onnxruntime-node could not be loaded (${(cause as Error)?.message ?? String(cause)}); install it (npm install onnxruntime-node) or use the 'wasm' or 'js' backend`,
      cause,
    );
  }
  const ort = ((module.InferenceSession ? module : module.default) ?? module) as Partial<OrtModule>;
  if (typeof ort.InferenceSession?.create !== 'function' || typeof ort.Tensor !== 'function') {
    throw unavailable('onnxruntime-node loaded but does not export InferenceSession and Tensor');
  }
  return ort as OrtModule;
}

async function loadOnnx(): Promise<Onnx> {
  try {
    const module = (await import('onnx-proto')) as unknown as { onnx?: Onnx; default?: { onnx?: Onnx } };
    const onnx = module.onnx ?? module.default?.onnx;
    if (!onnx?.ModelProto) throw new Error('onnx-proto does not export the onnx namespace');
    return onnx;
  } catch (cause) {
    throw unavailable(`onnx-proto could not be loaded (${(cause as Error)?.message ?? String(cause)})`, cause);
  }
}

async function defaultThreads(): Promise<number> {
  const os = await nodeBuiltin<typeof import('node:os')>('os');
  if (!os) return 1;
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** A view of exactly `length` elements that onnxruntime can read or write: copies when the array lives on a `SharedArrayBuffer` (which the N-API binding rejects). */
function ortView<T extends FloatArray>(array: T, length: number): { view: T; copied: boolean } {
  const view = (array.length === length ? array : array.subarray(0, length)) as T;
  if (typeof SharedArrayBuffer !== 'undefined' && view.buffer instanceof SharedArrayBuffer) return { view: view.slice() as T, copied: true };
  return { view, copied: false };
}

/**
 * Creates the `ort` backend: GEMM-shaped work runs through onnxruntime-node's CPU kernels (MLAS, multi-threaded
 * native code) by way of tiny ONNX graphs built with `onnx-proto`, one cached `InferenceSession` per
 * (operation, element type, transposes, alpha, beta). Dimensions are symbolic, so one session serves every shape.
 * The fastest backend in Node; not available in browsers.
 *
 * - `sgemm` / `dgemm`: one ONNX `Gemm` node (float / double; MLAS SGEMM / DGEMM). Inputs are fed as tensors over the
 *   caller's arrays and `C` is preallocated as the output, so nothing is copied (except arrays on a
 *   `SharedArrayBuffer`, which the native binding rejects). `alpha` and `beta` are folded into the node's
 *   attributes; ONNX stores them as float32, so `dgemm` with an `alpha` or `beta` that float32 cannot hold exactly
 *   computes `op(A) op(B)` into scratch and applies `alpha`/`beta` in JavaScript in float64.
 * - `sgemm` with `constantB` (a linear layer's weight in an evaluation forward), `m` of at least
 *   `constantWeightMinRows` (2048) rows, no `transA`, `alpha` 1, `beta` 0: `B` becomes the constant of its own
 *   `Gemm` session, packed by MLAS once (llama-docs-29m's forward: 10% less time in its linear layers), within a
 *   budget of `constantWeightBytes` (256 MiB); `B`'s 64-bit fingerprint is checked on every call and a changed `B`
 *   is packed again. Results can differ from the plain session's in the last bits.
 * - `gram`: `X` is cut into chunks of up to `gramChunkRows` rows (default {@link ORT_GRAM_CHUNK_ROWS}, 16384;
 *   fewer for wide `X`: about 64 MiB of chunk, at least 2048 rows). Each chunk is fed as a zero-copy view to one
 *   graph that splits it into up to `gramBlocks` column blocks of at least 128 columns (ONNX `Split`, inside ORT)
 *   and computes every block pair of the lower block triangle `X[:, s_i:e_i]^T X[:, s_j:e_j]`, `j <= i`, as a
 *   `Gemm(transA=1)` (4 blocks: 10 products of 256 x 256 at 1024 columns, 5/8 of the flops of the full `X^T X`), in float32, all
 *   in one `session.run`; the blocks are added to the float64 `H` (upper triangle mirrored at the end). Under 256
 *   columns one `Gemm(transA)` computes the full product. Precision: each float32 partial sums at most
 *   `gramChunkRows` products (MLAS adds them in float32 in K-blocks of a few hundred; relative error about
 *   `sqrt(16384) * 2^-24 ~ 8e-6` for typical data, at worst `16384 * 2^-24 ~ 1e-3`; numpy's `X.T @ X` and GPTQ's
 *   reference implementation accumulate everything in float32), and the sum across chunks is float64; pass a
 *   smaller `gramChunkRows` (4096 was the default before) for tighter sums at some speed. Memory: the column
 *   blocks live in the session's ORT arena (`4 * chunkRows * columns` bytes, 64 MiB at 1024 columns, held until
 *   `dispose()`); the block products, `4 * 5/8 * columns^2` bytes, are JavaScript scratch kept between calls.
 * - `fwht`: onnxruntime has no Walsh-Hadamard operator; radix-4 butterflies in JavaScript ({@link fwhtRadix4}).
 *
 * Calls are serialised (one native run at a time); each run uses `threads` MLAS threads and, as onnxruntime-node
 * runs sessions synchronously, holds the JavaScript thread for its duration.
 *
 * @param options - `threads`: MLAS intra-op threads (default `os.availableParallelism()`); `gramChunkRows`
 *   (default 16384) and `gramBlocks` (default 4) tune `gram`; `smallGemmWork` (default 2^24 multiply-adds): smaller
 *   GEMMs run on one thread; see {@link OrtBackendOptions}.
 * @returns A {@link Backend} with `name: 'ort'`.
 * @throws {@link BackendUnavailableError} when onnxruntime-node (an optional dependency) or onnx-proto cannot be loaded.
 * @example
 * ```ts
 * const backend = await createOrtBackend({ threads: 2 });
 * try {
 *   const c = new Float32Array(m * n);
 *   await backend.sgemm({ m, n, k, a, b, c, transB: true });
 * } finally {
 *   await backend.dispose();
 * }
 * ```
 */
export async function createOrtBackend(options: OrtBackendOptions = {}): Promise<Backend> {
  const maxChunkRows = Math.max(1, Math.floor(options.gramChunkRows ?? ORT_GRAM_CHUNK_ROWS));
  const maxBlocks = Math.max(1, Math.floor(options.gramBlocks ?? GRAM_MAX_BLOCKS));
  const ort = await loadOrt();
  const onnx = await loadOnnx();
  const threads = Math.max(1, Math.floor(options.threads ?? (await defaultThreads())));
  const sessionOptions: OrtSessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    // Idle pool threads block instead of spinning: every session (GEMM variants, attention, activation) has its own
    // pool, and a pool spinning after its run takes a core from the next session's run and from JavaScript.
    extra: { session: { intra_op: { allow_spinning: options.spinning ? '1' : '0' } } },
  };
  // Fail now, not on the first call, when the native binding does not work here.
  try {
    const probe = await ort.InferenceSession.create(buildGemmModel(onnx, { elemType: ONNX_FLOAT, transA: false, transB: false, alpha: 1, beta: 0 }), sessionOptions);
    await probe.release();
  } catch (cause) {
    throw unavailable(`onnxruntime-node failed to create a session (${(cause as Error)?.message ?? String(cause)})`, cause);
  }

  // onnxruntime-node hands every output back as a new copy; these are freed at once (see ortOutputReleaser).
  const releaseOutputs = await ortOutputReleaser();
  /** `session.run(feeds, fetches)`, then the binding's copies of the outputs freed (the results are in `fetches`' arrays). */
  async function runInto(s: OrtSession, feeds: Record<string, OrtTensor>, fetches: Record<string, OrtTensor>): Promise<void> {
    releaseOutputs(await s.run(feeds, fetches), fetches);
  }

  const sessions = new Map<string, Promise<OrtSession>>();
  // Scratch buffers reused across calls (calls are serialised), grown on demand, dropped by dispose().
  const buffers = new Map<string, Float32Array>();
  const doubles = new Map<string, Float64Array>();
  const scratch = {
    float32(name: string, length: number): Float32Array {
      let buffer = buffers.get(name);
      if (!buffer || buffer.length < length) {
        buffer = new Float32Array(length);
        buffers.set(name, buffer);
      }
      return buffer;
    },
    float64(name: string, length: number): Float64Array {
      let buffer = doubles.get(name);
      if (!buffer || buffer.length < length) {
        buffer = new Float64Array(length);
        doubles.set(name, buffer);
      }
      return buffer;
    },
    /** Keeps at most {@link SCRATCH_KEEP_BYTES} between calls: large Gram problems give their buffers back. */
    trim(): void {
      let bytes = 0;
      for (const [name, buffer] of buffers) {
        bytes += buffer.byteLength;
        if (bytes > SCRATCH_KEEP_BYTES) buffers.delete(name);
      }
    },
  };
  let disposed = false;
  let queue: Promise<unknown> = Promise.resolve();

  /** Runs `task` after every earlier call has settled: native runs and shared scratch are used one at a time. */
  function serialised<R>(op: string, task: () => Promise<R>): Promise<R> {
    if (disposed) return Promise.reject(new Error(`ort backend: ${op} called after dispose()`));
    const result = queue.then(task);
    queue = result.catch(() => undefined);
    return result;
  }

  const smallSessionOptions: OrtSessionOptions = { ...sessionOptions, intraOpNumThreads: 1 };
  const smallGemmWork = threads > 1 ? Math.max(0, options.smallGemmWork ?? ORT_SMALL_GEMM_WORK) : 0;

  async function session(key: string, build: () => Uint8Array, single = false): Promise<OrtSession> {
    let entry = sessions.get(key);
    if (entry) {
      // Most recently used last.
      sessions.delete(key);
      sessions.set(key, entry);
      return entry;
    }
    entry = ort.InferenceSession.create(build(), single ? smallSessionOptions : sessionOptions);
    sessions.set(key, entry);
    entry.catch(() => sessions.delete(key));
    while (sessions.size > SESSION_CACHE_SIZE) {
      const [oldest, evicted] = sessions.entries().next().value as [string, Promise<OrtSession>];
      sessions.delete(oldest);
      evicted.then((s) => s.release()).catch(() => undefined);
    }
    return entry;
  }

  /** A weight kept as a constant in its own session (see {@link OrtBackendOptions.constantWeightBytes}). */
  interface ConstantWeight {
    session: Promise<OrtSession>;
    /** Fingerprint, shape and layout of the packed weight. */
    key: string;
    bytes: number;
    /** The array that last passed this weight, weakly: the entry is dropped once it is collected. */
    array: WeakRef<Float32Array>;
  }
  const constantBudget = Math.max(0, options.constantWeightBytes ?? ORT_CONSTANT_WEIGHT_BYTES);
  const constantMinRows = Math.max(1, Math.floor(options.constantWeightMinRows ?? ORT_CONSTANT_WEIGHT_MIN_ROWS));
  const constantsByArray = new WeakMap<Float32Array, ConstantWeight>();
  const constantsByKey = new Map<string, ConstantWeight>();
  /** Gated MLP sessions (see {@link gatedMlp}), found by their gate weight's array; same budget and lifetime rules. */
  const mlpsByGate = new WeakMap<Float32Array, ConstantWeight>();
  let constantBytes = 0;
  function dropConstant(entry: ConstantWeight): void {
    if (constantsByKey.get(entry.key) !== entry) return;
    constantsByKey.delete(entry.key);
    constantBytes -= entry.bytes;
    const array = entry.array.deref();
    if (array && constantsByArray.get(array) === entry) constantsByArray.delete(array);
    if (array && mlpsByGate.get(array) === entry) mlpsByGate.delete(array);
    constantFinalizer.unregister(entry);
    entry.session.then((s) => s.release()).catch(() => undefined);
  }
  // Releases the session of a weight whose last array was garbage-collected (an entry that a newer array with the
  // same contents took over stays); runs between calls, never during a run that uses the entry.
  const constantFinalizer = new FinalizationRegistry<ConstantWeight>((entry) => {
    if (!disposed && entry.array.deref() === undefined) dropConstant(entry);
  });

  /**
   * The session of a constant-weight graph keyed by `key` (fingerprints and shape), found first through `array` (the
   * array that last passed it, in `byArray`): an entry of `array` whose key changed (its contents were edited) is
   * dropped; a new array with a known key takes the entry over; otherwise `build` makes a new session when the budget
   * allows. Undefined when it does not; a session that fails to build is dropped and the error thrown.
   */
  async function constantSession(byArray: WeakMap<Float32Array, ConstantWeight>, array: Float32Array, key: string, bytes: number, build: () => Uint8Array): Promise<OrtSession | undefined> {
    let entry = byArray.get(array);
    if (entry && constantsByKey.get(entry.key) !== entry) entry = undefined;
    if (entry && entry.key !== key) {
      dropConstant(entry);
      entry = undefined;
    }
    if (!entry) {
      entry = constantsByKey.get(key);
      if (!entry) {
        if (constantBytes + bytes > constantBudget) return undefined;
        entry = { session: ort.InferenceSession.create(build(), sessionOptions), key, bytes, array: new WeakRef(array) };
        constantsByKey.set(key, entry);
        constantBytes += bytes;
      } else {
        entry.array = new WeakRef(array);
      }
      byArray.set(array, entry);
      constantFinalizer.register(array, entry, entry);
    }
    try {
      return await entry.session;
    } catch (cause) {
      dropConstant(entry);
      throw cause;
    }
  }

  /**
   * `C = A op(B)` with `B` as the constant of its own session, when the budget allows; false when the plain session
   * must do it. `B` is fingerprinted on every call: an array whose contents changed gets its weight packed again,
   * and a new array with the contents of a packed weight (a lazily decoded layer read again) reuses it.
   */
  async function constantWeightGemm(args: GemmArguments<Float32Array>): Promise<boolean> {
    const { m, n, k } = args;
    const transB = args.transB ?? false;
    const bytes = 4 * n * k;
    const weight = ortView(args.b, n * k).view;
    const key = `${weightFingerprint(weight)}|${n}|${k}|${transB ? 1 : 0}`;
    const s = await constantSession(constantsByArray, args.b, key, bytes, () => buildConstantWeightGemmModel(onnx, weight, n, k, transB));
    if (!s) return false;
    const out = ortView(args.c, m * n);
    const a = ortView(args.a, m * k).view;
    for (const [r0, rows] of rowBlocks(m, n, 4)) {
      await runInto(s, { A: new ort.Tensor('float32', a.subarray(r0 * k, (r0 + rows) * k), [rows, k]) }, { Y: new ort.Tensor('float32', out.view.subarray(r0 * n, (r0 + rows) * n), [rows, n]) });
    }
    if (out.copied) args.c.set(out.view);
    return true;
  }

  /**
   * The gated MLP as one session with its three weights as constants (`buildGatedMlpModel`), under the constant-weight
   * budget and row minimum; false when declined. All three weights are fingerprinted on every call, as
   * {@link constantWeightGemm} does: a changed weight gets a new session.
   */
  async function gatedMlp(args: GatedMlpArguments): Promise<boolean> {
    const { rows, hidden, intermediate } = args;
    if (rows < constantMinRows || rows === 0 || hidden === 0 || intermediate === 0) return false;
    const bytes = 12 * hidden * intermediate;
    const key = `mlp|${weightFingerprint(args.gate)}|${weightFingerprint(args.up)}|${weightFingerprint(args.down)}|${hidden}|${intermediate}|${args.activation}`;
    const s = await constantSession(mlpsByGate, args.gate, key, bytes, () => {
      const weights = { gate: ortView(args.gate, args.gate.length).view, up: ortView(args.up, args.up.length).view, down: ortView(args.down, args.down.length).view };
      return buildGatedMlpModel(onnx, { ...weights, hidden, intermediate, activation: args.activation });
    });
    if (!s) return false;
    const x = ortView(args.x, rows * hidden).view;
    const out = ortView(args.out, rows * hidden);
    for (const [r0, n] of rowBlocks(rows, hidden, 4)) {
      await runInto(s, { A: new ort.Tensor('float32', x.subarray(r0 * hidden, (r0 + n) * hidden), [n, hidden]) }, { Y: new ort.Tensor('float32', out.view.subarray(r0 * hidden, (r0 + n) * hidden), [n, hidden]) });
    }
    if (out.copied) args.out.set(out.view);
    return true;
  }

  const outputChunkBytes = Math.max(1, options.outputChunkBytes ?? ORT_OUTPUT_CHUNK_BYTES);
  /** Row blocks `[r0, rows]` of an `m x n` output with at most {@link OrtBackendOptions.outputChunkBytes} each. */
  function rowBlocks(m: number, n: number, elementBytes: number): Array<[number, number]> {
    const per = Math.max(1, Math.floor(outputChunkBytes / (n * elementBytes)));
    const blocks: Array<[number, number]> = [];
    for (let r0 = 0; r0 < m; r0 += per) blocks.push([r0, Math.min(per, m - r0)]);
    return blocks;
  }

  async function gemm<T extends FloatArray>(args: GemmArguments<T>, elemType: number): Promise<void> {
    const { m, n, k } = args;
    const transA = args.transA ?? false;
    const transB = args.transB ?? false;
    const alpha = args.alpha ?? 1;
    const beta = args.beta ?? 0;
    const mn = m * n;
    if (mn === 0) return;
    const c = args.c;
    if (k === 0 || alpha === 0) {
      if (beta === 0) c.fill(0, 0, mn);
      else if (beta !== 1) for (let i = 0; i < mn; i++) c[i] = c[i]! * beta;
      return;
    }
    if (args.constantB && elemType === ONNX_FLOAT && !transA && alpha === 1 && beta === 0 && m >= constantMinRows && constantBudget > 0) {
      if (await constantWeightGemm(args as unknown as GemmArguments<Float32Array>)) return;
    }
    const type: OrtElementType = elemType === ONNX_FLOAT ? 'float32' : 'float64';
    // ONNX Gemm's alpha and beta are float32 attributes; keep them there only when that loses nothing.
    const folded = elemType === ONNX_FLOAT || (Math.fround(alpha) === alpha && Math.fround(beta) === beta);
    const graphAlpha = folded ? Math.fround(alpha) : 1;
    const graphBeta = folded ? Math.fround(beta) : 0;
    const single = m * n * k <= smallGemmWork;
    const key = `gemm|${elemType}|${transA ? 1 : 0}|${transB ? 1 : 0}|${graphAlpha}|${graphBeta}${single ? '|1' : ''}`;
    const s = await session(key, () => buildGemmModel(onnx, { elemType, transA, transB, alpha: graphAlpha, beta: graphBeta }), single);
    const a = ortView(args.a, m * k).view;
    const b = ortView(args.b, k * n).view;
    const out = ortView(c, mn);
    const feeds: Record<string, OrtTensor> = {
      A: new ort.Tensor(type, a, transA ? [k, m] : [m, k]),
      B: new ort.Tensor(type, b, transB ? [n, k] : [k, n]),
    };
    if (folded) {
      // Y is written over C itself; with beta != 0 the Gemm node reads C first (ORT copies beta * C into Y, then MLAS
      // accumulates). Without transA, in row blocks of bounded size (see outputChunkBytes).
      const blocks = transA ? [[0, m] as [number, number]] : rowBlocks(m, n, elemType === ONNX_FLOAT ? 4 : 8);
      for (const [r0, rows] of blocks) {
        const y = new ort.Tensor(type, blocks.length === 1 ? out.view : (out.view.subarray(r0 * n, (r0 + rows) * n) as T), [rows, n]);
        const part = blocks.length === 1 ? feeds : { A: new ort.Tensor(type, a.subarray(r0 * k, (r0 + rows) * k) as T, [rows, k]), B: feeds.B! };
        if (graphBeta !== 0) part.C = y;
        await runInto(s, part, { Y: y });
      }
      if (out.copied) c.set(out.view);
      return;
    }
    // float64 epilogue in JavaScript: C = alpha * (op(A) op(B)) + beta * C.
    const product = new Float64Array(mn);
    await runInto(s, feeds, { Y: new ort.Tensor(type, product, [m, n]) });
    gemmEpilogue(c, product, alpha, beta);
  }

  /**
   * A batch of equal-shape float32 products (reference attention's, the attention backward's): one MLAS batched
   * product, which with more than one product runs each of them on one thread, as the single small products
   * (`smallGemmWork`) run, with the same arithmetic (MLAS splits a product's rows and columns over threads, never its
   * sums, so every product has the bits a single `sgemm` gives it).
   */
  async function batchedSgemm(args: BatchedGemmArguments, single = false): Promise<void> {
    const { batch, m, n, k } = args;
    if (batch * m * n === 0) return;
    const transA = args.transA === true;
    const transB = args.transB === true;
    const alpha = Math.fround(args.alpha ?? 1);
    if (k === 0) {
      args.c.fill(0, 0, batch * m * n);
      return;
    }
    const s = await session(`batched|${transA ? 1 : 0}${transB ? 1 : 0}|${alpha}${single ? '|1' : ''}`, () => buildBatchedGemmModel(onnx, { transA, transB, alpha }), single);
    const y = ortView(args.c, batch * m * n);
    await runInto(
      s,
      {
        A: new ort.Tensor('float32', ortView(args.a, batch * m * k).view, transA ? [batch, k, m] : [batch, m, k]),
        B: new ort.Tensor('float32', ortView(args.b, batch * n * k).view, transB ? [batch, n, k] : [batch, k, n]),
      },
      { Y: new ort.Tensor('float32', y.view, [batch, m, n]) },
    );
    if (y.copied) args.c.set(y.view);
  }

  /** One instance of the reference kernels for every reference call (calls are serialised), made on first use. */
  let kernels: Promise<ReferenceKernels | undefined> | undefined;
  function referenceKernels(): Promise<ReferenceKernels | undefined> {
    kernels ??= tryReferenceKernels();
    return kernels;
  }

  /** Helper threads of the reference kernels, started on first use; undefined inside: none could be started. */
  const referenceThreads = Math.max(1, Math.floor(options.referenceThreads ?? threads));
  let helperThreads: Promise<ReferenceHelpers | undefined> | undefined;
  function referenceHelpers(): Promise<ReferenceHelpers | undefined> {
    helperThreads ??= (async () => {
      if (referenceThreads < 2) return undefined;
      try {
        const url = options.referenceWorker ?? new URL(REFERENCE_WORKER_FILE, import.meta.url);
        return await startReferenceHelpers(referenceThreads - 1, url, await referenceKernelsModule(), smallSessionOptions);
      } catch {
        return undefined;
      }
    })();
    return helperThreads;
  }

  /** The batched GEMM models the helper threads need, by {@link batchedModelKey} (`[transB, alpha, transA]`), each built once. */
  const builtModels = new Map<string, Uint8Array>();
  function helperModels(variants: ReadonlyArray<readonly [transB: boolean, alpha: number, transA?: boolean]>): Record<string, Uint8Array> {
    const models: Record<string, Uint8Array> = {};
    for (const [transB, alpha, transA = false] of variants) {
      const key = batchedModelKey(transB, alpha, transA);
      let model = builtModels.get(key);
      if (!model) {
        model = buildBatchedGemmModel(onnx, { transA, transB, alpha: Math.fround(alpha) });
        builtModels.set(key, model);
      }
      models[key] = model;
    }
    return models;
  }

  /**
   * The reference attention (`attentionWithBatchedSgemm`): shared with the helper threads where they run (each thread
   * on one MLAS thread), else on this thread with `threads`-thread products.
   */
  async function referenceAttention(args: AttentionArguments): Promise<void> {
    const kernels = (await referenceKernels()) ?? null;
    const helpers = kernels ? await referenceHelpers() : undefined;
    if (helpers) {
      const scale = args.scale ?? 1 / Math.sqrt(args.headDim);
      const models = helperModels([[true, scale], [false, 1]]);
      const single = (g: BatchedGemmArguments): Promise<void> => batchedSgemm(g, true);
      const local = (pairs: readonly [number, number]): Promise<void> => attentionWithBatchedSgemm(single, args, kernels, { scratch: scratch.float32, pairs });
      if (await helpers.attention(args, local, models)) return;
    }
    await attentionWithBatchedSgemm(batchedSgemm, args, kernels, { scratch: scratch.float32 });
  }

  /**
   * The attention backward (`attentionBackwardWithBatchedSgemm`) shared with the helper threads, each thread on one
   * MLAS thread; false (the caller computes it) without the kernels or the helpers, or when the call is too small.
   */
  async function referenceAttentionBackward(args: AttentionBackwardArguments): Promise<boolean> {
    const kernels = await referenceKernels();
    const helpers = kernels ? await referenceHelpers() : undefined;
    if (!kernels || !helpers) return false;
    const scale = args.scale ?? 1 / Math.sqrt(args.headDim);
    const alpha = Math.fround(scale) === scale ? scale : 1;
    const models = helperModels([[true, alpha], [true, 1], [false, 1], [false, 1, true]]);
    const single = (g: BatchedGemmArguments): Promise<void> => batchedSgemm(g, true);
    const local = (pairs: readonly [number, number]): Promise<void> => attentionBackwardWithBatchedSgemm(single, args, kernels, { scratch, pairs });
    return helpers.attentionBackward(args, local, models);
  }

  const attentionScoreBytes = Math.max(0, options.attentionScoreBytes ?? ORT_ATTENTION_SCORE_BYTES);
  const attentionParts = Math.max(1, Math.floor(options.attentionParts ?? ORT_ATTENTION_PARTS));
  const masks = new Map<string, Float32Array>();
  /** The additive `[n, n]` mask: 0 where key `j` is visible to query `i` (`i - window < j <= i`), {@link MASKED} elsewhere. */
  function attentionMask(n: number, window: number): Float32Array {
    const key = `${n}|${window}`;
    let mask = masks.get(key);
    if (mask) {
      masks.delete(key);
      masks.set(key, mask);
      return mask;
    }
    mask = new Float32Array(n * n).fill(MASKED);
    for (let i = 0; i < n; i++) mask.fill(0, i * n + Math.max(0, i - window + 1), i * n + i + 1);
    masks.set(key, mask);
    let bytes = 0;
    for (const m of masks.values()) bytes += m.byteLength;
    // Least recently used first; the two newest (a run's full and first-block masks) always stay.
    for (const [oldest, m] of masks) {
      if (masks.size <= 2 || (masks.size <= MASK_CACHE_SIZE && bytes <= MASK_CACHE_BYTES)) break;
      masks.delete(oldest);
      bytes -= m.byteLength;
    }
    return mask;
  }

  async function attention(args: AttentionArguments): Promise<void> {
    const { q, k, v, out, lengths, numHeads, numKvHeads, headDim: d } = args;
    const scale = Math.fround(args.scale ?? 1 / Math.sqrt(d));
    const softcap = args.softcap;
    const window = args.slidingWindow ?? Infinity;
    const qRow = numHeads * d;
    const kvRow = numKvHeads * d;
    const sgemm = (g: GemmArguments<Float32Array>): Promise<void> => gemm(g, ONNX_FLOAT);
    if (args.reference) return referenceAttention(args);
    let start = 0;
    for (let s = 0; s < lengths.length; ) {
      const n = lengths[s]!;
      // A run of equal-length sequences, as many as the score budget allows.
      const perRun = Math.floor(attentionScoreBytes / (4 * numHeads * n * n));
      let count = 1;
      while (count < perRun && s + count < lengths.length && lengths[s + count] === n) count++;
      const tokens = count * n;
      if (n > 0 && perRun < 1) {
        await attentionWithSgemm(sgemm, { ...args, q: q.subarray(start * qRow), k: k.subarray(start * kvRow), v: v.subarray(start * kvRow), out: out.subarray(start * qRow), lengths: [n] });
      } else if (n > 0) {
        const parts = Math.max(1, Math.min(attentionParts, Math.floor(n / ATTENTION_PART_MIN_ROWS)));
        const key = `attention|${numHeads}|${numKvHeads}|${d}|${scale}|${softcap ?? ''}|${parts}`;
        const graph = await session(key, () => buildAttentionModel(onnx, { numHeads, numKvHeads, headDim: d, scale, softcap, parts }));
        const y = ortView(out.subarray(start * qRow, (start + tokens) * qRow), tokens * qRow);
        const feeds: Record<string, OrtTensor> = {
          Q: new ort.Tensor('float32', ortView(q.subarray(start * qRow, (start + tokens) * qRow), tokens * qRow).view, [count, n, qRow]),
          K: new ort.Tensor('float32', ortView(k.subarray(start * kvRow, (start + tokens) * kvRow), tokens * kvRow).view, [count, n, kvRow]),
          V: new ort.Tensor('float32', ortView(v.subarray(start * kvRow, (start + tokens) * kvRow), tokens * kvRow).view, [count, n, kvRow]),
        };
        // Block p: query rows [from, end) against keys [0, end), the last rows of the mask of a sequence of `end` tokens.
        for (let p = 0, from = 0; p < parts; p++) {
          const end = Math.round(((p + 1) * n) / parts);
          if (parts > 1) feeds[`E${p}`] = new ort.Tensor('int64', BigInt64Array.of(BigInt(end)), [1]);
          feeds[`M${p}`] = new ort.Tensor('float32', attentionMask(end, window).subarray(from * end, end * end), [end - from, end]);
          from = end;
        }
        await runInto(graph, feeds, { Y: new ort.Tensor('float32', y.view, [count, n, qRow]) });
        if (y.copied) out.set(y.view, start * qRow);
      }
      start += tokens;
      s += count;
    }
  }

  async function gatedActivation(args: GatedActivationArguments): Promise<void> {
    const length = args.length ?? args.gate.length;
    if (length === 0) return;
    if (args.reference) {
      const kernels = await referenceKernels();
      const helpers = kernels && args.activation === 'silu' ? await referenceHelpers() : undefined;
      const { gate, up, out } = args;
      const local = (from: number, to: number): void => kernels!.siluGate(gate.subarray(from, to), up.subarray(from, to), out.subarray(from, to), to - from);
      if (helpers && (await helpers.silu(gate, up, out, length, local))) return;
      return gatedActivationReference(args, kernels);
    }
    const s = await session(`gated|${args.activation}`, () => buildGatedActivationModel(onnx, args.activation));
    const y = ortView(args.out, length);
    await runInto(
      s,
      { G: new ort.Tensor('float32', ortView(args.gate, length).view, [length]), U: new ort.Tensor('float32', ortView(args.up, length).view, [length]) },
      { Y: new ort.Tensor('float32', y.view, [length]) },
    );
    if (y.copied) args.out.set(y.view);
  }

  /** `x[r0 * n, r1 * n)` as an array the native binding accepts (copied into scratch when `x` is on a `SharedArrayBuffer`). */
  function rowsOf(x: Float32Array, n: number, r0: number, r1: number, name: string): Float32Array {
    const view = x.subarray(r0 * n, r1 * n);
    if (typeof SharedArrayBuffer === 'undefined' || !(view.buffer instanceof SharedArrayBuffer)) return view;
    const copy = scratch.float32(name, view.length).subarray(0, view.length);
    copy.set(view);
    return copy;
  }

  async function gram(args: GramArguments): Promise<void> {
    const { rows, columns: n, h, x } = args;
    const alpha = args.alpha ?? 1;
    const beta = args.beta ?? 1;
    scaleGram(h, n, beta);
    if (n === 0 || rows === 0 || alpha === 0) return;
    const byBudget = Math.max(GRAM_MIN_CHUNK_ROWS, Math.floor(GRAM_CHUNK_BYTES / (4 * n)));
    const chunkRows = Math.min(maxChunkRows, byBudget, rows);
    const blocks = gramBlocks(n, n >= 2 * GRAM_BLOCK_COLUMNS ? Math.min(maxBlocks, Math.floor(n / GRAM_BLOCK_COLUMNS)) : 1);
    if (blocks.length === 1) {
      // Narrow X: one Gemm(transA) over each untransposed chunk, the full n x n product.
      const full = await session(`gemm|${ONNX_FLOAT}|1|0|1|0`, () => buildGemmModel(onnx, { elemType: ONNX_FLOAT, transA: true, transB: false, alpha: 1, beta: 0 }));
      const y = scratch.float32('gram.y0', n * n).subarray(0, n * n);
      const out = new ort.Tensor('float32', y, [n, n]);
      for (let r0 = 0; r0 < rows; r0 += chunkRows) {
        const r = Math.min(chunkRows, rows - r0);
        const chunk = new ort.Tensor('float32', rowsOf(x, n, r0, r0 + r, 'gram.x'), [r, n]);
        await runInto(full, { A: chunk, B: chunk }, { Y: out });
        addLowerBlock(h, n, y, 0, n, alpha);
      }
    } else {
      const products = await session(`gram|${n}|${blocks.map(([start, end]) => end - start).join(',')}`, () => buildGramModel(onnx, n, blocks));
      const outputs: Array<{ name: string; i: number; j: number; y: Float32Array }> = [];
      for (let j = 0; j < blocks.length; j++) {
        for (let i = j; i < blocks.length; i++) {
          const length = (blocks[i]![1] - blocks[i]![0]) * (blocks[j]![1] - blocks[j]![0]);
          outputs.push({ name: `Y${i}_${j}`, i, j, y: scratch.float32(`gram.y${i}_${j}`, length).subarray(0, length) });
        }
      }
      for (let r0 = 0; r0 < rows; r0 += chunkRows) {
        const r = Math.min(chunkRows, rows - r0);
        const fetches: Record<string, OrtTensor> = {};
        for (const { name, i, j, y } of outputs) fetches[name] = new ort.Tensor('float32', y, [blocks[i]![1] - blocks[i]![0], blocks[j]![1] - blocks[j]![0]]);
        await runInto(products, { X: new ort.Tensor('float32', rowsOf(x, n, r0, r0 + r, 'gram.x'), [r, n]) }, fetches);
        for (const { i, j, y } of outputs) addLowerBlockPair(h, n, y, blocks[i]![0], blocks[i]![1], blocks[j]![0], blocks[j]![1], alpha);
      }
    }
    scratch.trim();
    if (!args.lower) mirrorLower(h, n);
  }

  return {
    name: 'ort',
    threads,
    sgemm(args) {
      return serialised('sgemm', async () => {
        checkGemmArguments('sgemm', args);
        await gemm(args, ONNX_FLOAT);
      });
    },
    sgemmBatched(args) {
      return serialised('sgemmBatched', async () => {
        checkBatchedGemmArguments(args);
        await batchedSgemm(args);
      });
    },
    dgemm(args) {
      return serialised('dgemm', async () => {
        checkGemmArguments('dgemm', args);
        await gemm(args, ONNX_DOUBLE);
      });
    },
    gram(args) {
      return serialised('gram', async () => {
        checkGramArguments(args);
        await gram(args);
      });
    },
    attention(args) {
      return serialised('attention', async () => {
        checkAttentionArguments(args);
        await attention(args);
      });
    },
    attentionBackward(args) {
      return serialised('attentionBackward', async () => {
        checkAttentionBackwardArguments(args);
        return referenceAttentionBackward(args);
      });
    },
    gatedActivation(args) {
      return serialised('gatedActivation', async () => {
        checkGatedActivationArguments(args);
        await gatedActivation(args);
      });
    },
    swigluBackward(args) {
      return serialised('swigluBackward', async () => {
        const length = args.length ?? args.gate.length;
        for (const [name, a] of [['gate', args.gate], ['up', args.up], ['dOut', args.dOut], ['dGate', args.dGate], ['dUp', args.dUp]] as const) {
          if (!Number.isInteger(length) || length < 0 || a.length < length) throw new ShapeMismatchError(name, [length], [a.length], 'at least `length` entries');
        }
        // The calling thread's share and the helpers' run the same kernel (the reference kernels' swigluBackward).
        const kernels = length > 0 ? await referenceKernels() : undefined;
        const helpers = kernels ? await referenceHelpers() : undefined;
        if (!kernels || !helpers) return false;
        const { gate, up, dOut, dGate, dUp } = args;
        const local = (from: number, to: number): void => kernels.swigluBackward(gate.subarray(from, to), up.subarray(from, to), dOut.subarray(from, to), dGate.subarray(from, to), dUp.subarray(from, to), to - from);
        return helpers.swigluBackward(gate, up, dOut, dGate, dUp, length, local);
      });
    },
    gatedMlp(args) {
      return serialised('gatedMlp', async () => {
        checkGatedMlpArguments(args);
        return gatedMlp(args);
      });
    },
    fwht(args) {
      return serialised('fwht', async () => {
        checkFwhtArguments(args);
        fwhtRadix4(args.rows, args.n, args.data, args.normalize ?? true);
      });
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      await queue;
      const pending = [...sessions.values(), ...[...constantsByKey.values()].map((e) => e.session)];
      for (const entry of constantsByKey.values()) constantFinalizer.unregister(entry);
      constantsByKey.clear();
      constantBytes = 0;
      sessions.clear();
      buffers.clear();
      doubles.clear();
      const helpers = await helperThreads;
      await helpers?.dispose();
      masks.clear();
      await Promise.all(pending.map((p) => p.then((s) => s.release()).catch(() => undefined)));
    },
  };
}
