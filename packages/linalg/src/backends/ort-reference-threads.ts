import type { AttentionArguments, AttentionBackwardArguments } from '../backend.js';
import type { WasmModule } from './wasm-memory.js';
import { ATTENTION_CHUNK } from './attention-sgemm.js';
import { nodeBuiltin } from '../node-builtin.js';

/** What a helper thread of the reference kernels gets when it starts (see {@link startReferenceHelpers}). Internal. */
export interface ReferenceWorkerData {
  /** The compiled `reference-kernels.wasm`. */
  readonly kernels: WasmModule;
  /** onnxruntime session options of the helper's batched products (one intra-op thread). */
  readonly sessionOptions: object;
}

/** One part of a reference attention call for a helper thread. Internal. */
export interface AttentionWorkerRequest {
  readonly kind: 'attention';
  readonly id: number;
  /** The sequences that hold the part's pairs, their `q`, `k`, `v` and `out` on a `SharedArrayBuffer`. */
  readonly args: AttentionArguments;
  /** The part's pairs, numbered within `args`. */
  readonly pairs: readonly [number, number];
  /** Batched GEMM models by {@link batchedModelKey} (ONNX bytes). */
  readonly models: Record<string, Uint8Array>;
}

/** One part of an attention backward call for a helper thread (its pairs' gradients into `args`' `dq`, `dk`, `dv`). Internal. */
export interface AttentionBackwardWorkerRequest {
  readonly kind: 'attention-backward';
  readonly id: number;
  /** The sequences that hold the part's pairs: `q`, `k`, `v`, `dOut` and the gradients on a `SharedArrayBuffer`. */
  readonly args: AttentionBackwardArguments;
  /** The part's pairs, numbered within `args`. */
  readonly pairs: readonly [number, number];
  /** Batched GEMM models by {@link batchedModelKey} (ONNX bytes). */
  readonly models: Record<string, Uint8Array>;
}

/** One part of a reference SiLU gate call for a helper thread: `out = silu(gate) * up`, all on a `SharedArrayBuffer`. Internal. */
export interface SiluWorkerRequest {
  readonly kind: 'silu';
  readonly id: number;
  readonly gate: Float32Array;
  readonly up: Float32Array;
  readonly out: Float32Array;
}

/**
 * One part of a reference SwiGLU backward call for a helper thread, in place on a `SharedArrayBuffer`: `gate` becomes
 * the gate's gradient and `up` the up projection's (the reference kernels' `swigluBackward` with `dh`). Internal.
 */
export interface SwigluBackwardWorkerRequest {
  readonly kind: 'swiglu-backward';
  readonly id: number;
  readonly gate: Float32Array;
  readonly up: Float32Array;
  readonly dh: Float32Array;
}

/** A request to a helper thread. Internal. */
export type ReferenceWorkerRequest = AttentionWorkerRequest | AttentionBackwardWorkerRequest | SiluWorkerRequest | SwigluBackwardWorkerRequest;

/** A helper thread's answer: the request's id, and the error's text when it failed. Internal. */
export interface ReferenceWorkerReply {
  readonly id: number;
  readonly error?: string;
}

/** The key of a batched GEMM model: transposed `B` (and `A`) or not, and `alpha` as the float32 the graph stores. Internal. */
export function batchedModelKey(transB: boolean, alpha: number, transA = false): string {
  return `${transA ? 1 : 0}${transB ? 1 : 0}|${Math.fround(alpha)}`;
}

/** Below this many multiply-adds of attention products (`q k` and `p v`) a call stays on the calling thread. */
export const ATTENTION_HELPER_MIN_WORK = 1 << 22;

/**
 * Splits pairs `0 .. weights.length - 1` into `parts` consecutive ranges of about equal total weight (each nonempty
 * while there are enough pairs), as `parts + 1` bounds from 0 to `weights.length`.
 *
 * @example
 * ```ts
 * splitByWeight([1, 1, 1, 1], 2); // [0, 2, 4]
 * ```
 */
export function splitByWeight(weights: readonly number[], parts: number): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  const bounds = [0];
  let sum = 0;
  let i = 0;
  for (let part = 1; part < parts; part++) {
    const target = (total * part) / parts;
    // At least one pair per part, and enough left for the parts after this one.
    while (i < weights.length - (parts - part) && (i <= bounds[part - 1]! || sum + weights[i]! / 2 < target)) sum += weights[i++]!;
    bounds.push(i);
  }
  bounds.push(weights.length);
  return bounds;
}

