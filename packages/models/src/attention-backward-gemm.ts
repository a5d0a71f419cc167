import {
  attentionChunk,
  attentionPairAt,
  fastExp,
  packKeyValueRows,
  packQueryRows,
  sgemmBatched,
  unpackQueryRows,
  type AttentionPairLayout,
  type Backend,
} from '@bitsmith/linalg';
import { attentionLayout, type AttentionShape } from './attention.js';
import { withReferenceKernels } from './reference-kernel-pool.js';

/** Options of {@link causalAttentionBackwardGemm}. */
export interface AttentionBackwardOptions {
  /** Query rows per score block: each block multiplies only the keys up to its last row. Default 128. */
  chunk?: number;
  /**
   * Most bytes of one batch of float32 score blocks (`P` and `dP` each): the (sequence, key/value head) pairs of a
   * run of equal-length sequences go through the products this many at a time. Default 16 MiB; at least one pair.
   */
  scoreBytes?: number;
  /**
   * Where the packed operands, the score blocks and the float64 key/value accumulators go (a caller's buffers kept
   * between calls, such as a `BlockWorkspace`'s): `float32(name, length)` and `float64(name, length)` return arrays of
   * at least `length` elements whose contents may be anything. Default fresh arrays.
   */
  scratch?: { float32(name: string, length: number): Float32Array; float64(name: string, length: number): Float64Array };
}

/** Default {@link AttentionBackwardOptions.scoreBytes}. */
const SCORE_BYTES = 16 * 1024 * 1024;

const fresh = { float32: (_: string, length: number) => new Float32Array(length), float64: (_: string, length: number) => new Float64Array(length) };

/**
 * Backward pass of causal grouped-query attention with its O(n^2 d) work in the backend's float32 GEMM, the
 * counterpart of `causalAttentionGemm` (the same result as the scalar `causalAttentionBackward`, up to float32
 * rounding of the products). Per (sequence, key/value head) pair and chunk of query rows (the group's query heads
 * stacked): `S = Q K^T / sqrt(d)` (GEMM), the softmax `P` recomputed with the causal (and sliding-window) mask with
 * float64 row sums, `dP = dO V^T` (GEMM), `dS = P (dP - rowsum(P dP)) / sqrt(d)`, then `dQ = dS K`, `dK += dS^T Q`,
 * `dV += P^T dO` (three GEMMs). Keys and values' gradients, which sum over chunks and query heads, accumulate in
 * float64, chunk by chunk in order.
 *
 * The pairs of a run of equal-length sequences share one chunk layout, so each product of a chunk is one batched
 * GEMM over many pairs (`sgemmBatched`: on `ort` one MLAS call that spreads the pairs over its threads, each product
 * the one a single `sgemm` gives), and the softmax's exponentials and row sums run in WebAssembly SIMD
 * (`ReferenceKernels.softmaxRows`, bit for bit the JavaScript loop) where available. The result does not depend on
 * the batching: every element is computed as with one pair at a time.
 *
 * Paper: arXiv:1706.03762 (attention), arXiv:2305.13245 (grouped-query attention).
 *
 * @param q `[tokens, numHeads * headDim]` queries of the forward pass (after RoPE).
 * @param k `[tokens, numKvHeads * headDim]` keys (after RoPE).
 * @param v `[tokens, numKvHeads * headDim]` values.
 * @param dOut `[tokens, numHeads * headDim]` gradient of the attention output.
 * @param dq Receives the query gradient. @param dk Receives the key gradient. @param dv Receives the value gradient.
 * @param options `chunk`: query rows per block (default 128); `scoreBytes` (16 MiB); `scratch` (fresh arrays).
 * @example
 * ```ts
 * await causalAttentionBackwardGemm(q, k, v, [512], { numHeads: 8, numKvHeads: 4, headDim: 64 }, dOut, dq, dk, dv, backend);
 * ```
 */
