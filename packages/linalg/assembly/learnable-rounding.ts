// The hot loops of AutoRound's learnable rounding (`@bitsmith/learned`'s `learnableRounding`): the dequantization of
// every weight under this iteration's group scales and rounding offsets, and its straight-through backward, in
// AssemblyScript with 128-bit SIMD (float64 lanes), bit for bit the JavaScript loops: every operation in float64 with
// float32 loads and stores, no fused multiply-add, the group sums added element by element in order.
//
// Rounding: the JavaScript loops round half to even by adding and subtracting 1.5 * 2^52 (core's `roundHalfEven`
// beyond 2^51); `f64x2.nearest` is the same integer, except that it keeps the sign of a zero result. The loops only add
// the zero point to the rounded value (-0 + z is +0 for z = +0) or subtract the unrounded ratio from it (the difference
// is the same value, and a zero term does not change a group sum that starts at +0), so the results are the same.
//
// The weights are runs of one group (`runStart[r] .. runStart[r + 1] - 1` of group `runGroup[r]`); the caller lays
// every array out in this module's memory from HEAP_BASE.

/** Lowest free byte: the caller lays its arrays out from here. */
export const HEAP_BASE: i32 = 1024;

// @ts-ignore: decorator
@inline
function groupOfRun(runGroup: usize, r: i32): usize {
  return <usize>load<i32>(runGroup + ((<usize>r) << 2));
}

// @ts-ignore: decorator
@inline
function startOfRun(runStart: usize, r: i32): i32 {
  return load<i32>(runStart + ((<usize>r) << 2));
}

/** Zeroes float32 elements `from .. to - 1` at `p` (a run whose scale is not positive). */
// @ts-ignore: decorator
@inline
function zeroRun(p: usize, from: i32, to: i32): void {
  memory.fill(p + ((<usize>from) << 2), 0, (<usize>(to - from)) << 2);
}

/** `w / s` for the two float32 weights at byte offset `at`, in float64. */
// @ts-ignore: decorator
@inline
function ratioLanes(w: usize, at: usize, vs: v128): v128 {
  return f64x2.div(f64x2.promote_low_f32x4(v128.load64_zero(w + at)), vs);
}

/** `ratio + v (+ b)` for the two elements at byte offset `at`, in float64. */
// @ts-ignore: decorator
@inline
function plusOffsets(ratio: v128, offset: usize, base: usize, at: usize): v128 {
  const u = f64x2.add(ratio, f64x2.promote_low_f32x4(v128.load64_zero(offset + at)));
  return base ? f64x2.add(u, f64x2.promote_low_f32x4(v128.load64_zero(base + at))) : u;
}

// @ts-ignore: decorator
@inline
function clampLanes(c: v128, lowest: v128, highest: v128): v128 {
  // c < lowest ? lowest : c > highest ? highest : c (NaN stays NaN)
  const low = v128.bitselect(lowest, c, f64x2.lt(c, lowest));
  return v128.bitselect(highest, low, f64x2.gt(low, highest));
}

/**
 * `out[i] = s (clamp(nearest(w[i] / s + v[i] (+ b[i])) + z, lowest, highest) - z) + 0` per element, with the run's
 * group scale `s` (`<= 0` or NaN: the run is 0) and zero point `z` (0 where `zero` is 0). `base` 0: no `b`.
 */
export function dequantize(w: usize, base: usize, offset: usize, out: usize, runStart: usize, runGroup: usize, runs: i32, scale: usize, zero: usize, lowest: f64, highest: f64): void {
  const lo = f64x2.splat(lowest);
  const hi = f64x2.splat(highest);
  const plusZero = f64x2.splat(0);
  for (let r = 0; r < runs; r++) {
    const g = groupOfRun(runGroup, r);
    const from = startOfRun(runStart, r);
    const to = startOfRun(runStart, r + 1);
    const s = load<f64>(scale + (g << 3));
    if (!(s > 0)) {
      zeroRun(out, from, to);
      continue;
    }
    const z: f64 = zero ? load<f64>(zero + (g << 3)) : 0;
    const vs = f64x2.splat(s);
    const vz = f64x2.splat(z);
    let i = from;
    for (; i + 1 < to; i += 2) {
      const at = (<usize>i) << 2;
      const c = clampLanes(f64x2.add(f64x2.nearest(plusOffsets(ratioLanes(w, at, vs), offset, base, at)), vz), lo, hi);
      v128.store64_lane(out + at, f32x4.demote_f64x2_zero(f64x2.add(f64x2.mul(f64x2.sub(c, vz), vs), plusZero)), 0);
    }
    if (i < to) {
      const at = (<usize>i) << 2;
      let u = <f64>load<f32>(w + at) / s + <f64>load<f32>(offset + at);
      if (base) u += <f64>load<f32>(base + at);
      let c = nearest(u) + z;
      c = c < lowest ? lowest : c > highest ? highest : c;
      store<f32>(out + at, <f32>((c - z) * s + 0));
    }
  }
}

