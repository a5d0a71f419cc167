import { ATTENTION_CHUNK, attentionBackwardWithBatchedSgemm, sgemmBatched, type AttentionBackwardArguments, type AttentionBackwardScratch, type Backend } from '@bitsmith/linalg';
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
  scratch?: AttentionBackwardScratch;
}

/**
 * Backward pass of causal grouped-query attention with its O(n^2 d) work in the backend's float32 GEMM, the
 * counterpart of `causalAttentionGemm` (the same result as the scalar `causalAttentionBackward`, up to float32
 * rounding of the products). Per (sequence, key/value head) pair and chunk of query rows (the group's query heads
 * stacked): `S = Q K^T / sqrt(d)` (GEMM), the softmax `P` recomputed with the causal (and sliding-window) mask with
 * float64 row sums, `dP = dO V^T` (GEMM), `dS = P (dP - rowsum(P dP)) / sqrt(d)`, then `dQ = dS K`, `dK += dS^T Q`,
 * `dV += P^T dO` (three GEMMs). Keys and values' gradients, which sum over chunks and query heads, accumulate in
 * float64, chunk by chunk in order.
 *
 * This is `@bitsmith/linalg`'s `attentionBackwardWithBatchedSgemm` on the backend: the pairs of a run of equal-length
 * sequences share one chunk layout, so each product of a chunk is one batched GEMM over many pairs (`sgemmBatched`:
 * on `ort` one MLAS call that spreads the pairs over its threads, each product the one a single `sgemm` gives), and
 * the softmax and its backward run in WebAssembly SIMD (`ReferenceKernels.softmaxRowsBackward`, bit for bit the
 * JavaScript loop) where available. With the default chunk, a backend that has `attentionBackward` (`ort`, with its
 * helper threads) computes it instead, its pairs spread over the threads. The result does not depend on the batching
 * or the threads: every element is computed as with one pair at a time.
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
  const { numHeads, numKvHeads, headDim } = shape;
  const { maxLength, scale } = attentionLayout(shape, lengths);
  if (maxLength === 0) return;
  const args: AttentionBackwardArguments = { q, k, v, dOut, dq, dk, dv, lengths, numHeads, numKvHeads, headDim, scale, slidingWindow: shape.slidingWindow };
  // A backend that spreads the pairs over its threads computes the same bits (with the default chunk).
  const chunk = Math.max(1, Math.min(options.chunk ?? ATTENTION_CHUNK, maxLength));
  if (chunk === Math.min(ATTENTION_CHUNK, maxLength) && backend.attentionBackward && (await backend.attentionBackward(args))) return;
  await withReferenceKernels((kernels) =>
    attentionBackwardWithBatchedSgemm((g) => sgemmBatched(backend, g), args, kernels, {
      chunk,
      ...(options.scoreBytes !== undefined ? { scoreBytes: options.scoreBytes } : {}),
      ...(options.scratch ? { scratch: options.scratch } : {}),
    }),
  );
}