export async function causalAttentionBackwardGemm(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  lengths: readonly number[],
  shape: AttentionShape,
  dOut: Float32Array,
  dq: Float32Array,
  dk: Float32Array,
  dv: Float32Array,
  backend: Backend,
  options: AttentionBackwardOptions = {},
): Promise<void> {
  const { numKvHeads } = shape;
  const { d, window, group, qRow, kvRow, scale, maxLength } = attentionLayout(shape, lengths);
  if (maxLength === 0) return;
  const chunk = Math.max(1, Math.min(options.chunk ?? 128, maxLength));
  const scoreBytes = options.scoreBytes ?? SCORE_BYTES;
  const buffer = options.scratch ?? fresh;
  // The scale goes into the score product when float32 holds it exactly (as a single sgemm folds it), else after.
  const folded = Math.fround(scale) === scale;
  await withReferenceKernels(async (kernels) => {
    let start = 0;
    for (let s = 0; s < lengths.length; ) {
      const n = lengths[s]!;
      let count = 1;
      while (s + count < lengths.length && lengths[s + count] === n) count++;
      if (n > 0) {
        const rowsPerChunk = Math.min(chunk, n);
        const m = group * rowsPerChunk;
        const pairs = count * numKvHeads;
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
        for (let p0 = 0; p0 < pairs; p0 += perBatch) {
          const batch = Math.min(perBatch, pairs - p0);
          dKeys.fill(0, 0, batch * n * d);
          dValues.fill(0, 0, batch * n * d);
          for (let r0 = 0; r0 < n; r0 += rowsPerChunk) {
            const { r1, rows, k0, width, mm } = attentionChunk(r0, rowsPerChunk, n, window, group);
            // Slot e holds pair p0 + e: its query heads stacked head by head, its keys and values rows k0 .. r1.
            for (let e = 0; e < batch; e++) {
              packQueryRows(layout, p0 + e, e, r0, rows, q, queries);
              packQueryRows(layout, p0 + e, e, r0, rows, dOut, dOuts);
              packKeyValueRows(layout, p0 + e, e, k0, r1, k0, width, k, v, keys, values);
            }
            const Qc = queries.subarray(0, batch * mm * d);
            const dOc = dOuts.subarray(0, batch * mm * d);
            const Kc = keys.subarray(0, batch * width * d);
            const Vc = values.subarray(0, batch * width * d);
            const P = p.subarray(0, batch * mm * width);
            const dP = dp.subarray(0, batch * mm * width);
            await sgemmBatched(backend, { batch, m: mm, n: width, k: d, a: Qc, b: Kc, c: P, transB: true, alpha: folded ? scale : 1 });
            if (!folded) for (let i = 0; i < P.length; i++) P[i] = P[i]! * scale;
            await sgemmBatched(backend, { batch, m: mm, n: width, k: d, a: dOc, b: Vc, c: dP, transB: true });
            // Every pair's rows have the same mask: the batch is `batch * group` heads of `rows` rows.
            if (kernels) kernels.softmaxRowsBackward({ group: batch * group, rows, width, r0, k0, window, scale });
            else {
              softmaxExponentials(P, sums, batch * group, rows, width, r0, k0, window);
              softmaxBackwardRows(P, dP, sums, batch * group, rows, width, r0, k0, window, scale);
            }
            // dQ = dS K; dK += dS^T Q; dV += P^T dO.
            const dQc = dQueries.subarray(0, batch * mm * d);
            await sgemmBatched(backend, { batch, m: mm, n: d, k: width, a: dP, b: Kc, c: dQc });
            for (let e = 0; e < batch; e++) unpackQueryRows(layout, p0 + e, e, r0, rows, dQc, dq);
            const w = part.subarray(0, batch * width * d);
            await sgemmBatched(backend, { batch, m: width, n: d, k: mm, a: dP, b: Qc, c: w, transA: true });
            addChunk(dKeys, w, batch, n, width, k0, d);
            await sgemmBatched(backend, { batch, m: width, n: d, k: mm, a: P, b: dOc, c: w, transA: true });
            addChunk(dValues, w, batch, n, width, k0, d);
          }
          for (let e = 0; e < batch; e++) {
            const { first, g } = attentionPairAt(layout, p0 + e);
            for (let i = 0; i < n; i++) {
              const o = (first + i) * kvRow + g * d;
              const from = (e * n + i) * d;
              for (let t = 0; t < d; t++) {
                dk[o + t] = dKeys[from + t]!;
                dv[o + t] = dValues[from + t]!;
              }
            }
          }
        }
      }
      start += count * n;
      s += count;
    }
  });
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
 * The live entries of each score row replaced by `fastExp(s - max)` (float32), the masked ones by 0, each row's
 * float64 sum (of the unrounded exponentials, left to right) in `sums`: what `ReferenceKernels.softmaxRows` computes,
 * for where WebAssembly SIMD is unavailable.
 */
function softmaxExponentials(P: Float32Array, sums: Float64Array, heads: number, rows: number, width: number, r0: number, k0: number, window: number): void {
  for (let a = 0; a < heads; a++) {
    for (let i = 0; i < rows; i++) {
      const o = (a * rows + i) * width;
      const first = firstVisible(r0 + i, k0, window);
      const last = r0 + i - k0;
      let max = -Infinity;
      for (let j = first; j <= last; j++) if (P[o + j]! > max) max = P[o + j]!;
      let sum = 0;
      for (let j = first; j <= last; j++) {
        const e = fastExp(P[o + j]! - max);
        P[o + j] = e;
        sum += e;
      }
      sums[a * rows + i] = sum;
      for (let j = 0; j < first; j++) P[o + j] = 0;
      for (let j = last + 1; j < width; j++) P[o + j] = 0;
    }
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
