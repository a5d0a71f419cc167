import { attentionWithSgemm, type Backend } from '@bitsmith/linalg';
import type { AttentionShape } from './attention.js';

/** Options of {@link causalAttentionGemm}. */
export interface AttentionGemmOptions {
  /** Query rows per score block: each block multiplies only the keys up to its last row. Default 128. */
  chunk?: number;
}

/**
 * Causal grouped-query scaled dot-product attention with its O(n^2 d) work in the backend's float32 GEMM:
 * the same result as {@link causalAttention} (arXiv:1706.03762; grouped-query attention, arXiv:2305.13245), up to
 * float32 rounding of the dot products. Per sequence and key/value head, the query heads that share the key/value
 * head are stacked; query rows go in chunks of `chunk`, and each chunk's scores `Q K^T / sqrt(d)` are one `sgemm`
 * against only the keys at or before its last row (so about `1/2 + chunk / 2n` of the full square is computed), the
 * causal (and sliding-window) mask and the softmax run in float64 in JavaScript, and `P V` is a second `sgemm`
 * (`@bitsmith/linalg`'s `attentionWithSgemm` on `backend.sgemm`). The forward pass calls `backend.attention`, which
 * is this on the js and wasm backends and one onnxruntime graph per batch of equal-length sequences on ort.
 *
 * @param q `[tokens, numHeads * headDim]` (RoPE already applied).
 * @param k `[tokens, numKvHeads * headDim]` (RoPE already applied).
 * @param v `[tokens, numKvHeads * headDim]`.
 * @param lengths Length of each sequence; they sum to `tokens`; each sequence attends only to itself.
 * @param out `[tokens, numHeads * headDim]` output buffer.
 * @param backend The backend whose `sgemm` computes the scores and the weighted values.
 * @param options `chunk` (128).
 * @example
 * ```ts
 * await causalAttentionGemm(q, k, v, [512, 512], { numHeads: 8, numKvHeads: 4, headDim: 64 }, out, backend);
 * ```
 */
export async function causalAttentionGemm(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  lengths: readonly number[],
  shape: AttentionShape,
  out: Float32Array,
  backend: Backend,
  options: AttentionGemmOptions = {},
): Promise<Float32Array> {
  const { numHeads, numKvHeads, headDim } = shape;
  await attentionWithSgemm((g) => backend.sgemm(g), { q, k, v, out, lengths, numHeads, numKvHeads, headDim, scale: shape.scale, softcap: shape.softcap, slidingWindow: shape.slidingWindow }, options.chunk);
  return out;
}
