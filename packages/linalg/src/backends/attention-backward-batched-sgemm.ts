import type { AttentionBackwardArguments, BatchedGemmArguments } from '../backend.js';
import type { ReferenceKernels } from '../reference-kernels.js';
import { attentionChunk, attentionPairAt, equalLengthRuns, noPackedKeyValues, packKeyValueChunk, packQueryRows, unpackQueryRows, type AttentionPairLayout } from './attention-pair-rows.js';
import { ATTENTION_CHUNK, softmaxRowsLoop } from './attention-sgemm.js';

/** Default bytes of one batch of float32 score blocks (`P` and `dP` each) in {@link attentionBackwardWithBatchedSgemm}. */
export const BATCHED_ATTENTION_BACKWARD_SCORE_BYTES = 16 * 1024 * 1024;

/** Where {@link attentionBackwardWithBatchedSgemm} puts its packed operands and accumulators. */
export interface AttentionBackwardScratch {
  /** At least `length` float32 under `name`, contents anything (a caller's buffers kept between calls). */
  float32(name: string, length: number): Float32Array;
  /** At least `length` float64 under `name`, contents anything. */
  float64(name: string, length: number): Float64Array;
}

/** Options of {@link attentionBackwardWithBatchedSgemm}. */
export interface AttentionBackwardBatchedOptions {
  /** Query rows per score block: each block multiplies only the keys up to its last row. Default {@link ATTENTION_CHUNK}. */
  chunk?: number;
  /** Most bytes of one batch of float32 score blocks (`P` and `dP` each). Default 16 MiB; at least one pair. */
  scoreBytes?: number;
  /** Where the packed operands, score blocks and float64 accumulators go. Default fresh arrays. */
  scratch?: AttentionBackwardScratch;
  /**
   * Compute only the (sequence, key/value head) pairs `from .. to - 1` of the whole call (pair `s * numKvHeads + g` is
   * sequence `s`, key/value head `g`): their heads' columns of `dq`, `dk` and `dv` are written, the others left alone.
   * Default all. Each pair's gradients are the same bits whichever pairs share its batches, so parts of one call can
   * run on different threads.
   */
  pairs?: readonly [number, number];
}

const fresh: AttentionBackwardScratch = { float32: (_, length) => new Float32Array(length), float64: (_, length) => new Float64Array(length) };

/**
 * Backward pass of causal grouped-query attention with its O(n^2 d) work in batched float32 GEMMs (see
 * {@link AttentionBackwardArguments}). Per (sequence, key/value head) pair and chunk of query rows (the group's query
 * heads stacked): `S = Q K^T scale` (GEMM), the softmax `P` recomputed with the causal (and sliding-window) mask with
 * float64 row sums, `dP = dO V^T` (GEMM), `dS = P (dP - rowsum(P dP)) scale`, then `dQ = dS K`, `dK += dS^T Q`,
 * `dV += P^T dO` (three GEMMs). Keys' and values' gradients, which sum over chunks and query heads, accumulate in
 * float64, chunk by chunk in order.
 *
 * The pairs of a run of equal-length sequences share one chunk layout, so each product of a chunk is one batched GEMM
 * over many pairs (`batched`: on `ort` one MLAS call, each product the one a single `sgemm` gives), and the softmax's
 * exponentials, row sums and backward run in WebAssembly SIMD (`ReferenceKernels.softmaxRowsBackward`, bit for bit the
 * JavaScript loop) where `kernels` is given. The result does not depend on the batching or on which pairs a call
 * computes: every element is computed as with one pair at a time.
 *
 * Paper: arXiv:1706.03762 (attention), arXiv:2305.13245 (grouped-query attention).
 *
 * @param batched The backend's batched GEMM.
 * @param args Queries, keys, values, the output's gradient and where the three gradients go.
 * @param kernels The softmax kernels (the score blocks live in their memory), or `null` for the JavaScript loops.
 * @param options `chunk`, `scoreBytes`, `scratch`, `pairs`.
 * @example
 * ```ts
 * await attentionBackwardWithBatchedSgemm((g) => sgemmBatched(backend, g), { q, k, v, dOut, dq, dk, dv, lengths: [512], numHeads: 8, numKvHeads: 4, headDim: 64 }, kernels);
 * ```
 */
