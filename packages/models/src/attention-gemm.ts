import type { Backend } from '@bitsmith/linalg';
import { attentionLayout, type AttentionShape } from './attention.js';
import { fastExp } from './fast-exp.js';

/** Options of {@link causalAttentionGemm}. */
export interface AttentionGemmOptions {
  /** Query rows per score block: each block multiplies only the keys up to its last row. Default 128. */
  chunk?: number;
}

/**
 * Copies one key/value head of one sequence into contiguous `[n, d]` buffers: rows `start .. start + n` of `k` and `v`
 * (`kvRow` floats per token), columns `offset .. offset + d`. Element loops, no `subarray` allocations per row.
 */
export function packHeadKeysValues(k: Float32Array, v: Float32Array, start: number, n: number, offset: number, kvRow: number, d: number, keys: Float32Array, values: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const o = (start + i) * kvRow + offset;
    const p = i * d;
    for (let t = 0; t < d; t++) {
      keys[p + t] = k[o + t]!;
      values[p + t] = v[o + t]!;
    }
  }
}

/**
 * Causal grouped-query scaled dot-product attention with its O(n^2 d) work in the backend's float32 GEMM:
 * the same result as {@link causalAttention} (arXiv:1706.03762; grouped-query attention, arXiv:2305.13245), up to
 * float32 rounding of the dot products. Per sequence and key/value head, the query heads that share the key/value
 * head are stacked; query rows go in chunks of `chunk`, and each chunk's scores `Q K^T / sqrt(d)` are one `sgemm`
 * against only the keys at or before its last row (so about `1/2 + chunk / 2n` of the full square is computed), the
 * causal (and sliding-window) mask and the softmax run in float64 in JavaScript, and `P V` is a second `sgemm`.
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
  const { numKvHeads } = shape;
  const { d, window, group, qRow, kvRow, scale, cap, maxLength } = attentionLayout(shape, lengths);
  const chunk = Math.max(1, Math.min(options.chunk ?? 128, maxLength));
  const keys = new Float32Array(maxLength * d);
  const values = new Float32Array(maxLength * d);
  const queries = new Float32Array(group * chunk * d);
  const scores = new Float32Array(group * chunk * maxLength);
  const weighted = new Float32Array(group * chunk * d);
  const rowSums = new Float64Array(group * chunk);
  let start = 0;
  for (const n of lengths) {
    for (let g = 0; g < numKvHeads; g++) {
      packHeadKeysValues(k, v, start, n, g * d, kvRow, d, keys, values);
      for (let r0 = 0; r0 < n; r0 += chunk) {
        const r1 = Math.min(n, r0 + chunk);
        const rows = r1 - r0;
        const k0 = Math.max(0, r0 - window + 1);
        const width = r1 - k0;
        // Queries of the group's heads, stacked head by head: row a * rows + i is head g * group + a, position r0 + i.
        for (let a = 0; a < group; a++) {
          const h = g * group + a;
          for (let i = 0; i < rows; i++) {
            const o = (start + r0 + i) * qRow + h * d;
            const p = (a * rows + i) * d;
            for (let t = 0; t < d; t++) queries[p + t] = q[o + t]!;
          }
        }
        const m = group * rows;
        const s = scores.subarray(0, m * width);
        await backend.sgemm({ m, n: width, k: d, a: queries.subarray(0, m * d), b: keys.subarray(k0 * d, r1 * d), c: s, transB: true, alpha: scale });
        // Unnormalised softmax in place (masked entries 0); the row sums divide the rows of P V below.
        for (let a = 0; a < group; a++) {
          for (let i = 0; i < rows; i++) {
            const position = r0 + i;
            const o = (a * rows + i) * width;
            const first = Math.max(k0, position - window + 1) - k0;
            const last = position - k0; // inclusive
            if (cap !== undefined) for (let j = first; j <= last; j++) s[o + j] = cap * Math.tanh(s[o + j]! / cap);
            let max = -Infinity;
            for (let j = first; j <= last; j++) if (s[o + j]! > max) max = s[o + j]!;
            let sum = 0;
            for (let j = first; j <= last; j++) {
              const e = fastExp(s[o + j]! - max);
              s[o + j] = e;
              sum += e;
            }
            rowSums[a * rows + i] = sum;
            for (let j = 0; j < first; j++) s[o + j] = 0;
            for (let j = last + 1; j < width; j++) s[o + j] = 0;
          }
        }
        const y = weighted.subarray(0, m * d);
        await backend.sgemm({ m, n: d, k: width, a: s, b: values.subarray(k0 * d, r1 * d), c: y });
        for (let a = 0; a < group; a++) {
          const h = g * group + a;
          for (let i = 0; i < rows; i++) {
            const o = (start + r0 + i) * qRow + h * d;
            const yo = (a * rows + i) * d;
            const inv = 1 / rowSums[a * rows + i]!;
            for (let t = 0; t < d; t++) out[o + t] = y[yo + t]! * inv;
          }
        }
      }
    }
    start += n;
  }
  return out;
}
