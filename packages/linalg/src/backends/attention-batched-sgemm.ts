import type { AttentionArguments, BatchedGemmArguments } from '../backend.js';
import type { ReferenceKernels } from '../reference-kernels.js';
import { attentionChunk, attentionPairAt, equalLengthRuns, noPackedKeyValues, packKeyValueChunk, packQueryRows, type AttentionPairLayout } from './attention-pair-rows.js';
import { ATTENTION_CHUNK, softmaxRowsLoop } from './attention-sgemm.js';

export type { BatchedGemmArguments };

/** Default bytes of one batch of score blocks in {@link attentionWithBatchedSgemm}. */
export const BATCHED_ATTENTION_SCORE_BYTES = 32 * 1024 * 1024;

/**
 * Causal grouped-query attention with exactly the arithmetic of `attentionWithSgemm` (the same products, each
 * element the same float32 dot product, the same softmax rows and division), with its products batched: the
 * (sequence, key/value head) pairs of a run of equal-length sequences share one chunk layout, so chunk `c` of all
 * of them is one batched GEMM for the scores and one for `P V` instead of two small GEMMs per pair. A backend whose
 * batched GEMM runs each product as the single GEMM it would run alone (onnxruntime's MLAS does: it splits the batch
 * across threads and keeps each product's reduction order) then gives bit-identical results with a fraction of the
 * calls, and uses every thread where the single small products ran on one. Tested bit for bit against
 * `attentionWithSgemm` on the `ort` backend.
 *
 * @param batched The backend's batched GEMM (unserialised).
 * @param args Validated attention arguments.
 * @param kernels The softmax kernels (scores live in their memory), or `null` for the JavaScript loop (as a soft-cap
 *   always uses).
 * @param options `chunk`: query rows per score block (default 128, as `attentionWithSgemm`); `scoreBytes`: bytes of
 *   one batch of score blocks (default {@link BATCHED_ATTENTION_SCORE_BYTES}; at least one pair per batch);
 *   `scratch`: where the packed queries, keys, values and products go (a caller's buffers kept between calls, at
 *   least `length` floats; fresh memory costs a page fault per 4 KiB), default new arrays; `pairs`: compute only the
 *   (sequence, key/value head) pairs `from .. to - 1` of the whole call (pair `s * numKvHeads + g` is sequence `s`,
 *   key/value head `g`) and leave the other heads' output alone, default all of them: each pair's output is the
 *   same bits whichever pairs share its batches, so parts of one call can run on different threads.
 * @example
 * ```ts
 * await attentionWithBatchedSgemm(batchedGemm, { q, k, v, out, lengths: [512, 512], numHeads: 8, numKvHeads: 4, headDim: 64 }, kernels);
 * ```
 */
export async function attentionWithBatchedSgemm(
  batched: (args: BatchedGemmArguments) => Promise<void>,
  args: AttentionArguments,
  kernels: ReferenceKernels | null,
  options: { chunk?: number; scoreBytes?: number; scratch?: (name: string, length: number) => Float32Array; pairs?: readonly [number, number] } = {},
): Promise<void> {
  const { q, k, v, out, lengths, numHeads, numKvHeads, headDim: d } = args;
  const window = args.slidingWindow ?? Infinity;
  const group = numHeads / numKvHeads;
  const qRow = numHeads * d;
  const kvRow = numKvHeads * d;
  const scale = args.scale ?? 1 / Math.sqrt(d);
  const cap = args.softcap;
  const chunk = options.chunk ?? ATTENTION_CHUNK;
  const scoreBytes = options.scoreBytes ?? BATCHED_ATTENTION_SCORE_BYTES;
  const wasm = cap === undefined ? kernels : null;
  const [from, to] = options.pairs ?? [0, lengths.length * numKvHeads];
  for (const { start, n, lo, hi } of equalLengthRuns(lengths, numKvHeads, from, to)) {
    const rowsPerChunk = Math.max(1, Math.min(Math.floor(chunk), n));
    const m = group * rowsPerChunk;
    // Pairs (sequence, key/value head) per batch: as many as the score budget allows, at least one.
    const pairs = hi - lo;
    const perBatch = Math.max(1, Math.min(pairs, Math.floor(scoreBytes / (4 * m * n))));
    const buffer = options.scratch ?? ((_: string, length: number) => new Float32Array(length));
    const queries = buffer('attention.queries', perBatch * m * d);
    const keys = buffer('attention.keys', perBatch * n * d);
    const values = buffer('attention.values', perBatch * n * d);
    const weighted = buffer('attention.weighted', perBatch * m * d);
    const layout: AttentionPairLayout = { start, n, numKvHeads, group, d, qRow, kvRow };
    const { scores, sums } = wasm ? wasm.reserve(perBatch * m * n, perBatch * m) : { scores: new Float32Array(perBatch * m * n), sums: new Float64Array(perBatch * m) };
    for (let p0 = lo; p0 < hi; p0 += perBatch) {
      const batch = Math.min(perBatch, hi - p0);
      // Keys and values already packed for this batch of pairs (the previous chunk's rows).
      const packed = noPackedKeyValues();
      for (let r0 = 0; r0 < n; r0 += rowsPerChunk) {
        const { r1, rows, k0, width, mm } = attentionChunk(r0, rowsPerChunk, n, window, group);
        // Slot e holds pair p0 + e: its queries stacked head by head as in attentionWithSgemm, its keys and values
        // rows k0 .. r1 (AttentionPairLayout).
        for (let e = 0; e < batch; e++) packQueryRows(layout, p0 + e, e, r0, rows, q, queries);
        // Keys and values: rows k0 .. r1 - 1 of each pair at stride `width` (the previous chunk's rows moved, not gathered).
        packKeyValueChunk(layout, p0, batch, k0, r1, width, k, v, keys, values, packed);
        const block = scores.subarray(0, batch * mm * width);
        await batched({ batch, m: mm, n: width, k: d, a: queries.subarray(0, batch * mm * d), b: keys.subarray(0, batch * width * d), c: block, transB: true, alpha: scale });
        // Every pair's rows have the same mask (same r0, k0, window): the batch is `batch * group` heads of `rows` rows.
        if (wasm) wasm.softmaxRows({ group: batch * group, rows, width, r0, k0, window });
        else softmaxRowsLoop(block, sums, batch * group, rows, width, r0, k0, window, cap);
        const y = weighted.subarray(0, batch * mm * d);
        await batched({ batch, m: mm, n: d, k: width, a: block, b: values.subarray(0, batch * width * d), c: y });
        for (let e = 0; e < batch; e++) {
          const { first, g } = attentionPairAt(layout, p0 + e);
          for (let a = 0; a < group; a++) {
            const h = g * group + a;
            for (let i = 0; i < rows; i++) {
              const o = (first + r0 + i) * qRow + h * d;
              const row = (e * group + a) * rows + i;
              const yo = row * d;
              const inv = 1 / sums[row]!;
              for (let t = 0; t < d; t++) out[o + t] = y[yo + t]! * inv;
            }
          }
        }
      }
    }
  }
}
