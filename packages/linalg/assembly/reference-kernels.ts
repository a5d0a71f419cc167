// The JavaScript reference kernels of the decoder forward (attention's softmax rows, the SiLU gate, RMSNorm, RoPE) and
// of the block's backward (SwiGLU, RMSNorm, RoPE, the squared-error seed), in AssemblyScript with 128-bit SIMD
// (float64 lanes), bit for bit: every operation is the JavaScript loop's, in float64 with float32 loads and stores, no
// fused multiply-add, the row sums added in the JavaScript loop's order.
//
// `fastExp` (src/fast-exp.ts) is `x = (64 k + j) ln2 / 64 + r`, `exp(x) = 2^k 2^(j/64) p(r)` with JavaScript's
// `Math.round` (ties toward +infinity), emulated here as `nearest` (ties to even) plus one where `v - nearest(v)` is
// exactly one half. Its two tables are written into this module's memory by the caller (the JavaScript values).
//
// Memory layout (byte addresses in this module's own memory):
//   FRACTIONS  float64 [64]    2^(j/64)          at TABLES
//   POWERS     float64 [2200]  2^(i - 1100)      after FRACTIONS
//   from HEAP_BASE: the caller's arrays.

/** Byte address of the fastExp tables (FRACTIONS then POWERS). */
export const TABLES: i32 = 1024;
/** Lowest free byte after the tables: the caller lays its arrays out from here. */
export const HEAP_BASE: i32 = 1024 + 64 * 8 + 2200 * 8 + 64;

const FRACTIONS: usize = 1024;
const POWERS: usize = 1024 + 64 * 8;

// @ts-ignore: decorator
@inline
function expLanes(x: v128, c64: v128, cl: v128): v128 {
  // Both lanes in [-708, 709] (never NaN): 2^((n - j) / 64) * 2^(j / 64) is a normal number, so the product of the two
  // table entries is exact and equals 2^(j / 64) with (n - j) / 64 added to its exponent bits: one gather, no clamp.
  const inside = v128.and(f64x2.ge(x, f64x2.splat(-708)), f64x2.le(x, f64x2.splat(709)));
  if (i64x2.all_true(inside)) return expNormal(x, c64, cl);
  return expAny(x, c64, cl);
}

// @ts-ignore: decorator
@inline
function expNormal(x: v128, c64: v128, cl: v128): v128 {
  const v = f64x2.mul(x, c64);
  const t = f64x2.add(v, f64x2.splat(6755399441055744.0));
  const near = f64x2.sub(t, f64x2.splat(6755399441055744.0));
  const tie = f64x2.eq(f64x2.sub(v, near), f64x2.splat(0.5));
  const n = f64x2.add(near, v128.and(tie, f64x2.splat(1)));
  const r = f64x2.sub(x, f64x2.mul(n, cl));
  const ni = i64x2.sub(i64x2.sub(t, i64x2.splat(0x4338000000000000)), tie);
  const j0 = <usize>(i64x2.extract_lane(ni, 0) & 63);
  const j1 = <usize>(i64x2.extract_lane(ni, 1) & 63);
  // The two table entries loaded straight into their lanes.
  const f = v128.load64_lane(FRACTIONS + (j1 << 3), v128.load64_zero(FRACTIONS + (j0 << 3)), 1);
  const pf = i64x2.add(f, i64x2.shl(i64x2.shr_s(ni, 6), 52));
  const one = f64x2.splat(1);
  const poly = f64x2.add(
    one,
    f64x2.mul(r, f64x2.add(one, f64x2.mul(r, f64x2.add(f64x2.splat(0.5), f64x2.mul(r, f64x2.add(f64x2.splat(1.0 / 6.0), f64x2.mul(r, f64x2.splat(1.0 / 24.0)))))))),
  );
  return f64x2.mul(pf, poly);
}

