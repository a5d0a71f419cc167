import { fastExp, type ReferenceKernels } from '@bitsmith/linalg';
import { attentionLayout, type AttentionShape } from './attention.js';
import type { RopeTables } from './rope.js';

/** Float buffers the backward kernels accept: float32 in the block, float64 in the finite-difference tests. */
export type GradientArray = Float32Array | Float64Array;

/**
 * Backward pass of RMSNorm (`y = x / sqrt(mean(x^2) + eps) * weight`, row by row), the derivative of `rmsNorm`.
 * With `r = (mean(x^2) + eps)^(-1/2)` and `g = weight * dy`:
 * `dx_j = r g_j - x_j r^3 / n * sum_k g_k x_k` and `dweight_j += sum_rows dy_j x_j r`. Row sums and the weight
 * gradient accumulate in float64.
 *
 * Paper: arXiv:1910.07467.
 *
 * @param x `[rows, columns]` input of the forward pass.
 * @param dy `[rows, columns]` gradient of the output.
 * @param dx `[rows, columns]` receives the input gradient (written, or added to with `accumulate`); not `x` or `dy`.
 * @param dWeight `[columns]` float64 accumulator of the gain's gradient (added to), or undefined to skip it.
 * @param accumulate Add into `dx` instead of overwriting it (residual branches). Default false.
 * @example
 * ```ts
 * rmsNormBackward(x, rows, 512, norm.weight, 1e-5, dy, dx, dGain);
 * ```
 */
export function rmsNormBackward(
  x: GradientArray,
  rows: number,
  columns: number,
  weight: GradientArray,
  eps: number,
  dy: GradientArray,
  dx: GradientArray,
  dWeight: Float64Array | undefined,
  accumulate = false,
): void {
  // Two rows' sums at a time (four independent chains of float64 adds instead of two; each still left to right), then
  // each row's second loop without per-element branches.
  let r = 0;
  for (; r + 2 <= rows; r += 2) {
    const o0 = r * columns;
    const o1 = o0 + columns;
    let sumSq0 = 0;
    let dot0 = 0;
    let sumSq1 = 0;
    let dot1 = 0;
    for (let j = 0; j < columns; j++) {
      const w = weight[j]!;
      const v0 = x[o0 + j]!;
      const v1 = x[o1 + j]!;
      sumSq0 += v0 * v0;
      dot0 += w * dy[o0 + j]! * v0;
      sumSq1 += v1 * v1;
      dot1 += w * dy[o1 + j]! * v1;
    }
    rmsNormBackwardRow(x, o0, columns, weight, eps, dy, dx, dWeight, accumulate, sumSq0, dot0);
    rmsNormBackwardRow(x, o1, columns, weight, eps, dy, dx, dWeight, accumulate, sumSq1, dot1);
  }
  for (; r < rows; r++) {
    const o = r * columns;
    let sumSq = 0;
    let dot = 0;
    for (let j = 0; j < columns; j++) {
      const v = x[o + j]!;
      sumSq += v * v;
      dot += weight[j]! * dy[o + j]! * v;
    }
    rmsNormBackwardRow(x, o, columns, weight, eps, dy, dx, dWeight, accumulate, sumSq, dot);
  }
}

/** The second loop of {@link rmsNormBackward} for the row at `o`, given its sum of squares and `sum_j w_j dy_j x_j`. */
function rmsNormBackwardRow(x: GradientArray, o: number, columns: number, weight: GradientArray, eps: number, dy: GradientArray, dx: GradientArray, dWeight: Float64Array | undefined, accumulate: boolean, sumSq: number, dot: number): void {
  const inv = 1 / Math.sqrt(sumSq / columns + eps);
  const c = (dot * inv * inv * inv) / columns;
  if (accumulate) for (let j = 0; j < columns; j++) dx[o + j] = dx[o + j]! + (inv * weight[j]! * dy[o + j]! - x[o + j]! * c);
  else for (let j = 0; j < columns; j++) dx[o + j] = inv * weight[j]! * dy[o + j]! - x[o + j]! * c;
  if (dWeight) for (let j = 0; j < columns; j++) dWeight[j] += dy[o + j]! * x[o + j]! * inv;
}

/**
 * Backward pass of rotary position embeddings (`applyRope`'s rotate-half form), in place: RoPE rotates each pair
 * `(a, b)` of a head vector by the angle of its position, so the gradient is rotated back by the transpose,
 * `da = c da' + s db'`, `db = -s da' + c db'`.
 *
 * Paper: RoFormer, arXiv:2104.09864.
 *
 * @param grad `[tokens, heads * headDim]`: the gradient with respect to the rotated values, replaced by the gradient
 *   with respect to the values before rotation.
 * @example
 * ```ts
 * ropeBackward(dq, tables, tokens, numHeads, positions);
 * ```
 */
export function ropeBackward(grad: GradientArray, tables: RopeTables, tokens: number, heads: number, positions: ArrayLike<number>): void {
  const d = tables.headDim;
  const half = d / 2;
  const { cos, sin } = tables;
  const rowLength = heads * d;
  for (let t = 0; t < tokens; t++) {
    const base = positions[t]! * half;
    for (let h = 0; h < heads; h++) {
      const o = t * rowLength + h * d;
      for (let i = 0; i < half; i++) {
        const c = cos[base + i]!;
        const s = sin[base + i]!;
        const da = grad[o + i]!;
        const db = grad[o + half + i]!;
        grad[o + i] = da * c + db * s;
        grad[o + half + i] = db * c - da * s;
      }
    }
  }
}