/** Below this many elements a SiLU gate call stays on the calling thread. */
export const SILU_HELPER_MIN_LENGTH = 1 << 16;
/** Most elements per thread in one round of a shared SiLU gate call (3 shared float32 arrays of this many per helper). */
export const SILU_HELPER_ROUND = 1 << 19;

/** Helper threads of the reference kernels (see {@link startReferenceHelpers}). Internal. */
export interface ReferenceHelpers {
  /** Helper threads (the calling thread runs one more part). */
  readonly count: number;
  /**
   * Runs `args` on the calling thread and the helpers: `local(pairs)` computes its part of the pairs on this thread,
   * each helper one of the others on copies of its sequences' `q`, `k`, `v` (a `SharedArrayBuffer`), whose output is
   * copied back into `args.out`. `models`: the batched GEMM models the helpers need, by {@link batchedModelKey}.
   * False (nothing done) when the call is too small to share or a helper thread has died (the caller then runs it
   * alone); rejects when a helper fails during the call.
   */
  attention(args: AttentionArguments, local: (pairs: readonly [number, number]) => Promise<void>, models: Record<string, Uint8Array>): Promise<boolean>;
  /**
   * The attention backward of `args` on the calling thread and the helpers, split by pairs as {@link attention}:
   * `local(pairs)` computes its part here, each helper one of the others on copies of its sequences' `q`, `k`, `v`
   * and `dOut` (a `SharedArrayBuffer`), whose heads' gradients are copied back into `args`' `dq`, `dk`, `dv`. False
   * (nothing done) when the call is too small to share or a helper thread has died; rejects when a helper fails.
   */
  attentionBackward(args: AttentionBackwardArguments, local: (pairs: readonly [number, number]) => Promise<void>, models: Record<string, Uint8Array>): Promise<boolean>;
  /**
   * `out[i] = silu(gate[i]) * up[i]` for `i < length` (the reference kernels' `siluGate`), in rounds of at most
   * {@link SILU_HELPER_ROUND} elements per thread: each round's leading share on the calling thread
   * (`local(from, to)`), the others on the helpers (copies through a `SharedArrayBuffer`). False
   * (nothing done) when the call is too small to share or a helper thread has died. Element-wise: the same bits
   * however it is cut.
   */
  silu(gate: Float32Array, up: Float32Array, out: Float32Array, length: number, local: (from: number, to: number) => void): Promise<boolean>;
  /**
   * SwiGLU's backward (the reference kernels' `swigluBackward`: `dGate`, `dUp` from `gate`, `up` and the output
   * gradient `dh`) for `i < length`, cut into rounds and shares as {@link silu}: `local(from, to)` computes the calling
   * thread's share, the helpers theirs on copies. False (nothing done) when the call is too small to share or a helper
   * thread has died. Element-wise: the same bits however it is cut. `dGate` may be `gate` and `dUp` may be `up`.
   */
  swigluBackward(gate: Float32Array, up: Float32Array, dh: Float32Array, dGate: Float32Array, dUp: Float32Array, length: number, local: (from: number, to: number) => void): Promise<boolean>;
  /** Ends the helper threads. */
  dispose(): Promise<void>;
}

/**
 * Copies a helper's key/value heads from its shared `view` (rows of `row` floats from its part's first token) into
 * `target`, each key/value head `headWidth` columns wide (its query heads' for query-shaped matrices).
 */
type CopyHeads = (view: Float32Array, target: Float32Array, row: number, headWidth: number) => void;

interface Helper {
  worker: import('node:worker_threads').Worker;
  buffer: SharedArrayBuffer | undefined;
  pending: Map<number, { resolve(): void; reject(error: Error): void }>;
  failed: Error | undefined;
}

/**
 * Starts `count` helper worker threads for the `ort` backend's reference attention and SiLU gate, each running `url`
 * (the built `ort-reference-worker.js`) with its own onnxruntime sessions (`sessionOptions`, one intra-op thread) and its own
 * instance of the compiled reference kernels `kernels`. Resolves `undefined` where worker threads, the file or
 * onnxruntime in a worker are not available: the caller then runs the whole attention itself.
 *
 * The attention's (sequence, key/value head) pairs are independent and `attentionWithBatchedSgemm` gives each the same
 * bits whichever pairs share its batches, so the parts' outputs together are bit for bit the single-thread call's,
 * provided each part's products are (onnxruntime's batched MatMul runs each product on one thread in either case).
 *
 * @example
 * ```ts
 * const helpers = await startReferenceHelpers(1, new URL('./ort-reference-worker.js', import.meta.url), module, options);
 * ```
 */