// @ts-ignore: decorator
@inline
function expAny(x: v128, c64: v128, cl: v128): v128 {
  // The arithmetic on x clamped into the tables' range; the lanes outside it are replaced at the end (as fastExp's
  // early returns), and inside it the clamp is the identity.
  const clamped = f64x2.min(f64x2.max(x, f64x2.splat(-745)), f64x2.splat(709.78));
  const xc = v128.and(clamped, f64x2.eq(clamped, clamped)); // NaN lanes as 0, so that their table indices stay in range
  const v = f64x2.mul(xc, c64);
  // nearest-even(v) by adding 1.5 * 2^52 (|v| < 2^17 here): the sum's low bits hold it as an integer.
  const t = f64x2.add(v, f64x2.splat(6755399441055744.0));
  const near = f64x2.sub(t, f64x2.splat(6755399441055744.0));
  const tie = f64x2.eq(f64x2.sub(v, near), f64x2.splat(0.5)); // Math.round: an exact half goes up
  const n = f64x2.add(near, v128.and(tie, f64x2.splat(1)));
  const r = f64x2.sub(xc, f64x2.mul(n, cl));
  const ni = i64x2.sub(i64x2.sub(t, i64x2.splat(0x4338000000000000)), tie);
  const j = v128.and(ni, i64x2.splat(63));
  const k = i64x2.add(i64x2.shr_s(ni, 6), i64x2.splat(1100));
  const j0 = <usize>i64x2.extract_lane(j, 0);
  const j1 = <usize>i64x2.extract_lane(j, 1);
  const k0 = <usize>i64x2.extract_lane(k, 0);
  const k1 = <usize>i64x2.extract_lane(k, 1);
  let p = f64x2.splat(load<f64>(POWERS + (k0 << 3)));
  p = f64x2.replace_lane(p, 1, load<f64>(POWERS + (k1 << 3)));
  let f = f64x2.splat(load<f64>(FRACTIONS + (j0 << 3)));
  f = f64x2.replace_lane(f, 1, load<f64>(FRACTIONS + (j1 << 3)));
  const one = f64x2.splat(1);
  const poly = f64x2.add(
    one,
    f64x2.mul(r, f64x2.add(one, f64x2.mul(r, f64x2.add(f64x2.splat(0.5), f64x2.mul(r, f64x2.add(f64x2.splat(1.0 / 6.0), f64x2.mul(r, f64x2.splat(1.0 / 24.0)))))))),
  );
  let e = f64x2.mul(f64x2.mul(p, f), poly);
  // x > 709.78: Infinity. !(x > -745): 0, or x itself where x is NaN (x + 0 keeps NaN and turns -inf.. into NaN-free 0 below).
  e = v128.bitselect(f64x2.splat(Infinity), e, f64x2.gt(x, f64x2.splat(709.78)));
  const low = v128.not(f64x2.gt(x, f64x2.splat(-745)));
  const isNaN = f64x2.ne(x, x);
  e = v128.bitselect(v128.bitselect(x, f64x2.splat(0), isNaN), e, low);
  return e;
}

// @ts-ignore: decorator
@inline
function expScalar(x: f64, c64: f64, cl: f64): f64 {
  if (!(x > -745)) return x == x ? 0 : x;
  if (x > 709.78) return Infinity;
  const v = x * c64;
  let n = nearest(v);
  if (v - n == 0.5) n += 1;
  const r = x - n * cl;
  const ni = <i32>n;
  const j = ni & 63;
  const k = ((ni - j) >> 6) + 1100;
  return load<f64>(POWERS + (<usize>k << 3)) * load<f64>(FRACTIONS + (<usize>j << 3)) * (1 + r * (1 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0)))));
}

/**
 * The softmax rows of one score block of `attentionWithSgemm`, in place: `rows * group` rows of `width` float32
 * scores at `s` (row `a * rows + i` is query position `r0 + i` of the group's head `a`; its first column is key
 * `k0`). Each row's entries from `first = max(k0, position - window + 1) - k0` to `last = position - k0` become
 * `fastExp(s - max)` (float32), the others 0, and the row's float64 sum of the unrounded exponentials (added left to
 * right) goes to `sums` (float64, one per row).
 */
export function softmaxRows(s: usize, sums: usize, group: i32, rows: i32, width: i32, r0: i32, k0: i32, window: i32, c64: f64, cl: f64): void {
  for (let a = 0; a < group; a++) {
    for (let i = 0; i < rows; i++) {
      const row = a * rows + i;
      const o = s + ((<usize>row * <usize>width) << 2);
      const position = r0 + i;
      const lowest = position - window + 1;
      const first = (lowest > k0 ? lowest : k0) - k0;
      softmaxRow(o, sums + ((<usize>row) << 3), first, position - k0, width, c64, cl);
    }
  }
}

/**
 * One row of {@link softmaxRows}: entries `first..last` of the `width` float32 scores at `o` become
 * `fastExp(s - max)`, the others 0, and the float64 sum of the unrounded exponentials (left to right) goes to `sum`.
 */
