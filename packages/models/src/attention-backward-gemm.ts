import { fastExp, packHeadKeysValues, type Backend } from '@bitsmith/linalg';
import { attentionLayout, type AttentionShape } from './attention.js';
import type { AttentionGemmOptions } from './attention-gemm.js';

/**
 * Backward pass of causal grouped-query attention with its O(n^2 d) work in the backend's float32 GEMM, the
 * counterpart of `causalAttentionGemm` (the same result as the scalar `causalAttentionBackward`, up to float32
 * rounding of the products). Per sequence, key/value head and chunk of query rows (the group's query heads stacked):
 * `S = Q K^T / sqrt(d)` (GEMM), the softmax `P` recomputed with the causal (and sliding-window) mask in float64,
 * `dP = dO V^T` (GEMM), `dS = P (dP - rowsum(P dP)) / sqrt(d)`, then `dQ = dS K`, `dK += dS^T Q`, `dV += P^T dO`
 * (three GEMMs). Keys and values' gradients, which sum over chunks and query heads, accumulate in float64.
 *
 * Paper: arXiv:1706.03762 (attention), arXiv:2305.13245 (grouped-query attention).
 *
 * @param q `[tokens, numHeads * headDim]` queries of the forward pass (after RoPE).
 * @param k `[tokens, numKvHeads * headDim]` keys (after RoPE).
 * @param v `[tokens, numKvHeads * headDim]` values.
 * @param dOut `[tokens, numHeads * headDim]` gradient of the attention output.
 * @param dq Receives the query gradient. @param dk Receives the key gradient. @param dv Receives the value gradient.
 * @param options `chunk`: query rows per block (default 128).
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
  options: AttentionGemmOptions = {},
): Promise<void> {
  const { numKvHeads } = shape;
  const { d, window, group, qRow, kvRow, scale, maxLength } = attentionLayout(shape, lengths);
  const chunk = Math.max(1, Math.min(options.chunk ?? 128, maxLength));
  const keys = new Float32Array(maxLength * d);
  const values = new Float32Array(maxLength * d);
  const dKeys = new Float64Array(maxLength * d);
  const dValues = new Float64Array(maxLength * d);
  const queries = new Float32Array(group * chunk * d);
  const dOuts = new Float32Array(group * chunk * d);
  const p = new Float32Array(group * chunk * maxLength);
  const dp = new Float32Array(group * chunk * maxLength);
  const dQueries = new Float32Array(group * chunk * d);
  const part = new Float32Array(maxLength * d);
  let start = 0;
  for (const n of lengths) {
    for (let g = 0; g < numKvHeads; g++) {
      packHeadKeysValues(k, v, start, n, g * d, kvRow, d, keys, values);
      dKeys.fill(0, 0, n * d);
      dValues.fill(0, 0, n * d);
      for (let r0 = 0; r0 < n; r0 += chunk) {
        const r1 = Math.min(n, r0 + chunk);
        const rows = r1 - r0;
        const k0 = Math.max(0, r0 - window + 1);
        const width = r1 - k0;
        for (let a = 0; a < group; a++) {
          const h = g * group + a;
          for (let i = 0; i < rows; i++) {
            const o = (start + r0 + i) * qRow + h * d;
            queries.set(q.subarray(o, o + d), (a * rows + i) * d);
            dOuts.set(dOut.subarray(o, o + d), (a * rows + i) * d);
          }
        }
        const m = group * rows;
        const P = p.subarray(0, m * width);
        const dP = dp.subarray(0, m * width);
        const Kc = keys.subarray(k0 * d, r1 * d);
        const Vc = values.subarray(k0 * d, r1 * d);
        const Qc = queries.subarray(0, m * d);
        const dOc = dOuts.subarray(0, m * d);
        await backend.sgemm({ m, n: width, k: d, a: Qc, b: Kc, c: P, transB: true, alpha: scale });
        await backend.sgemm({ m, n: width, k: d, a: dOc, b: Vc, c: dP, transB: true });
        for (let a = 0; a < group; a++) {
          for (let i = 0; i < rows; i++) {
            const o = (a * rows + i) * width;
            const position = r0 + i;
            const first = Math.max(k0, position - window + 1) - k0;
            const last = position - k0;
            let max = -Infinity;
            for (let j = first; j <= last; j++) if (P[o + j]! > max) max = P[o + j]!;
            let sum = 0;
            for (let j = first; j <= last; j++) {
              const e = fastExp(P[o + j]! - max);
              P[o + j] = e;
              sum += e;
            }
            let dot = 0;
            for (let j = first; j <= last; j++) {
              const pj = P[o + j]! / sum;
              P[o + j] = pj;
              dot += pj * dP[o + j]!;
            }
            for (let j = first; j <= last; j++) dP[o + j] = P[o + j]! * (dP[o + j]! - dot) * scale;
            for (let j = 0; j < first; j++) P[o + j] = dP[o + j] = 0;
            for (let j = last + 1; j < width; j++) P[o + j] = dP[o + j] = 0;
          }
        }
        // dQ = dS K; dK += dS^T Q; dV += P^T dO.
        const dQc = dQueries.subarray(0, m * d);
        await backend.sgemm({ m, n: d, k: width, a: dP, b: Kc, c: dQc });
        for (let a = 0; a < group; a++) {
          const h = g * group + a;
          for (let i = 0; i < rows; i++) dq.set(dQc.subarray((a * rows + i) * d, (a * rows + i + 1) * d), (start + r0 + i) * qRow + h * d);
        }
        const w = part.subarray(0, width * d);
        await backend.sgemm({ m: width, n: d, k: m, a: dP, b: Qc, c: w, transA: true });
        for (let i = 0; i < width * d; i++) dKeys[k0 * d + i] += w[i]!;
        await backend.sgemm({ m: width, n: d, k: m, a: P, b: dOc, c: w, transA: true });
        for (let i = 0; i < width * d; i++) dValues[k0 * d + i] += w[i]!;
      }
      for (let i = 0; i < n; i++) {
        const o = (start + i) * kvRow + g * d;
        for (let t = 0; t < d; t++) {
          dk[o + t] = dKeys[i * d + t]!;
          dv[o + t] = dValues[i * d + t]!;
        }
      }
    }
    start += n;
  }
}
