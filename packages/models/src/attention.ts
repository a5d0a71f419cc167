/** Shapes of a grouped-query attention call. */
export interface AttentionShape {
  /** Query heads. */
  readonly numHeads: number;
  /** Key/value heads; `numHeads` must be a multiple (query head `h` reads key/value head `floor(h / (numHeads / numKvHeads))`). */
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Keys at distance `>= slidingWindow` behind the query are masked (Mistral). Default: no window. */
  readonly slidingWindow?: number | undefined;
  /** Score scale. Default `1 / sqrt(headDim)` (Gemma: `query_pre_attn_scalar^-0.5`). */
  readonly scale?: number | undefined;
  /** Soft-cap of the scaled scores, `c * tanh(s / c)` (Gemma 2's `attn_logit_softcapping`). Default: none. */
  readonly softcap?: number | undefined;
}

/** Sizes every attention kernel derives from its shape and the batch's sequence lengths. */
export interface AttentionLayout {
  /** Head dimension. */
  readonly d: number;
  /** Sliding window (`Infinity` without one). */
  readonly window: number;
  /** Query heads per key/value head. */
  readonly group: number;
  /** Floats per token of the queries (`numHeads * d`) and of the keys/values (`numKvHeads * d`). */
  readonly qRow: number;
  readonly kvRow: number;
  /** Score scale (`shape.scale`, default `1 / sqrt(d)`) and soft-cap (undefined: none). */
  readonly scale: number;
  readonly cap: number | undefined;
  /** The longest sequence. */
  readonly maxLength: number;
}

/**
 * Derives the sizes that the scalar, GEMM and backward attention kernels share.
 *
 * @example
 * ```ts
 * attentionLayout({ numHeads: 8, numKvHeads: 4, headDim: 16 }, [6, 4]).group; // 2
 * ```
 */
export function attentionLayout(shape: AttentionShape, lengths: readonly number[]): AttentionLayout {
  const { numHeads, numKvHeads, headDim: d } = shape;
  let maxLength = 0;
  for (const n of lengths) maxLength = Math.max(maxLength, n);
  return {
    d,
    window: shape.slidingWindow ?? Infinity,
    group: numHeads / numKvHeads,
    qRow: numHeads * d,
    kvRow: numKvHeads * d,
    scale: shape.scale ?? 1 / Math.sqrt(d),
    cap: shape.softcap,
    maxLength,
  };
}

/**
 * Causal grouped-query scaled dot-product attention over a batch of independent sequences stored one after
 * another: `out_i = sum_{j <= i} softmax_j(q_i . k_j / sqrt(d)) v_j` per head, each sequence attending only to itself
 * (arXiv:1706.03762; grouped-query attention, arXiv:2305.13245). Scores and softmax run in float64.
 *
 * @param q `[tokens, numHeads * headDim]` (RoPE already applied).
 * @param k `[tokens, numKvHeads * headDim]` (RoPE already applied).
 * @param v `[tokens, numKvHeads * headDim]`.
 * @param lengths Length of each sequence; they sum to `tokens`.
 * @param out `[tokens, numHeads * headDim]` output buffer.
 * @example
 * ```ts
 * causalAttention(q, k, v, [6, 4], { numHeads: 8, numKvHeads: 4, headDim: 16 }, out);
 * ```
 */
export function causalAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  lengths: readonly number[],
  shape: AttentionShape,
  out: Float32Array,
): Float32Array {
  const { numHeads, numKvHeads } = shape;
  const { d, window, group, qRow, kvRow, scale, cap, maxLength } = attentionLayout(shape, lengths);
  const scores = new Float64Array(maxLength);
  const acc = new Float64Array(d);
  let start = 0;
  for (const n of lengths) {
    for (let h = 0; h < numHeads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < n; i++) {
        const qo = (start + i) * qRow + h * d;
        const first = Math.max(0, i - window + 1);
        let max = -Infinity;
        for (let j = first; j <= i; j++) {
          const ko = (start + j) * kvRow + kvh * d;
          let s = 0;
          for (let t = 0; t < d; t++) s += q[qo + t]! * k[ko + t]!;
          s *= scale;
          if (cap !== undefined) s = cap * Math.tanh(s / cap);
          scores[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = first; j <= i; j++) {
          const e = Math.exp(scores[j]! - max);
          scores[j] = e;
          sum += e;
        }
        acc.fill(0);
        for (let j = first; j <= i; j++) {
          const p = scores[j]! / sum;
          const vo = (start + j) * kvRow + kvh * d;
          for (let t = 0; t < d; t++) acc[t] += p * v[vo + t]!;
        }
        for (let t = 0; t < d; t++) out[qo + t] = acc[t]!;
      }
    }
    start += n;
  }
  return out;
}