// @ts-ignore: decorator
@inline
function softmaxRow(o: usize, sum: usize, first: i32, last: i32, width: i32, c64: f64, cl: f64): void {
  const vc64 = f64x2.splat(c64);
  const vcl = f64x2.splat(cl);
  // max by `x > max` (NaN ignored), as the JavaScript loop: f32x4.pmax is that per lane. Lanes may end on +0
  // where the loop keeps -0; s - max, and so the row, is the same either way.
  let vm = f32x4.splat(-Infinity);
  let j = first;
  for (; j + 3 <= last; j += 4) vm = f32x4.pmax(vm, v128.load(o + (<usize>j << 2)));
  let max: f32 = f32x4.extract_lane(vm, 0);
  const m1 = f32x4.extract_lane(vm, 1);
  if (m1 > max) max = m1;
  const m2 = f32x4.extract_lane(vm, 2);
  if (m2 > max) max = m2;
  const m3 = f32x4.extract_lane(vm, 3);
  if (m3 > max) max = m3;
  for (; j <= last; j++) {
    const x = load<f32>(o + (<usize>j << 2));
    if (x > max) max = x;
  }
  const vmax = f64x2.splat(<f64>max);
  let total: f64 = 0;
  j = first;
  for (; j + 1 <= last; j += 2) {
    const p = o + (<usize>j << 2);
    const x = f64x2.sub(f64x2.promote_low_f32x4(v128.load64_zero(p)), vmax);
    const e = expLanes(x, vc64, vcl);
    total += f64x2.extract_lane(e, 0);
    total += f64x2.extract_lane(e, 1);
    v128.store64_lane(p, f32x4.demote_f64x2_zero(e), 0);
  }
  if (j <= last) {
    const p = o + (<usize>j << 2);
    const e = expScalar(<f64>load<f32>(p) - <f64>max, c64, cl);
    total += e;
    store<f32>(p, <f32>e);
  }
  store<f64>(sum, total);
  if (first > 0) memory.fill(o, 0, <usize>first << 2);
  if (last + 1 < width) memory.fill(o + ((<usize>(last + 1)) << 2), 0, (<usize>(width - last - 1)) << 2);
}

/**
 * The softmax rows of one score block of the attention backward (`causalAttentionBackwardGemm` of
 * `@bitsmith/models`), row by row as {@link softmaxRows} computes them, followed by the softmax's backward on the
 * same row while it is in cache, bit for bit the JavaScript loop `softmaxBackwardRows`: `p_j = e_j / sum` (float64;
 * stored to `s` as float32), `dot = sum_j p_j dP_j` (the unrounded `p_j`, left to right), then
 * `dP_j = (p_j as stored) (dP_j - dot) scale`; masked entries of `dP` become 0. `dp` has the layout of `s`.
 */
export function softmaxRowsBackward(s: usize, dp: usize, sums: usize, group: i32, rows: i32, width: i32, r0: i32, k0: i32, window: i32, scale: f64, c64: f64, cl: f64): void {
  const vscale = f64x2.splat(scale);
  for (let a = 0; a < group; a++) {
    for (let i = 0; i < rows; i++) {
      const row = a * rows + i;
      const offset = (<usize>row * <usize>width) << 2;
      const o = s + offset;
      const d = dp + offset;
      const position = r0 + i;
      const lowest = position - window + 1;
      const first = (lowest > k0 ? lowest : k0) - k0;
      const last = position - k0;
      const sumAt = sums + ((<usize>row) << 3);
      softmaxRow(o, sumAt, first, last, width, c64, cl);
      const vsum = f64x2.splat(load<f64>(sumAt));
      let dot: f64 = 0;
      let j = first;
      for (; j + 1 <= last; j += 2) {
        const at = <usize>j << 2;
        const pj = f64x2.div(f64x2.promote_low_f32x4(v128.load64_zero(o + at)), vsum);
        v128.store64_lane(o + at, f32x4.demote_f64x2_zero(pj), 0);
        const t = f64x2.mul(pj, f64x2.promote_low_f32x4(v128.load64_zero(d + at)));
        dot += f64x2.extract_lane(t, 0);
        dot += f64x2.extract_lane(t, 1);
      }
      if (j <= last) {
        const at = <usize>j << 2;
        const pj = <f64>load<f32>(o + at) / load<f64>(sumAt);
        store<f32>(o + at, <f32>pj);
        dot += pj * <f64>load<f32>(d + at);
      }
      const vdot = f64x2.splat(dot);
      j = first;
      for (; j + 1 <= last; j += 2) {
        const at = <usize>j << 2;
        const p = f64x2.promote_low_f32x4(v128.load64_zero(o + at));
        const g = f64x2.promote_low_f32x4(v128.load64_zero(d + at));
        v128.store64_lane(d + at, f32x4.demote_f64x2_zero(f64x2.mul(f64x2.mul(p, f64x2.sub(g, vdot)), vscale)), 0);
      }
      if (j <= last) {
        const at = <usize>j << 2;
        store<f32>(d + at, <f32>(<f64>load<f32>(o + at) * (<f64>load<f32>(d + at) - dot) * scale));
      }
      if (first > 0) memory.fill(d, 0, <usize>first << 2);
      if (last + 1 < width) memory.fill(d + ((<usize>(last + 1)) << 2), 0, (<usize>(width - last - 1)) << 2);
    }
  }
}