/**
 * The straight-through backward of {@link dequantize} for a loss gradient `G` (float32) with respect to its output:
 * inside the grid `dOffset = G s` and the group's scale sum `dScale += G (r - w / s)`; clamped elements give
 * `dOffset = 0`, `dScale += G (q - z)` and, with zero points, `dZero += -G s`. The sums are added element by element
 * in order, onto the values already in `dScale` and `dZero`. A run whose scale is not positive gets `dOffset = 0`.
 */
export function backward(w: usize, base: usize, offset: usize, gradient: usize, dOffset: usize, runStart: usize, runGroup: usize, runs: i32, scale: usize, zero: usize, dScale: usize, dZero: usize, lowest: f64, highest: f64): void {
  const lo = f64x2.splat(lowest);
  const hi = f64x2.splat(highest);
  for (let r = 0; r < runs; r++) {
    const g = groupOfRun(runGroup, r);
    const from = startOfRun(runStart, r);
    const to = startOfRun(runStart, r + 1);
    const s = load<f64>(scale + (g << 3));
    if (!(s > 0)) {
      zeroRun(dOffset, from, to);
      continue;
    }
    // Clamped codes decode to (lowest or highest) - z.
    const z: f64 = zero ? load<f64>(zero + (g << 3)) : 0;
    const qLow = lowest - z;
    const qHigh = highest - z;
    const vs = f64x2.splat(s);
    const vz = f64x2.splat(z);
    let ds = load<f64>(dScale + (g << 3));
    let dz = zero ? load<f64>(dZero + (g << 3)) : 0;
    let i = from;
    for (; i + 1 < to; i += 2) {
      const at = (<usize>i) << 2;
      const G = f64x2.promote_low_f32x4(v128.load64_zero(gradient + at));
      const ratio = ratioLanes(w, at, vs);
      const rounded = f64x2.nearest(plusOffsets(ratio, offset, base, at));
      const shifted = f64x2.add(rounded, vz);
      const inside = v128.and(f64x2.ge(shifted, lo), f64x2.le(shifted, hi));
      // Clamped lanes decode to qLow where below the grid, else qHigh (NaN included, as the JavaScript loop).
      const q = v128.bitselect(f64x2.splat(qLow), f64x2.splat(qHigh), f64x2.lt(shifted, lo));
      const term = f64x2.mul(G, v128.bitselect(f64x2.sub(rounded, ratio), q, inside));
      const dv = v128.and(f64x2.mul(G, vs), inside);
      v128.store64_lane(dOffset + at, f32x4.demote_f64x2_zero(dv), 0);
      ds += f64x2.extract_lane(term, 0);
      ds += f64x2.extract_lane(term, 1);
      if (zero && !i64x2.all_true(inside)) {
        const gs = f64x2.mul(G, vs);
        if (i64x2.extract_lane(inside, 0) == 0) dz += -f64x2.extract_lane(gs, 0);
        if (i64x2.extract_lane(inside, 1) == 0) dz += -f64x2.extract_lane(gs, 1);
      }
    }
    if (i < to) {
      const at = (<usize>i) << 2;
      const G = <f64>load<f32>(gradient + at);
      const ratio = <f64>load<f32>(w + at) / s;
      let u = ratio + <f64>load<f32>(offset + at);
      if (base) u += <f64>load<f32>(base + at);
      const rounded = nearest(u);
      const shifted = rounded + z;
      if (shifted >= lowest && shifted <= highest) {
        store<f32>(dOffset + at, <f32>(G * s));
        ds += G * (rounded - ratio);
      } else {
        store<f32>(dOffset + at, 0);
        ds += G * (shifted < lowest ? qLow : qHigh);
        if (zero) dz += -G * s;
      }
    }
    store<f64>(dScale + (g << 3), ds);
    if (zero) store<f64>(dZero + (g << 3), dz);
  }
}

/**
 * One bounded SignSGD step of float32 parameters, `p = min(hi, max(lo, p - lr * ((g > 0) - (g < 0))))` in float64 with
 * one rounding to float32 at the store (`@bitsmith/learned`'s `signSgd` with bounds): a NaN or zero gradient moves
 * nothing, and min/max propagate NaN and order -0 below +0 as JavaScript's Math.min/Math.max.
 */