export async function attentionBackwardWithBatchedSgemm(
  batched: (args: BatchedGemmArguments) => Promise<void>,
  args: AttentionBackwardArguments,
  kernels: ReferenceKernels | null,
  options: AttentionBackwardBatchedOptions = {},
): Promise<void> {
  const { q, k, v, dOut, dq, dk, dv, lengths, numHeads, numKvHeads, headDim: d } = args;
  const window = args.slidingWindow ?? Infinity;
  const group = numHeads / numKvHeads;
  const qRow = numHeads * d;
  const kvRow = numKvHeads * d;
  const scale = args.scale ?? 1 / Math.sqrt(d);
  const chunk = Math.max(1, Math.floor(options.chunk ?? ATTENTION_CHUNK));
  const scoreBytes = options.scoreBytes ?? BATCHED_ATTENTION_BACKWARD_SCORE_BYTES;
  const buffer = options.scratch ?? fresh;
  const [from, to] = options.pairs ?? [0, lengths.length * numKvHeads];
  // The scale goes into the score product when float32 holds it exactly (as a single sgemm folds it), else after.
  const folded = Math.fround(scale) === scale;
  for (const { start, n, lo, hi } of equalLengthRuns(lengths, numKvHeads, from, to)) {
    const rowsPerChunk = Math.min(chunk, n);
    const m = group * rowsPerChunk;
    const pairs = hi - lo;
    const perBatch = Math.max(1, Math.min(pairs, Math.floor(scoreBytes / (4 * m * n))));
    const layout: AttentionPairLayout = { start, n, numKvHeads, group, d, qRow, kvRow };
    const queries = buffer.float32('attention-backward.queries', perBatch * m * d);
    const dOuts = buffer.float32('attention-backward.dOuts', perBatch * m * d);
    const keys = buffer.float32('attention-backward.keys', perBatch * n * d);
    const values = buffer.float32('attention-backward.values', perBatch * n * d);
    const dQueries = buffer.float32('attention-backward.dQ', perBatch * m * d);
    const part = buffer.float32('attention-backward.part', perBatch * n * d);
    const dKeys = buffer.float64('attention-backward.dK', perBatch * n * d);
    const dValues = buffer.float64('attention-backward.dV', perBatch * n * d);
    // With the kernels, P, dP and the row sums live in their memory (the softmax and its backward run there).
    const { scores: p, sums, gradients: dp } = kernels
      ? kernels.reserveWithGradients(perBatch * m * n, perBatch * m)
      : { scores: buffer.float32('attention-backward.P', perBatch * m * n), sums: buffer.float64('attention-backward.sums', perBatch * m), gradients: buffer.float32('attention-backward.dP', perBatch * m * n) };
    for (let p0 = lo; p0 < hi; p0 += perBatch) {
      const batch = Math.min(perBatch, hi - p0);
      dKeys.fill(0, 0, batch * n * d);
      dValues.fill(0, 0, batch * n * d);
      // Keys and values already packed for this batch (the previous chunk's rows).
      const packed = noPackedKeyValues();
      for (let r0 = 0; r0 < n; r0 += rowsPerChunk) {
        const { r1, rows, k0, width, mm } = attentionChunk(r0, rowsPerChunk, n, window, group);
        // Slot e holds pair p0 + e: its query heads stacked head by head, its keys and values rows k0 .. r1.
        for (let e = 0; e < batch; e++) {
          packQueryRows(layout, p0 + e, e, r0, rows, q, queries);
          packQueryRows(layout, p0 + e, e, r0, rows, dOut, dOuts);
        }
        // Keys and values: rows k0 .. r1 - 1 (the previous chunk's rows moved, not gathered again).
        packKeyValueChunk(layout, p0, batch, k0, r1, width, k, v, keys, values, packed);
        const Qc = queries.subarray(0, batch * mm * d);
        const dOc = dOuts.subarray(0, batch * mm * d);
        const Kc = keys.subarray(0, batch * width * d);
        const Vc = values.subarray(0, batch * width * d);
        const P = p.subarray(0, batch * mm * width);
        const dP = dp.subarray(0, batch * mm * width);
        await batched({ batch, m: mm, n: width, k: d, a: Qc, b: Kc, c: P, transB: true, alpha: folded ? scale : 1 });
        if (!folded) for (let i = 0; i < P.length; i++) P[i] = P[i]! * scale;
        await batched({ batch, m: mm, n: width, k: d, a: dOc, b: Vc, c: dP, transB: true });
        // Every pair's rows have the same mask: the batch is `batch * group` heads of `rows` rows.
        if (kernels) kernels.softmaxRowsBackward({ group: batch * group, rows, width, r0, k0, window, scale });
        else {
          softmaxRowsLoop(P, sums, batch * group, rows, width, r0, k0, window, undefined);
          softmaxBackwardRows(P, dP, sums, batch * group, rows, width, r0, k0, window, scale);
        }
        // dQ = dS K; dK += dS^T Q; dV += P^T dO.
        const dQc = dQueries.subarray(0, batch * mm * d);
        await batched({ batch, m: mm, n: d, k: width, a: dP, b: Kc, c: dQc });
        for (let e = 0; e < batch; e++) unpackQueryRows(layout, p0 + e, e, r0, rows, dQc, dq);
        const w = part.subarray(0, batch * width * d);
        await batched({ batch, m: width, n: d, k: mm, a: dP, b: Qc, c: w, transA: true });
        addChunk(dKeys, w, batch, n, width, k0, d);
        await batched({ batch, m: width, n: d, k: mm, a: P, b: dOc, c: w, transA: true });
        addChunk(dValues, w, batch, n, width, k0, d);
      }
      for (let e = 0; e < batch; e++) {
        const { first, g } = attentionPairAt(layout, p0 + e);
        for (let i = 0; i < n; i++) {
          const o = (first + i) * kvRow + g * d;
          const at = (e * n + i) * d;
          for (let t = 0; t < d; t++) {
            dk[o + t] = dKeys[at + t]!;
            dv[o + t] = dValues[at + t]!;
          }
        }
      }
    }
  }
}