/**
 * The SiLU gate's loop: `out[i] = (x / (1 + fastExp(-x))) * up[i]` with `x = gate[i]`, float64 inside each element,
 * with `keep` each `fastExp(-x)` also stored (float64) at `e` (inlined with `keep` constant: two loops, no branch).
 */
// @ts-ignore: decorator
@inline
function siluLoop(gate: usize, up: usize, out: usize, e: usize, n: i32, c64: f64, cl: f64, keep: bool): void {
  const vc64 = f64x2.splat(c64);
  const vcl = f64x2.splat(cl);
  const one = f64x2.splat(1);
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const x = f64x2.promote_low_f32x4(v128.load64_zero(gate + (<usize>i << 2)));
    const u = f64x2.promote_low_f32x4(v128.load64_zero(up + (<usize>i << 2)));
    const ex = expLanes(f64x2.neg(x), vc64, vcl);
    if (keep) v128.store(e + (<usize>i << 3), ex);
    const y = f64x2.mul(f64x2.div(x, f64x2.add(one, ex)), u);
    v128.store64_lane(out + (<usize>i << 2), f32x4.demote_f64x2_zero(y), 0);
  }
  if (i < n) {
    const x = <f64>load<f32>(gate + (<usize>i << 2));
    const ex = expScalar(-x, c64, cl);
    if (keep) store<f64>(e + (<usize>i << 3), ex);
    store<f32>(out + (<usize>i << 2), <f32>((x / (1 + ex)) * <f64>load<f32>(up + (<usize>i << 2))));
  }
}

/** `out[i] = (x / (1 + fastExp(-x))) * up[i]` with `x = gate[i]`, float64 inside each element (SwiGLU's gate), `n` elements. */
export function siluGate(gate: usize, up: usize, out: usize, n: i32, c64: f64, cl: f64): void {
  siluLoop(gate, up, out, 0, n, c64, cl, false);
}

/** SwiGLU's backward for the two elements at byte `at` given their sigmoids: `dGate = d u sig (1 + g (1 - sig))`, `dUp = d g sig`. */
// @ts-ignore: decorator
@inline
function swigluPair(up: usize, dh: usize, dGate: usize, dUp: usize, at: usize, g: v128, sig: v128): void {
  const one = f64x2.splat(1);
  const u = f64x2.promote_low_f32x4(v128.load64_zero(up + at));
  const d = f64x2.promote_low_f32x4(v128.load64_zero(dh + at));
  const dg = f64x2.mul(f64x2.mul(f64x2.mul(d, u), sig), f64x2.add(one, f64x2.mul(g, f64x2.sub(one, sig))));
  const du = f64x2.mul(f64x2.mul(d, g), sig);
  v128.store64_lane(dGate + at, f32x4.demote_f64x2_zero(dg), 0);
  v128.store64_lane(dUp + at, f32x4.demote_f64x2_zero(du), 0);
}

/** {@link swigluPair} for the one element at byte `at`. */
// @ts-ignore: decorator
@inline
function swigluOne(up: usize, dh: usize, dGate: usize, dUp: usize, at: usize, g: f64, sig: f64): void {
  const u = <f64>load<f32>(up + at);
  const d = <f64>load<f32>(dh + at);
  store<f32>(dGate + at, <f32>(d * u * sig * (1 + g * (1 - sig))));
  store<f32>(dUp + at, <f32>(d * g * sig));
}

/**
 * SwiGLU's backward, `sig = 1 / (1 + fastExp(-g))`, `dGate[i] = d * u * sig * (1 + g * (1 - sig))` and
 * `dUp[i] = d * g * sig` with `g = gate[i]`, `u = up[i]`, `d = dh[i]`, float64 inside each element, multiplied left to
 * right as the JavaScript loop (`swigluBackward` of `@bitsmith/models`), `n` float32 elements. Every input of an
 * element is read before its outputs are written, so `dGate` may be `gate` and `dUp` may be `up`.
 */
export function swigluBackward(gate: usize, up: usize, dh: usize, dGate: usize, dUp: usize, n: i32, c64: f64, cl: f64): void {
  const vc64 = f64x2.splat(c64);
  const vcl = f64x2.splat(cl);
  const one = f64x2.splat(1);
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const at = <usize>i << 2;
    const g = f64x2.promote_low_f32x4(v128.load64_zero(gate + at));
    swigluPair(up, dh, dGate, dUp, at, g, f64x2.div(one, f64x2.add(one, expLanes(f64x2.neg(g), vc64, vcl))));
  }
  if (i < n) {
    const at = <usize>i << 2;
    const g = <f64>load<f32>(gate + at);
    swigluOne(up, dh, dGate, dUp, at, g, 1 / (1 + expScalar(-g, c64, cl)));
  }
}