export function signStep(params: usize, grads: usize, n: i32, lr: f64, lowest: f64, highest: f64): void {
  const vlr = f64x2.splat(lr);
  const lo = f64x2.splat(lowest);
  const hi = f64x2.splat(highest);
  const zero = f64x2.splat(0);
  const one = f64x2.splat(1);
  let i = 0;
  if (lowest != 0 && highest != 0) {
    // Bounds that are not zeros: max(lo, v) and min(hi, .) as a compare and a select each (a NaN v stays NaN, as with
    // min/max; only a zero bound would order -0 and +0 differently), which V8 compiles to far fewer instructions.
    for (; i + 1 < n; i += 2) {
      const at = (<usize>i) << 2;
      const g = f64x2.promote_low_f32x4(v128.load64_zero(grads + at));
      const direction = f64x2.sub(v128.and(f64x2.gt(g, zero), one), v128.and(f64x2.lt(g, zero), one));
      const v = f64x2.sub(f64x2.promote_low_f32x4(v128.load64_zero(params + at)), f64x2.mul(vlr, direction));
      const low = v128.bitselect(lo, v, f64x2.lt(v, lo));
      v128.store64_lane(params + at, f32x4.demote_f64x2_zero(v128.bitselect(hi, low, f64x2.gt(low, hi))), 0);
    }
  }
  for (; i + 1 < n; i += 2) {
    const at = (<usize>i) << 2;
    const g = f64x2.promote_low_f32x4(v128.load64_zero(grads + at));
    const direction = f64x2.sub(v128.and(f64x2.gt(g, zero), one), v128.and(f64x2.lt(g, zero), one));
    const v = f64x2.sub(f64x2.promote_low_f32x4(v128.load64_zero(params + at)), f64x2.mul(vlr, direction));
    v128.store64_lane(params + at, f32x4.demote_f64x2_zero(f64x2.min(hi, f64x2.max(lo, v))), 0);
  }
  if (i < n) {
    const at = (<usize>i) << 2;
    const g = <f64>load<f32>(grads + at);
    const direction: f64 = (g > 0 ? 1.0 : 0.0) - (g < 0 ? 1.0 : 0.0);
    store<f32>(params + at, <f32>min(highest, max(lowest, <f64>load<f32>(params + at) - lr * direction)));
  }
}


// ---------------------------------------------------------------------------------------------------------------------
// Float32 arithmetic (the training passes' native arithmetic, as PyTorch computes AutoRound): four float32 lanes, every
// operation in float32, no fused multiply-add. Each run's group sums are kept in four lanes (lane k adds the run's
// elements from + 4 j + k in order), combined as (l0 + l1) + (l2 + l3), the run's last `length % 4` elements then
// added one by one, and the run's float32 sum added to the group's float64 sum. Clamps take the NaN-propagating
// `c < lowest ? lowest : c` and `c > highest ? highest : c` (`pmax` and `pmin`).

/** `(l0 + l1) + (l2 + l3)` of a float32x4. */
// @ts-ignore: decorator
@inline
function laneSum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/**
 * Float32 {@link dequantize}: `out[i] = s (clamp(nearest(w[i] / s + v[i] (+ b[i])) + z) - z) + 0`, every operation in
 * float32 (the scale and zero point rounded to float32 once per run).
 */
export function dequantizeFloat32(w: usize, base: usize, offset: usize, out: usize, runStart: usize, runGroup: usize, runs: i32, scale: usize, zero: usize, lowest: f32, highest: f32): void {
  const lo = f32x4.splat(lowest);
  const hi = f32x4.splat(highest);
  const plusZero = f32x4.splat(0);
  for (let r = 0; r < runs; r++) {
    const g = groupOfRun(runGroup, r);
    const from = startOfRun(runStart, r);
    const to = startOfRun(runStart, r + 1);
    const s = <f32>load<f64>(scale + (g << 3));
    if (!(s > 0)) {
      zeroRun(out, from, to);
      continue;
    }
    const z: f32 = zero ? <f32>load<f64>(zero + (g << 3)) : 0;
    const vs = f32x4.splat(s);
    const vz = f32x4.splat(z);
    let i = from;
    for (; i + 3 < to; i += 4) {
      const at = (<usize>i) << 2;
      let u = f32x4.add(f32x4.div(v128.load(w + at), vs), v128.load(offset + at));
      if (base) u = f32x4.add(u, v128.load(base + at));
      const c = f32x4.pmin(f32x4.pmax(f32x4.add(f32x4.nearest(u), vz), lo), hi);
      v128.store(out + at, f32x4.add(f32x4.mul(f32x4.sub(c, vz), vs), plusZero));
    }
    for (; i < to; i++) {
      const at = (<usize>i) << 2;
      let u = load<f32>(w + at) / s + load<f32>(offset + at);
      if (base) u += load<f32>(base + at);
      let c = nearest(u) + z;
      c = c < lowest ? lowest : c;
      c = c > highest ? highest : c;
      store<f32>(out + at, (c - z) * s + 0);
    }
  }
}

