// GPTQ's column loop for integer grids, in AssemblyScript with 128-bit SIMD (float64 lanes).
//
// One call quantizes `k` consecutive columns (in processing order) of the transposed weight, one after the other:
// each column is rounded to the grid, its scaled error `(w - q) / U_ii` is written out, and the error updates the
// later columns of the same call (`w_j -= U_ij * err_i`). The arithmetic is the JavaScript loop's, operation for
// operation in float64 with float32 stores and no fused multiply-add, so codes and errors are bit-identical to it.
// The caller applies the errors to the columns after the call with a GEMM (the lazy-batch update).
//
// Memory layout (byte addresses in this module's own memory, laid out by the caller):
//   w      float32 [k][rows]  the k columns, each contiguous (updated in place)
//   err    float32 [k][rows]  out: scaled errors
//   codes  uint8   [k][rows]  out: codes
//   u      float64 [k][k]     U's rows restricted to the k columns (row i, column j at i * k + j)
//   scale  float64 [rows]     scale of each row (0: the row's group is all zero)
//   zero   float64 [rows]     zero point of each row (0 for symmetric grids)
//   spare  float64 [rows]     code used where scale is not positive

/** Lowest free byte: the caller lays its arrays out from here. */
export const HEAP_BASE: i32 = 1024;

/**
 * Quantizes `k` columns of `rows` weights to the integer grid `clamp(round_half_even(w / s + z), lo, hi) + shift`
 * (decoded as `code - shift`), column by column, spreading each column's error over the later ones.
 */
export function quantizeColumns(
  w: usize,
  err: usize,
  codes: usize,
  u: usize,
  scale: usize,
  zero: usize,
  spare: usize,
  rows: i32,
  k: i32,
  lo: f64,
  hi: f64,
  shift: f64,
): void {
  const vlo = f64x2.splat(lo);
  const vhi = f64x2.splat(hi);
  const vshift = f64x2.splat(shift);
  const rows2 = rows & ~1;
  for (let i = 0; i < k; i++) {
    const d = load<f64>(u + ((<usize>(i * k + i)) << 3));
    const vd = f64x2.splat(d);
    const wi = w + ((<usize>(i * rows)) << 2);
    const ei = err + ((<usize>(i * rows)) << 2);
    const ci = codes + <usize>(i * rows);
    let r = 0;
    for (; r < rows2; r += 2) {
      const x = f64x2.promote_low_f32x4(v128.load64_zero(wi + (<usize>r << 2)));
      const s = v128.load(scale + (<usize>r << 3));
      const z = v128.load(zero + (<usize>r << 3));
      const code = f64x2.add(f64x2.min(f64x2.max(f64x2.nearest(f64x2.add(f64x2.div(x, s), z)), vlo), vhi), vshift);
      // Rows whose scale is not positive take their spare code (f64x2.gt is all-ones where s > 0).
      const c = v128.bitselect(code, v128.load(spare + (<usize>r << 3)), f64x2.gt(s, f64x2.splat(0)));
      const q = f64x2.mul(f64x2.sub(f64x2.sub(c, vshift), z), s);
      v128.store64_lane(ei + (<usize>r << 2), f32x4.demote_f64x2_zero(f64x2.div(f64x2.sub(x, q), vd)), 0);
      store<u8>(ci + <usize>r, <u8>(<i32>f64x2.extract_lane(c, 0)));
      store<u8>(ci + <usize>r + 1, <u8>(<i32>f64x2.extract_lane(c, 1)));
    }
    for (; r < rows; r++) {
      const x = <f64>load<f32>(wi + (<usize>r << 2));
      const s = load<f64>(scale + (<usize>r << 3));
      const z = load<f64>(zero + (<usize>r << 3));
      const c = s > 0 ? min(max(nearest(x / s + z), lo), hi) + shift : load<f64>(spare + (<usize>r << 3));
      const q = (c - shift - z) * s;
      store<f32>(ei + (<usize>r << 2), <f32>((x - q) / d));
      store<u8>(ci + <usize>r, <u8>(<i32>c));
    }
    for (let j = i + 1; j < k; j++) {
      const h = load<f64>(u + ((<usize>(i * k + j)) << 3));
      if (h == 0) continue;
      const vh = f64x2.splat(h);
      const wj = w + ((<usize>(j * rows)) << 2);
      let t = 0;
      for (; t < rows2; t += 2) {
        const p = wj + (<usize>t << 2);
        const x = f64x2.promote_low_f32x4(v128.load64_zero(p));
        const e = f64x2.promote_low_f32x4(v128.load64_zero(ei + (<usize>t << 2)));
        v128.store64_lane(p, f32x4.demote_f64x2_zero(f64x2.sub(x, f64x2.mul(vh, e))), 0);
      }
      for (; t < rows; t++) {
        const p = wj + (<usize>t << 2);
        store<f32>(p, <f32>(<f64>load<f32>(p) - h * <f64>load<f32>(ei + (<usize>t << 2))));
      }
    }
  }
}