/** `out[i] = fastExp(x[i])` over `n` float64 values (both float64 arrays). */
export function expValues(x: usize, out: usize, n: i32, c64: f64, cl: f64): void {
  const vc64 = f64x2.splat(c64);
  const vcl = f64x2.splat(cl);
  let i = 0;
  for (; i + 1 < n; i += 2) v128.store(out + (<usize>i << 3), expLanes(v128.load(x + (<usize>i << 3)), vc64, vcl));
  if (i < n) store<f64>(out + (<usize>i << 3), expScalar(load<f64>(x + (<usize>i << 3)), c64, cl));
}

// ---- Row kernels of the decoder block (RMSNorm, its backward, the residual add, RoPE), bit for bit the JavaScript
// loops of `@bitsmith/models` (rmsNorm, addRmsNorm, rmsNormBackward, applyRope, ropeBackward). A row's sums run in
// one float64 lane left to right, as the loop adds them; two rows share a vector (lanes 0 and 1), never one row's terms.

/** `(a[j], b[j])` as float64 lanes: column `j` of two rows. */
// @ts-ignore: decorator
@inline
function pairAt(a: usize, b: usize): v128 {
  return f64x2.replace_lane(f64x2.splat(<f64>load<f32>(a)), 1, <f64>load<f32>(b));
}

/** Sums of squares of rows `r` and `r + 1` (float64 lanes, left to right). */
// @ts-ignore: decorator
@inline
function squareSums(x0: usize, x1: usize, columns: i32): v128 {
  let acc = f64x2.splat(0);
  for (let j = 0; j < columns; j++) {
    const v = pairAt(x0 + (<usize>j << 2), x1 + (<usize>j << 2));
    acc = f64x2.add(acc, f64x2.mul(v, v));
  }
  return acc;
}

/** `out[j] = f32(f64(x[j]) * inv) * w[j]` over one row (four columns at a time; a scalar tail). */
// @ts-ignore: decorator
@inline
function scaleRow(x: usize, w: usize, out: usize, columns: i32, inv: f64): void {
  const s = f64x2.splat(inv);
  let j = 0;
  for (; j + 3 < columns; j += 4) {
    const at = <usize>j << 2;
    const v = v128.load(x + at);
    const lo = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(v), s));
    const hi = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), s));
    v128.store(out + at, f32x4.mul(i32x4.shuffle(lo, hi, 0, 1, 4, 5), v128.load(w + at)));
  }
  for (; j < columns; j++) {
    const at = <usize>j << 2;
    store<f32>(out + at, <f32>(<f64>load<f32>(x + at) * inv) * load<f32>(w + at));
  }
}

/** `1 / sqrt(sum / columns + eps)` of one lane. */
// @ts-ignore: decorator
@inline
function inverseRms(sum: f64, columns: i32, eps: f64): f64 {
  return 1 / Math.sqrt(sum / <f64>columns + eps);
}

/** RMSNorm of `rows` rows of `columns` float32: `out = f32(x * (mean(x^2) + eps)^(-1/2)) * w` (`out` may be `x`). */
export function rmsNormRows(x: usize, w: usize, out: usize, rows: i32, columns: i32, eps: f64): void {
  const stride = <usize>columns << 2;
  let r = 0;
  for (; r + 1 < rows; r += 2) {
    const x0 = x + <usize>r * stride;
    const sums = squareSums(x0, x0 + stride, columns);
    scaleRow(x0, w, out + <usize>r * stride, columns, inverseRms(f64x2.extract_lane(sums, 0), columns, eps));
    scaleRow(x0 + stride, w, out + <usize>(r + 1) * stride, columns, inverseRms(f64x2.extract_lane(sums, 1), columns, eps));
  }
  if (r < rows) {
    const x0 = x + <usize>r * stride;
    const sums = squareSums(x0, x0, columns);
    scaleRow(x0, w, out + <usize>r * stride, columns, inverseRms(f64x2.extract_lane(sums, 0), columns, eps));
  }
}