/**
 * Float32 {@link backward}: inside the grid `dOffset = G s` and `dScale += G (r - w / s)`; clamped elements give
 * `dOffset = 0`, `dScale += G (q - z)` and, with zero points, `dZero += -G s`; every product and sum in float32, the
 * run's sums in lanes as described above, each added to the group's float64 sum.
 */
export function backwardFloat32(w: usize, base: usize, offset: usize, gradient: usize, dOffset: usize, runStart: usize, runGroup: usize, runs: i32, scale: usize, zero: usize, dScale: usize, dZero: usize, lowest: f32, highest: f32): void {
  const lo = f32x4.splat(lowest);
  const hi = f32x4.splat(highest);
  for (let r = 0; r < runs; r++) {
    const g = groupOfRun(runGroup, r);
    const from = startOfRun(runStart, r);
    const to = startOfRun(runStart, r + 1);
    const s = <f32>load<f64>(scale + (g << 3));
    if (!(s > 0)) {
      zeroRun(dOffset, from, to);
      continue;
    }
    const z: f32 = zero ? <f32>load<f64>(zero + (g << 3)) : 0;
    const qLow = lowest - z;
    const qHigh = highest - z;
    const vs = f32x4.splat(s);
    const vz = f32x4.splat(z);
    const vqLow = f32x4.splat(qLow);
    const vqHigh = f32x4.splat(qHigh);
    let ds = f32x4.splat(0);
    let dz = f32x4.splat(0);
    let i = from;
    for (; i + 3 < to; i += 4) {
      const at = (<usize>i) << 2;
      const G = v128.load(gradient + at);
      const ratio = f32x4.div(v128.load(w + at), vs);
      let u = f32x4.add(ratio, v128.load(offset + at));
      if (base) u = f32x4.add(u, v128.load(base + at));
      const rounded = f32x4.nearest(u);
      const shifted = f32x4.add(rounded, vz);
      const inside = v128.and(f32x4.ge(shifted, lo), f32x4.le(shifted, hi));
      const q = v128.bitselect(vqLow, vqHigh, f32x4.lt(shifted, lo));
      const gs = f32x4.mul(G, vs);
      ds = f32x4.add(ds, f32x4.mul(G, v128.bitselect(f32x4.sub(rounded, ratio), q, inside)));
      v128.store(dOffset + at, v128.and(gs, inside));
      if (zero) dz = f32x4.sub(dz, v128.andnot(gs, inside));
    }
    let sum = laneSum(ds);
    let sumZero = laneSum(dz);
    for (; i < to; i++) {
      const at = (<usize>i) << 2;
      const G = load<f32>(gradient + at);
      const ratio = load<f32>(w + at) / s;
      let u = ratio + load<f32>(offset + at);
      if (base) u += load<f32>(base + at);
      const rounded = nearest(u);
      const shifted = rounded + z;
      if (shifted >= lowest && shifted <= highest) {
        store<f32>(dOffset + at, G * s);
        sum += G * (rounded - ratio);
      } else {
        store<f32>(dOffset + at, 0);
        sum += G * (shifted < lowest ? qLow : qHigh);
        if (zero) sumZero -= G * s;
      }
    }
    store<f64>(dScale + (g << 3), load<f64>(dScale + (g << 3)) + <f64>sum);
    if (zero) store<f64>(dZero + (g << 3), load<f64>(dZero + (g << 3)) + <f64>sumZero);
  }
}

/**
 * Float32 {@link signStep}: `p = min(hi, max(lo, p - lr * ((g > 0) - (g < 0))))` with `lr` a float32, as
 * `c < lo ? lo : c` then `c > hi ? hi : c` (a NaN parameter stays NaN).
 */
export function signStepFloat32(params: usize, grads: usize, n: i32, lr: f32, lowest: f32, highest: f32): void {
  const vlr = f32x4.splat(lr);
  const lo = f32x4.splat(lowest);
  const hi = f32x4.splat(highest);
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const at = (<usize>i) << 2;
    const g = v128.load(grads + at);
    // (g > 0) - (g < 0) as masks: -1 where g > 0 minus -1 where g < 0, so lr times the difference is the step's negation.
    const direction = f32x4.convert_i32x4_s(i32x4.sub(f32x4.lt(g, zero), f32x4.gt(g, zero)));
    const v = f32x4.sub(v128.load(params + at), f32x4.mul(vlr, direction));
    v128.store(params + at, f32x4.pmin(f32x4.pmax(v, lo), hi));
  }
  for (; i < n; i++) {
    const at = (<usize>i) << 2;
    const g = load<f32>(grads + at);
    const direction: f32 = (g > 0 ? <f32>1 : <f32>0) - (g < 0 ? <f32>1 : <f32>0);
    let c = load<f32>(params + at) - lr * direction;
    c = c < lowest ? lowest : c;
    store<f32>(params + at, c > highest ? highest : c);
  }
}