/**
 * Backward pass of `causalAttention` (causal grouped-query scaled dot-product attention over a batch of sequences
 * stored one after another). The softmax is recomputed per query row in float64 rather than stored (memory stays
 * O(tokens * width)); with `P = softmax(S)`, `S = q k^T / sqrt(d)` and `O = P v`:
 * `dv_j += P_ij dO_i`, `dS_ij = P_ij (dO_i . v_j - dO_i . O_i)`, `dq_i = sum_j dS_ij k_j / sqrt(d)`,
 * `dk_j += dS_ij q_i / sqrt(d)`. Key and value gradients, which sum over queries and the query heads of a group,
 * accumulate in float64.
 *
 * Paper: arXiv:1706.03762 (attention), arXiv:2305.13245 (grouped-query attention).
 *
 * @param q `[tokens, numHeads * headDim]` queries of the forward pass (after RoPE).
 * @param k `[tokens, numKvHeads * headDim]` keys (after RoPE).
 * @param v `[tokens, numKvHeads * headDim]` values.
 * @param dOut `[tokens, numHeads * headDim]` gradient of the attention output.
 * @param dq `[tokens, numHeads * headDim]` receives the query gradient.
 * @param dk `[tokens, numKvHeads * headDim]` receives the key gradient.
 * @param dv `[tokens, numKvHeads * headDim]` receives the value gradient.
 * @example
 * ```ts
 * causalAttentionBackward(q, k, v, [512], { numHeads: 8, numKvHeads: 4, headDim: 64 }, dOut, dq, dk, dv);
 * ```
 */
export function causalAttentionBackward(
  q: GradientArray,
  k: GradientArray,
  v: GradientArray,
  lengths: readonly number[],
  shape: AttentionShape,
  dOut: GradientArray,
  dq: GradientArray,
  dk: GradientArray,
  dv: GradientArray,
): void {
  const { numHeads, numKvHeads } = shape;
  const { d, window, group, qRow, kvRow, scale, maxLength } = attentionLayout(shape, lengths);
  const p = new Float64Array(maxLength);
  const dpRow = new Float64Array(maxLength);
  const dqAcc = new Float64Array(d);
  const dkAcc = new Float64Array(maxLength * kvRow);
  const dvAcc = new Float64Array(maxLength * kvRow);
  let start = 0;
  for (const n of lengths) {
    dkAcc.fill(0, 0, n * kvRow);
    dvAcc.fill(0, 0, n * kvRow);
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
          p[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = first; j <= i; j++) {
          const e = Math.exp(p[j]! - max);
          p[j] = e;
          sum += e;
        }
        // dO_i . O_i = sum_j P_ij (dO_i . v_j): computed from the dot products below in a first pass.
        let dOdotO = 0;
        for (let j = first; j <= i; j++) {
          p[j] = p[j]! / sum;
          const vo = (start + j) * kvRow + kvh * d;
          let dp = 0;
          for (let t = 0; t < d; t++) dp += dOut[qo + t]! * v[vo + t]!;
          dpRow[j] = dp;
          dOdotO += p[j]! * dp;
        }
        dqAcc.fill(0);
        for (let j = first; j <= i; j++) {
          const ko = (start + j) * kvRow + kvh * d;
          const lo = j * kvRow + kvh * d;
          const pij = p[j]!;
          const ds = pij * (dpRow[j]! - dOdotO) * scale;
          for (let t = 0; t < d; t++) {
            dvAcc[lo + t] += pij * dOut[qo + t]!;
            dqAcc[t] += ds * k[ko + t]!;
            dkAcc[lo + t] += ds * q[qo + t]!;
          }
        }
        for (let t = 0; t < d; t++) dq[qo + t] = dqAcc[t]!;
      }
    }
    for (let i = 0; i < n * kvRow; i++) {
      dk[start * kvRow + i] = dkAcc[i]!;
      dv[start * kvRow + i] = dvAcc[i]!;
    }
    start += n;
  }
}

/**
 * Backward pass of the SwiGLU product `h = silu(gate) * up` with `silu(x) = x sigmoid(x)`:
 * `dgate = dh * up * sigmoid(gate) * (1 + gate (1 - sigmoid(gate)))`, `dup = dh * silu(gate)`.
 *
 * Paper: arXiv:2002.05202.
 *
 * @param gate Pre-activation gate values of the forward pass.
 * @param up Up-projection values of the forward pass.
 * @param dh Gradient of the product.
 * @param dGate Receives the gate gradient (may alias `gate` when it is no longer needed).
 * @param dUp Receives the up gradient (may alias `up` when it is no longer needed).
 * @param kernels `@bitsmith/linalg`'s reference kernels: with them and float32 arrays the loop runs in WebAssembly SIMD,
 *   bit for bit the same values (`ReferenceKernels.swigluBackward`).
 * @example
 * ```ts
 * swigluBackward(gate, up, dAct, gate, up); // in place
 * ```
 */
export function swigluBackward(gate: GradientArray, up: GradientArray, dh: GradientArray, dGate: GradientArray, dUp: GradientArray, kernels?: ReferenceKernels | null): void {
  if (kernels && gate instanceof Float32Array && up instanceof Float32Array && dh instanceof Float32Array && dGate instanceof Float32Array && dUp instanceof Float32Array) {
    kernels.swigluBackward(gate, up, dh, dGate, dUp, gate.length);
    return;
  }
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    const u = up[i]!;
    const sig = 1 / (1 + fastExp(-g));
    const d = dh[i]!;
    dGate[i] = d * u * sig * (1 + g * (1 - sig));
    dUp[i] = d * g * sig;
  }
}