/** `h[i] = f32(h[i] + x[i])` over `n` float32, then (with `columns` > 0) the RMSNorm of `h`'s rows into `out`. */
export function addRmsNormRows(h: usize, x: usize, w: usize, out: usize, rows: i32, columns: i32, eps: f64): void {
  const n = <usize>rows * <usize>columns;
  let i: usize = 0;
  for (; i + 3 < n; i += 4) v128.store(h + (i << 2), f32x4.add(v128.load(h + (i << 2)), v128.load(x + (i << 2))));
  for (; i < n; i++) store<f32>(h + (i << 2), load<f32>(h + (i << 2)) + load<f32>(x + (i << 2)));
  rmsNormRows(h, w, out, rows, columns, eps);
}

/**
 * RMSNorm's backward over `rows` rows without the gain's gradient: `inv = (mean(x^2) + eps)^(-1/2)`,
 * `c = dot inv^3 / columns` with `dot = sum_j (w_j dy_j) x_j`, `dx_j (+)= inv w_j dy_j - x_j c` (float64 inside,
 * stored as float32; `accumulate` adds to `dx`).
 */
export function rmsNormBackwardRows(x: usize, w: usize, dy: usize, dx: usize, rows: i32, columns: i32, eps: f64, accumulate: bool): void {
  const stride = <usize>columns << 2;
  for (let r = 0; r < rows; r += 2) {
    const two = r + 1 < rows;
    const x0 = x + <usize>r * stride;
    const x1 = two ? x0 + stride : x0;
    const dy0 = dy + <usize>r * stride;
    const dy1 = two ? dy0 + stride : dy0;
    let sq = f64x2.splat(0);
    let dot = f64x2.splat(0);
    for (let j = 0; j < columns; j++) {
      const at = <usize>j << 2;
      const v = pairAt(x0 + at, x1 + at);
      sq = f64x2.add(sq, f64x2.mul(v, v));
      dot = f64x2.add(dot, f64x2.mul(f64x2.mul(f64x2.splat(<f64>load<f32>(w + at)), pairAt(dy0 + at, dy1 + at)), v));
    }
    backwardRow(x0, w, dy0, dx + <usize>r * stride, columns, eps, f64x2.extract_lane(sq, 0), f64x2.extract_lane(dot, 0), accumulate);
    if (two) backwardRow(x1, w, dy1, dx + <usize>(r + 1) * stride, columns, eps, f64x2.extract_lane(sq, 1), f64x2.extract_lane(dot, 1), accumulate);
  }
}

// @ts-ignore: decorator
@inline
function backwardRow(x: usize, w: usize, dy: usize, dx: usize, columns: i32, eps: f64, sq: f64, dot: f64, accumulate: bool): void {
  const inv = inverseRms(sq, columns, eps);
  const c = (dot * inv * inv * inv) / <f64>columns;
  const vinv = f64x2.splat(inv);
  const vc = f64x2.splat(c);
  let j = 0;
  for (; j + 1 < columns; j += 2) {
    const at = <usize>j << 2;
    const t = f64x2.sub(f64x2.mul(f64x2.mul(vinv, f64x2.promote_low_f32x4(v128.load64_zero(w + at))), f64x2.promote_low_f32x4(v128.load64_zero(dy + at))), f64x2.mul(f64x2.promote_low_f32x4(v128.load64_zero(x + at)), vc));
    const y = accumulate ? f64x2.add(f64x2.promote_low_f32x4(v128.load64_zero(dx + at)), t) : t;
    v128.store64_lane(dx + at, f32x4.demote_f64x2_zero(y), 0);
  }
  for (; j < columns; j++) {
    const at = <usize>j << 2;
    const t = inv * <f64>load<f32>(w + at) * <f64>load<f32>(dy + at) - <f64>load<f32>(x + at) * c;
    store<f32>(dx + at, <f32>(accumulate ? <f64>load<f32>(dx + at) + t : t));
  }
}

/**
 * RoPE (rotate-half form) over `rows` rows of `heads` heads of `headDim` floats, in place; row `t` reads its cos/sin
 * row (`headDim / 2` float32 each) as row `t` of `cos` and of `sin` (the caller gathers them by position).
 * Forward: `a' = a c - b s`, `b' = b c + a s`; `inverse`: `a' = a c + b s`, `b' = b c - a s` (float64, stored as float32).
 */