export async function startReferenceHelpers(count: number, url: URL, kernels: WasmModule, sessionOptions: object): Promise<ReferenceHelpers | undefined> {
  const threads = await nodeBuiltin<typeof import('node:worker_threads')>('worker_threads');
  if (!threads || count < 1) return undefined;
  const helpers: Helper[] = [];
  const data: ReferenceWorkerData = { kernels, sessionOptions };
  const started = await Promise.all(
    Array.from({ length: count }, async () => {
      let worker: import('node:worker_threads').Worker;
      try {
        worker = new threads.Worker(url, { workerData: data });
      } catch {
        return undefined;
      }
      const helper: Helper = { worker, buffer: undefined, pending: new Map(), failed: undefined };
      const ready = await new Promise<boolean>((resolve) => {
        const fail = (): void => resolve(false);
        worker.once('error', fail);
        worker.once('exit', fail);
        worker.once('message', (message) => {
          worker.off('error', fail);
          worker.off('exit', fail);
          resolve(message === 'ready');
        });
      });
      if (!ready) {
        await worker.terminate().catch(() => undefined);
        return undefined;
      }
      const failAll = (error: Error): void => {
        helper.failed ??= error;
        for (const { reject } of helper.pending.values()) reject(error);
        helper.pending.clear();
      };
      worker.on('message', (reply: ReferenceWorkerReply) => {
        const entry = helper.pending.get(reply.id);
        if (!entry) return;
        helper.pending.delete(reply.id);
        if (helper.pending.size === 0) worker.unref();
        if (reply.error === undefined) entry.resolve();
        else entry.reject(new Error(`ort reference helper thread: ${reply.error}`));
      });
      worker.on('error', (error) => failAll(error instanceof Error ? error : new Error(String(error))));
      worker.on('exit', (code) => failAll(new Error(`ort reference helper thread exited (code ${code})`)));
      worker.unref();
      return helper;
    }),
  );
  for (const helper of started) if (helper) helpers.push(helper);
  if (helpers.length < count) {
    await Promise.all(helpers.map((h) => h.worker.terminate().catch(() => undefined)));
    return undefined;
  }
  let nextId = 0;

  /** A view of `length` floats at float offset `at` of the helper's shared buffer, grown (replaced) as needed. */
  function sharedViews(helper: Helper, lengths: readonly number[]): Float32Array[] {
    const total = lengths.reduce((a, b) => a + b, 0);
    if (!helper.buffer || helper.buffer.byteLength < 4 * total) helper.buffer = new SharedArrayBuffer(4 * total);
    const views: Float32Array[] = [];
    let at = 0;
    for (const length of lengths) {
      views.push(new Float32Array(helper.buffer, 4 * at, length));
      at += length;
    }
    return views;
  }

  function post(helper: Helper, request: Omit<AttentionWorkerRequest, 'id'> | Omit<AttentionBackwardWorkerRequest, 'id'> | Omit<SiluWorkerRequest, 'id'> | Omit<SwigluBackwardWorkerRequest, 'id'>): Promise<void> {
    if (helper.failed) return Promise.reject(helper.failed);
    const id = nextId++;
    return new Promise<void>((resolve, reject) => {
      helper.pending.set(id, { resolve, reject });
      helper.worker.ref();
      helper.worker.postMessage({ ...request, id });
    });
  }

  /**
   * An element-wise call over `length` elements on this thread and the helpers: rounds of at most
   * {@link SILU_HELPER_ROUND} elements per thread (bounded shared buffers), each cut into equal shares at multiples of
   * 4 elements; the first share here (`local`), the others handed to the helpers by `hand` (which copies a share's
   * inputs, posts it, and returns how to copy its results back once it is done).
   */
  async function elementwise(length: number, local: (from: number, to: number) => void, hand: (helper: Helper, from: number, to: number) => { promise: Promise<void>; copyBack: () => void }): Promise<boolean> {
    if (length < SILU_HELPER_MIN_LENGTH || helpers.some((h) => h.failed)) return false;
    const parts = helpers.length + 1;
    const round = parts * SILU_HELPER_ROUND;
    for (let start = 0; start < length; start += round) {
      const end = Math.min(length, start + round);
      const bounds = Array.from({ length: parts + 1 }, (_, i) => (i === parts ? end : start + Math.floor(((end - start) * i) / parts / 4) * 4));
      const jobs: Array<{ promise: Promise<void>; copyBack: () => void }> = [];
      for (let part = 1; part < parts; part++) {
        const from = bounds[part]!;
        const to = bounds[part + 1]!;
        if (from < to) jobs.push(hand(helpers[part - 1]!, from, to));
      }
      let error: unknown;
      try {
        local(start, bounds[1]!);
      } catch (cause) {
        error = cause;
      }
      const settled = await Promise.allSettled(jobs.map((j) => j.promise));
      for (const result of settled) if (result.status === 'rejected') error ??= result.reason;
      if (error !== undefined) throw error;
      for (const { copyBack } of jobs) copyBack();
    }
    return true;
  }

  /**
   * Splits the (sequence, key/value head) pairs of an attention call (forward or backward) between this thread and
   * the helpers by their work: `hand(helper, t0, t1, lengths, pairs)` copies the inputs of token rows `t0 .. t1 - 1`
   * (the sequences `lengths` that hold the helper's pairs, numbered from that part's first sequence), posts them, and
   * returns how to copy the helper's heads back; then `local([0, end])` computes the first part here. False (nothing
   * done) when the call is too small to share or a helper has died.
   */
  async function splitPairs(
    args: { readonly lengths: readonly number[]; readonly numHeads: number; readonly numKvHeads: number; readonly headDim: number },
    local: (pairs: readonly [number, number]) => Promise<void>,
    hand: (helper: Helper, t0: number, t1: number, lengths: readonly number[], pairs: readonly [number, number]) => { promise: Promise<void>; copyBack: (copy: CopyHeads) => void },
  ): Promise<boolean> {
    const { lengths, numHeads, numKvHeads: kvHeads, headDim: d } = args;
    const group = numHeads / kvHeads;
    // Work per pair: the products' multiply-adds (both about n^2 d / 2 + chunk rows beyond the causal half) plus
    // the copies and the softmax, which grow as n^2 too.
    const weights: number[] = [];
    let work = 0;
    for (const n of lengths) {
      const w = n * (n + Math.min(n, ATTENTION_CHUNK));
      for (let g = 0; g < kvHeads; g++) weights.push(w);
      work += kvHeads * group * w * d;
    }
    const parts = Math.min(helpers.length + 1, weights.length);
    if (parts < 2 || work < ATTENTION_HELPER_MIN_WORK || helpers.some((h) => h.failed)) return false;
    const bounds = splitByWeight(weights, parts);
    const firstToken: number[] = [0];
    for (const n of lengths) firstToken.push(firstToken[firstToken.length - 1]! + n);
    // Hand each helper its part first (copies of its sequences' rows), then compute part 0 here.
    const jobs: Array<{ promise: Promise<void>; copyBack: (copy: CopyHeads) => void; from: number; to: number; s0: number }> = [];
    for (let part = 1; part < parts; part++) {
      const from = bounds[part]!;
      const to = bounds[part + 1]!;
      if (from >= to) continue;
      const s0 = Math.floor(from / kvHeads);
      const s1 = Math.ceil(to / kvHeads);
      const job = hand(helpers[part - 1]!, firstToken[s0]!, firstToken[s1]!, lengths.slice(s0, s1), [from - s0 * kvHeads, to - s0 * kvHeads]);
      jobs.push({ ...job, from, to, s0 });
    }
    let error: unknown;
    try {
      await local([0, bounds[1]!]);
    } catch (cause) {
      error = cause;
    }
    const settled = await Promise.allSettled(jobs.map((j) => j.promise));
    for (const result of settled) if (result.status === 'rejected') error ??= result.reason;
    if (error !== undefined) throw error;
    // Each helper's heads back: whole rows of sequences it computed every head of, else its heads' columns.
    for (const { copyBack, from, to, s0 } of jobs) {
      const base = firstToken[s0]!;
      copyBack((view, target, row, headWidth) => {
        for (let s = Math.floor(from / kvHeads); s * kvHeads < to; s++) {
          const g0 = Math.max(0, from - s * kvHeads);
          const g1 = Math.min(kvHeads, to - s * kvHeads);
          const t0 = firstToken[s]!;
          const t1 = firstToken[s + 1]!;
          if (g0 === 0 && g1 === kvHeads) {
            target.set(view.subarray((t0 - base) * row, (t1 - base) * row), t0 * row);
            continue;
          }
          const c0 = g0 * headWidth;
          const c1 = g1 * headWidth;
          for (let t = t0; t < t1; t++) {
            const o = (t - base) * row;
            for (let c = c0; c < c1; c++) target[t * row + c] = view[o + c]!;
          }
        }
      });
    }
    return true;
  }

  return {
    count: helpers.length,
    attention(args, local, models) {
      const { q, k, v, out, numHeads, numKvHeads: kvHeads, headDim: d } = args;
      const qRow = numHeads * d;
      const kvRow = kvHeads * d;
      const headWidth = (numHeads / kvHeads) * d;
      return splitPairs(args, local, (helper, t0, t1, lengths, pairs) => {
        const tokens = t1 - t0;
        const [hq, hk, hv, ho] = sharedViews(helper, [tokens * qRow, tokens * kvRow, tokens * kvRow, tokens * qRow]);
        hq!.set(q.subarray(t0 * qRow, t1 * qRow));
        hk!.set(k.subarray(t0 * kvRow, t1 * kvRow));
        hv!.set(v.subarray(t0 * kvRow, t1 * kvRow));
        const request = { kind: 'attention' as const, args: { ...args, q: hq!, k: hk!, v: hv!, out: ho!, lengths }, pairs, models };
        return { promise: post(helper, request), copyBack: (copy) => copy(ho!, out, qRow, headWidth) };
      });
    },
    attentionBackward(args, local, models) {
      const { q, k, v, dOut, dq, dk, dv, numHeads, numKvHeads: kvHeads, headDim: d } = args;
      const qRow = numHeads * d;
      const kvRow = kvHeads * d;
      const headWidth = (numHeads / kvHeads) * d;
      return splitPairs(args, local, (helper, t0, t1, lengths, pairs) => {
        const tokens = t1 - t0;
        const [hq, hk, hv, hdo, hdq, hdk, hdv] = sharedViews(helper, [tokens * qRow, tokens * kvRow, tokens * kvRow, tokens * qRow, tokens * qRow, tokens * kvRow, tokens * kvRow]);
        hq!.set(q.subarray(t0 * qRow, t1 * qRow));
        hk!.set(k.subarray(t0 * kvRow, t1 * kvRow));
        hv!.set(v.subarray(t0 * kvRow, t1 * kvRow));
        hdo!.set(dOut.subarray(t0 * qRow, t1 * qRow));
        const request = { kind: 'attention-backward' as const, args: { ...args, q: hq!, k: hk!, v: hv!, dOut: hdo!, dq: hdq!, dk: hdk!, dv: hdv!, lengths }, pairs, models };
        const copyBack = (copy: CopyHeads): void => {
          copy(hdq!, dq, qRow, headWidth);
          copy(hdk!, dk, kvRow, d);
          copy(hdv!, dv, kvRow, d);
        };
        return { promise: post(helper, request), copyBack };
      });
    },
    silu(gate, up, out, length, local) {
      return elementwise(length, local, (helper, from, to) => {
        const n = to - from;
        const [g, u, o] = sharedViews(helper, [n, n, n]);
        g!.set(gate.subarray(from, to));
        u!.set(up.subarray(from, to));
        return { promise: post(helper, { kind: 'silu', gate: g!, up: u!, out: o! }), copyBack: () => out.set(o!, from) };
      });
    },
    swigluBackward(gate, up, dh, dGate, dUp, length, local) {
      return elementwise(length, local, (helper, from, to) => {
        const n = to - from;
        const [g, u, d] = sharedViews(helper, [n, n, n]);
        g!.set(gate.subarray(from, to));
        u!.set(up.subarray(from, to));
        d!.set(dh.subarray(from, to));
        // The helper writes the gradients over its copies of gate and up.
        const copyBack = (): void => {
          dGate.set(g!, from);
          dUp.set(u!, from);
        };
        return { promise: post(helper, { kind: 'swiglu-backward', gate: g!, up: u!, dh: d! }), copyBack };
      });
    },
    async dispose() {
      await Promise.all(helpers.map((h) => h.worker.terminate().catch(() => undefined)));
    },
  };
}