/** `acc[e][k0 + i] += part[e][i]` for the `width * d` floats of each pair's chunk (float64 accumulators `[batch, n, d]`). */
function addChunk(acc: Float64Array, part: Float32Array, batch: number, n: number, width: number, k0: number, d: number): void {
  const length = width * d;
  for (let e = 0; e < batch; e++) {
    const to = (e * n + k0) * d;
    const from = e * length;
    for (let i = 0; i < length; i++) acc[to + i] += part[from + i]!;
  }
}

/**
 * Given the exponentials and row sums, `P = e / sum` (float32) and `dS = P (dP - sum_j P dP) scale` over `dP` in place
 * (the dot product in float64 from the unrounded quotients), masked entries of `dP` 0.
 */
function softmaxBackwardRows(P: Float32Array, dP: Float32Array, sums: Float64Array, heads: number, rows: number, width: number, r0: number, k0: number, window: number, scale: number): void {
  for (let a = 0; a < heads; a++) {
    for (let i = 0; i < rows; i++) {
      const o = (a * rows + i) * width;
      const first = firstVisible(r0 + i, k0, window);
      const last = r0 + i - k0;
      const sum = sums[a * rows + i]!;
      let dot = 0;
      for (let j = first; j <= last; j++) {
        const pj = P[o + j]! / sum;
        P[o + j] = pj;
        dot += pj * dP[o + j]!;
      }
      for (let j = first; j <= last; j++) dP[o + j] = P[o + j]! * (dP[o + j]! - dot) * scale;
      for (let j = 0; j < first; j++) dP[o + j] = 0;
      for (let j = last + 1; j < width; j++) dP[o + j] = 0;
    }
  }
}

/** Column (from `k0`) of the first key that query row `position` sees under the causal sliding window. */
function firstVisible(position: number, k0: number, window: number): number {
  return Math.max(k0, position - window + 1) - k0;
}