export function ropeRows(data: usize, cos: usize, sin: usize, rows: i32, heads: i32, headDim: i32, inverse: bool): void {
  const half = headDim >> 1;
  const rowBytes = <usize>(heads * headDim) << 2;
  for (let t = 0; t < rows; t++) {
    const c0 = cos + <usize>t * (<usize>half << 2);
    const s0 = sin + <usize>t * (<usize>half << 2);
    for (let h = 0; h < heads; h++) {
      const a0 = data + <usize>t * rowBytes + (<usize>(h * headDim) << 2);
      const b0 = a0 + (<usize>half << 2);
      let i = 0;
      for (; i + 1 < half; i += 2) {
        const at = <usize>i << 2;
        const c = f64x2.promote_low_f32x4(v128.load64_zero(c0 + at));
        const s = f64x2.promote_low_f32x4(v128.load64_zero(s0 + at));
        const a = f64x2.promote_low_f32x4(v128.load64_zero(a0 + at));
        const b = f64x2.promote_low_f32x4(v128.load64_zero(b0 + at));
        const na = inverse ? f64x2.add(f64x2.mul(a, c), f64x2.mul(b, s)) : f64x2.sub(f64x2.mul(a, c), f64x2.mul(b, s));
        const nb = inverse ? f64x2.sub(f64x2.mul(b, c), f64x2.mul(a, s)) : f64x2.add(f64x2.mul(b, c), f64x2.mul(a, s));
        v128.store64_lane(a0 + at, f32x4.demote_f64x2_zero(na), 0);
        v128.store64_lane(b0 + at, f32x4.demote_f64x2_zero(nb), 0);
      }
      for (; i < half; i++) {
        const at = <usize>i << 2;
        const c = <f64>load<f32>(c0 + at);
        const s = <f64>load<f32>(s0 + at);
        const a = <f64>load<f32>(a0 + at);
        const b = <f64>load<f32>(b0 + at);
        store<f32>(a0 + at, <f32>(inverse ? a * c + b * s : a * c - b * s));
        store<f32>(b0 + at, <f32>(inverse ? b * c - a * s : b * c + a * s));
      }
    }
  }
}

/**
 * `out[i] = 2 d / n` (or `d * factor` where `factor` is given, non-zero: `2 / n` exactly) with `d = y[i] - t[i]`
 * (float64), over `length` float32, and returns `sum` plus the squares `d * d` added left to right.
 */
export function squaredErrorRows(y: usize, t: usize, out: usize, length: i32, n: f64, factor: f64, sum: f64): f64 {
  for (let i = 0; i < length; i++) {
    const at = <usize>i << 2;
    const d = <f64>load<f32>(y + at) - <f64>load<f32>(t + at);
    sum += d * d;
    store<f32>(out + at, <f32>(factor !== 0 ? d * factor : (2 * d) / n));
  }
  return sum;
}

/** `out[i] = a[i] + b[i]` over `n` float32 (`out` may be `a` or `b`). */
export function addValues(a: usize, b: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 3 < n; i += 4) v128.store(out + (<usize>i << 2), f32x4.add(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(out + (<usize>i << 2), load<f32>(a + (<usize>i << 2)) + load<f32>(b + (<usize>i << 2)));
}

/**
 * {@link siluGate}, bit for bit, keeping each element's `fastExp(-x)` (float64) in `e` for {@link swigluBackwardKept}.
 */
export function siluGateKeep(gate: usize, up: usize, out: usize, e: usize, n: i32, c64: f64, cl: f64): void {
  siluLoop(gate, up, out, e, n, c64, cl, true);
}

/**
 * {@link swigluBackward}, bit for bit, with each element's `fastExp(-g)` read from `e` (as {@link siluGateKeep} kept
 * it) instead of computed again. `dGate` may be `gate` and `dUp` may be `up`.
 */
export function swigluBackwardKept(gate: usize, up: usize, dh: usize, e: usize, dGate: usize, dUp: usize, n: i32): void {
  const one = f64x2.splat(1);
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const at = <usize>i << 2;
    const g = f64x2.promote_low_f32x4(v128.load64_zero(gate + at));
    swigluPair(up, dh, dGate, dUp, at, g, f64x2.div(one, f64x2.add(one, v128.load(e + (<usize>i << 3)))));
  }
  if (i < n) {
    const at = <usize>i << 2;
    swigluOne(up, dh, dGate, dUp, at, <f64>load<f32>(gate + at), 1 / (1 + load<f64>(e + (<usize>i << 3))));
  }
}

// ---- Float32 SiLU for the training passes (`@bitsmith/models`' block passes with `arithmetic: 'native'`): every
// operation in float32 (as PyTorch computes it), four lanes at a time, each element's sigmoid kept in float32 for the
// backward. Bit for bit `siluGateFloat32Loop` and `swigluBackwardFloat32Loop` of src/silu-float32.ts: the same float32
// operations in the same order, no fused multiply-add.
//
// exp32 is Cephes' expf: n = nearest-even(x log2 e) (x clamped to [-87, 88]), r = (x - n C1) - n C2,
// exp(r) = ((((p0 r + p1) r + p2) r + p3) r + p4) r + p5) r^2 + r + 1, times 2^n built in the exponent bits.

