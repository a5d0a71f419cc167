/**
 * Test oracles of GPTQ on the GPU, shared by the webgpu GPTQ tests in Node and the headless-Chromium page: the
 * min-max scale rule, the paper's Algorithm 1 unbatched in float64, and the layer objective.
 */

/** Asymmetric 4-bit min-max scales of a group, per row, from the group's current weights (width x rows). */
export function minMaxScales(current: Float32Array, width: number, rows: number): { scale: Float32Array; zero: Float32Array } {
  const scale = new Float32Array(rows);
  const zero = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let lo = 0;
    let hi = 0;
    for (let j = 0; j < width; j++) {
      const x = current[j * rows + r]!;
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    const s = (hi - lo) / 15;
    scale[r] = s;
    zero[r] = s > 0 ? Math.round(-lo / s) : 0;
  }
  return { scale, zero };
}

/**
 * GPTQ as the paper's Algorithm 1 states it (arXiv:2210.17323), unbatched and in float64: for each column, quantize,
 * e = (w - q) / U_ii, then every later column w_j -= U_ij e. Group scales from the current weights at each group start.
 */
export function referenceGptq(w: Float64Array, rows: number, n: number, u: Float64Array, groupSize: number): { codes: Uint32Array; q: Float64Array } {
  const wt = new Float64Array(n * rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) wt[c * rows + r] = w[r * n + c]!;
  const codes = new Uint32Array(n * rows);
  const q = new Float64Array(rows * n);
  let s: Float32Array = new Float32Array(rows);
  let z: Float32Array = new Float32Array(rows);
  for (let i = 0; i < n; i++) {
    if (i % groupSize === 0) ({ scale: s, zero: z } = minMaxScales(Float32Array.from(wt.subarray(i * rows, Math.min(n, i + groupSize) * rows)), Math.min(groupSize, n - i), rows));
    for (let r = 0; r < rows; r++) {
      const x = wt[i * rows + r]!;
      const v = s[r]! > 0 ? x / s[r]! + z[r]! : z[r]!;
      const code = Math.min(15, Math.max(0, Math.round(v)));
      const deq = (code - z[r]!) * s[r]!;
      codes[i * rows + r] = code;
      q[r * n + i] = deq;
      const e = (x - deq) / u[i * n + i]!;
      for (let j = i + 1; j < n; j++) wt[j * rows + r] -= u[i * n + j]! * e;
    }
  }
  return { codes, q };
}

export function objective(w: Float64Array, q: ArrayLike<number>, h: Float64Array, rows: number, n: number): number {
  let total = 0;
  const d = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < n; c++) d[c] = w[r * n + c]! - q[r * n + c]!;
    for (let a = 0; a < n; a++) {
      let t = 0;
      for (let b = 0; b < n; b++) t += h[a * n + b]! * d[b]!;
      total += d[a]! * t;
    }
  }
  return total;
}

