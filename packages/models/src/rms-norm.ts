/**
 * Root-mean-square layer normalization, row by row: `y = x / sqrt(mean(x^2) + eps) * weight`
 * (Zhang & Sennrich, arXiv:1910.07467; the Llama form, with no mean subtraction and no bias).
 * The mean of squares is accumulated in float64.
 *
 * @param x `[rows, columns]` input.
 * @param weight `[columns]` gain.
 * @param eps Added to the mean of squares (Llama: `rms_norm_eps`).
 * @param out Output buffer of the same size as `x` (may be `x` itself). Default: a new array.
 * @example
 * ```ts
 * const y = rmsNorm(hidden, rows, 128, norm.weight, 1e-6);
 * ```
 */
export function rmsNorm(x: Float32Array, rows: number, columns: number, weight: Float32Array, eps: number, out: Float32Array = new Float32Array(rows * columns)): Float32Array {
  // Four rows at a time: each row's sum is still added left to right (same bits), but four independent chains of
  // float64 adds keep the core busy where one chain waits on each add's latency.
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const o0 = r * columns;
    const o1 = o0 + columns;
    const o2 = o1 + columns;
    const o3 = o2 + columns;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let j = 0; j < columns; j++) {
      const v0 = x[o0 + j]!;
      const v1 = x[o1 + j]!;
      const v2 = x[o2 + j]!;
      const v3 = x[o3 + j]!;
      s0 += v0 * v0;
      s1 += v1 * v1;
      s2 += v2 * v2;
      s3 += v3 * v3;
    }
    scaleRow(x, o0, columns, 1 / Math.sqrt(s0 / columns + eps), weight, out);
    scaleRow(x, o1, columns, 1 / Math.sqrt(s1 / columns + eps), weight, out);
    scaleRow(x, o2, columns, 1 / Math.sqrt(s2 / columns + eps), weight, out);
    scaleRow(x, o3, columns, 1 / Math.sqrt(s3 / columns + eps), weight, out);
  }
  for (; r < rows; r++) {
    const o = r * columns;
    let sum = 0;
    for (let j = 0; j < columns; j++) {
      const v = x[o + j]!;
      sum += v * v;
    }
    scaleRow(x, o, columns, 1 / Math.sqrt(sum / columns + eps), weight, out);
  }
  return out;
}

/** `out[o + j] = fround(x[o + j] * scale) * weight[j]` for one row. */
function scaleRow(x: Float32Array, o: number, columns: number, scale: number, weight: Float32Array, out: Float32Array): void {
  for (let j = 0; j < columns; j++) out[o + j] = Math.fround(x[o + j]! * scale) * weight[j]!;
}

/**
 * The residual add and the RMSNorm that reads its result, in one pass over the rows: `h[i] = h[i] + x[i]` (float32,
 * stored back into `h`), then `out = rmsNorm(h)` as {@link rmsNorm} computes it (the same float64 sums of the stored
 * values, the same rounding), so the same bits as the add loop followed by `rmsNorm`, with `h` read once instead of
 * three times.
 *
 * @param h `[rows, columns]`: the residual branch's output; receives the sum.
 * @param x `[rows, columns]`: the residual (not modified).
 * @param weight `[columns]` gain.
 * @param eps Added to the mean of squares.
 * @param out `[rows, columns]` buffer for the normed sum (not `h` or `x`).
 * @example
 * ```ts
 * addRmsNorm(attentionOut, hidden, rows, 512, norm.weight, 1e-5, normed); // attentionOut += hidden; normed = rmsNorm(attentionOut)
 * ```
 */
export function addRmsNorm(h: Float32Array, x: Float32Array, rows: number, columns: number, weight: Float32Array, eps: number, out: Float32Array): Float32Array {
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const o0 = r * columns;
    const o1 = o0 + columns;
    const o2 = o1 + columns;
    const o3 = o2 + columns;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let j = 0; j < columns; j++) {
      // Each sum is stored as float32 first (the add loop's `h[i] += x[i]`), then squared from the stored value.
      const v0 = (h[o0 + j] = h[o0 + j]! + x[o0 + j]!);
      const v1 = (h[o1 + j] = h[o1 + j]! + x[o1 + j]!);
      const v2 = (h[o2 + j] = h[o2 + j]! + x[o2 + j]!);
      const v3 = (h[o3 + j] = h[o3 + j]! + x[o3 + j]!);
      const f0 = Math.fround(v0);
      const f1 = Math.fround(v1);
      const f2 = Math.fround(v2);
      const f3 = Math.fround(v3);
      s0 += f0 * f0;
      s1 += f1 * f1;
      s2 += f2 * f2;
      s3 += f3 * f3;
    }
    scaleRow(h, o0, columns, 1 / Math.sqrt(s0 / columns + eps), weight, out);
    scaleRow(h, o1, columns, 1 / Math.sqrt(s1 / columns + eps), weight, out);
    scaleRow(h, o2, columns, 1 / Math.sqrt(s2 / columns + eps), weight, out);
    scaleRow(h, o3, columns, 1 / Math.sqrt(s3 / columns + eps), weight, out);
  }
  for (; r < rows; r++) {
    const o = r * columns;
    let sum = 0;
    for (let j = 0; j < columns; j++) {
      const v = Math.fround((h[o + j] = h[o + j]! + x[o + j]!));
      sum += v * v;
    }
    scaleRow(h, o, columns, 1 / Math.sqrt(sum / columns + eps), weight, out);
  }
  return out;
}