// @ts-ignore: decorator
@inline
function exp32Lanes(x: v128): v128 {
  // pmin/pmax (one instruction each; a NaN lane stays NaN, as with min/max, since NaN compares false).
  const xc = f32x4.pmax(f32x4.pmin(x, f32x4.splat(88.0)), f32x4.splat(-87.0));
  // nearest-even(x log2 e) by adding and subtracting 1.5 * 2^23 (|x log2 e| < 2^22 here): the sum's low bits hold the
  // integer, which also gives 2^n's exponent bits without a float-to-integer conversion.
  const t = f32x4.add(f32x4.mul(xc, f32x4.splat(1.44269504088896341)), f32x4.splat(12582912.0));
  const n = f32x4.sub(t, f32x4.splat(12582912.0));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.add(f32x4.mul(f32x4.splat(1.9875691500e-4), r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f32x4.splat(1.0));
  // n is an integer in [-126, 127] (or NaN, whose lane is NaN through p): 2^n as float32 bits, from t's bits
  // (0x4b400000 + n).
  return f32x4.mul(p, i32x4.shl(i32x4.add(t, i32x4.splat(127 - 0x4b400000)), 23));
}

/** {@link exp32Lanes} for one float32 value. */
// @ts-ignore: decorator
@inline
function exp32Scalar(x: f32): f32 {
  if (x != x) return x;
  const xc: f32 = max<f32>(min<f32>(x, 88.0), -87.0);
  const n: f32 = nearest<f32>(xc * <f32>1.44269504088896341);
  let r: f32 = xc - n * <f32>0.693359375;
  r = r - n * <f32>-2.12194440e-4;
  let p: f32 = <f32>1.9875691500e-4 * r + <f32>1.3981999507e-3;
  p = p * r + <f32>8.3334519073e-3;
  p = p * r + <f32>4.1665795894e-2;
  p = p * r + <f32>1.6666665459e-1;
  p = p * r + <f32>5.0000001201e-1;
  p = p * (r * r) + r + <f32>1.0;
  return p * reinterpret<f32>((<i32>n + 127) << 23);
}

/**
 * `sig[i] = 1 / (1 + exp32(-g))` and `out[i] = (g * sig[i]) * up[i]` for `g = gate[i]`, all in float32, `n`
 * elements. Each element's inputs are read before its outputs are written, so `out` may be `gate` or `up`.
 */
export function siluGateFloat32(gate: usize, up: usize, out: usize, sig: usize, n: i32): void {
  const one = f32x4.splat(1.0);
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const at = <usize>i << 2;
    const g = v128.load(gate + at);
    const u = v128.load(up + at);
    const s = f32x4.div(one, f32x4.add(one, exp32Lanes(f32x4.neg(g))));
    v128.store(sig + at, s);
    v128.store(out + at, f32x4.mul(f32x4.mul(g, s), u));
  }
  for (; i < n; i++) {
    const at = <usize>i << 2;
    const g = load<f32>(gate + at);
    const u = load<f32>(up + at);
    const s: f32 = <f32>1.0 / (<f32>1.0 + exp32Scalar(-g));
    store<f32>(sig + at, s);
    store<f32>(out + at, g * s * u);
  }
}

/**
 * SwiGLU's backward in float32 from the kept sigmoids of {@link siluGateFloat32}: `dGate[i] = ((d * u) * s) * (1 +
 * g * (1 - s))` and `dUp[i] = (d * g) * s` with `g = gate[i]`, `u = up[i]`, `d = dh[i]`, `s = sig[i]`, `n` elements.
 * `dGate` may be `gate` and `dUp` may be `up`.
 */
export function swigluBackwardFloat32(gate: usize, up: usize, dh: usize, sig: usize, dGate: usize, dUp: usize, n: i32): void {
  const one = f32x4.splat(1.0);
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const at = <usize>i << 2;
    const g = v128.load(gate + at);
    const u = v128.load(up + at);
    const d = v128.load(dh + at);
    const s = v128.load(sig + at);
    const dg = f32x4.mul(f32x4.mul(f32x4.mul(d, u), s), f32x4.add(one, f32x4.mul(g, f32x4.sub(one, s))));
    v128.store(dUp + at, f32x4.mul(f32x4.mul(d, g), s));
    v128.store(dGate + at, dg);
  }
  for (; i < n; i++) {
    const at = <usize>i << 2;
    const g = load<f32>(gate + at);
    const u = load<f32>(up + at);
    const d = load<f32>(dh + at);
    const s = load<f32>(sig + at);
    const dg: f32 = d * u * s * (<f32>1.0 + g * (<f32>1.0 - s));
    store<f32>(dUp + at, d * g * s);
    store<f32>(dGate + at, dg);
  }
}
