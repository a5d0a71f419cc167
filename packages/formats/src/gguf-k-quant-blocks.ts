import { InvalidArgumentError } from '@bitsmith/core';
import { f32, GROUP_MAX_EPS, nearestInt } from './gguf-float32-math.js';
import { float16BitsToFloat32, float32ToFloat16Bits } from './gguf-float16.js';

/**
 * ggml k-quants on super-blocks of 256 elements, bit-exact with ggml-quants.c `quantize_row_q4_K_ref` /
 * `quantize_row_q6_K_ref` (the deterministic reference quantizers without an importance matrix) and their
 * `dequantize_row_*`. Arithmetic is float32 operation by operation, as C evaluates it without FMA contraction.
 *
 * - Q4_K (144 bytes): fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32, 128 bytes of
 *   nibbles (per 64 elements: low nibbles hold elements 0..31, high nibbles 32..63). w = d*sc*q - dmin*m.
 * - Q6_K (210 bytes): ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16] for sub-blocks of 16, fp16 d.
 *   w = d*sc*(q - 32).
 */
const QK_K = 256;

function checkLength(n: number, type: string): void {
  if (n % QK_K !== 0) throw new InvalidArgumentError('length', `${type} needs a multiple of ${QK_K} elements, got ${n}`);
}

/**
 * ggml `make_qkx2_quants` (and `make_qkx3_quants` with weights and `use_mad = false`, which is the same
 * computation): asymmetric quantization of `n` values to 0..nmax with a weighted least-squares search over
 * `nstep + 1` candidate scales. Writes levels to `L[lo..lo+n)`, returns `[scale, theMin]` (theMin = -min >= 0).
 * Weights are read from `weights[0..n)`.
 */
export function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  xo: number,
  weights: Float32Array,
  L: Uint8Array,
  lo: number,
  laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
): [number, number] {
  let min = x[xo]!;
  let max = x[xo]!;
  let sumW = weights[0]!;
  let sumX = f32(sumW * x[xo]!);
  for (let i = 1; i < n; i++) {
    const v = x[xo + i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    const w = weights[i]!;
    sumW = f32(sumW + w);
    sumX = f32(sumX + f32(w * v));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    return [0, -min];
  }
  let iscale = f32(nmax / f32(max - min));
  let scale = f32(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(f32(iscale * f32(x[xo + i]! - min)))));
    L[lo + i] = l;
    const diff = f32(f32(f32(scale * l) + min) - x[xo + i]!);
    bestError = f32(bestError + f32(weights[i]! * f32(diff * diff)));
  }
  if (nstep < 1) return [scale, -min];
  for (let is = 0; is <= nstep; is++) {
    iscale = f32(f32(f32(rmin + f32(rdelta * is)) + nmax) / f32(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const v = x[xo + i]!;
      const l = Math.max(0, Math.min(nmax, nearestInt(f32(iscale * f32(v - min)))));
      laux[i] = l;
      const w = weights[i]!;
      const wl = f32(w * l);
      sumL = f32(sumL + wl);
      sumL2 = f32(sumL2 + f32(wl * l));
      sumXL = f32(sumXL + f32(wl * v));
    }
    const D = f32(f32(sumW * sumL2) - f32(sumL * sumL));
    if (D > 0) {
      let thisScale = f32(f32(f32(sumW * sumXL) - f32(sumX * sumL)) / D);
      let thisMin = f32(f32(f32(sumL2 * sumX) - f32(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f32(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        const diff = f32(f32(f32(thisScale * laux[i]!) + thisMin) - x[xo + i]!);
        curError = f32(curError + f32(weights[i]! * f32(diff * diff)));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = laux[i]!;
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/** The 6-bit scale and min of sub-block `j` from Q4_K's 12 packed bytes at `q[o..o+12)` (ggml `get_scale_min_k4`). */
export function scaleMinK4(j: number, q: Uint8Array, o: number): [number, number] {
  if (j < 4) return [q[o + j]! & 63, q[o + j + 4]! & 63];
  return [(q[o + j + 4]! & 0xf) | ((q[o + j - 4]! >> 6) << 4), (q[o + j + 4]! >> 4) | ((q[o + j]! >> 6) << 4)];
}

/**
 * Importance weights of llama.cpp's imatrix for the k-quant encoders: one non-negative weight per column of the
 * row-major `[rows, columns]` matrix being encoded (the mean of the squared activations feeding that input channel).
 */
export interface KQuantImportance {
  /** Row length of the matrix (a multiple of 256). Default: the whole input is one row. */
  readonly columns?: number;
  /** One weight per column; without it the reference (importance-free) quantizer runs. */
  readonly importance?: Float32Array;
}

function checkImportance(length: number, options: KQuantImportance): Float32Array | undefined {
  const { importance } = options;
  const columns = options.columns ?? length;
  if (columns % QK_K !== 0 || length % columns !== 0) throw new InvalidArgumentError('columns', `expected a multiple of ${QK_K} that divides ${length}, got ${columns}`);
  if (importance === undefined) return undefined;
  if (importance.length !== columns) throw new InvalidArgumentError('importance', `expected one weight per column (${columns}), got ${importance.length}`);
  for (let i = 0; i < importance.length; i++) {
    if (!(importance[i]! >= 0)) throw new InvalidArgumentError('importance', `weight ${i} is ${importance[i]}; expected a finite number >= 0`);
  }
  return importance;
}

/**
 * ggml `make_qp_quants`: quantizes the non-negative values `x[0..n)` (sub-block scales or mins) to 0..nmax against
 * one positive scale, with a search over 9 candidate scales and up to 5 rounds of coordinate descent on the levels,
 * minimising the error weighted by `w`. Writes levels to `L`, returns the scale.
 */
export function makeQpQuants(n: number, nmax: number, x: Float32Array, L: Uint8Array, w: Float32Array): number {
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, x[i]!);
  if (max < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = f32(nmax / max);
  for (let i = 0; i < n; i++) L[i] = nearestInt(f32(iscale * x[i]!));
  const scale = f32(1 / iscale);
  let bestMse = 0;
  for (let i = 0; i < n; i++) {
    const diff = f32(x[i]! - f32(scale * L[i]!));
    bestMse = f32(bestMse + f32(f32(w[i]! * diff) * diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue;
    const iscaleIs = f32(f32(f32(f32(0.1) * is) + nmax) / max);
    const scaleIs = f32(1 / iscaleIs);
    let mse = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.min(nmax, nearestInt(f32(iscaleIs * x[i]!)));
      const diff = f32(x[i]! - f32(scaleIs * l));
      mse = f32(mse + f32(f32(w[i]! * diff) * diff));
    }
    if (mse < bestMse) {
      bestMse = mse;
      iscale = iscaleIs;
    }
  }
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.min(nmax, nearestInt(f32(iscale * x[i]!)));
    L[i] = l;
    sumlx = f32(sumlx + f32(f32(w[i]! * x[i]!) * l));
    suml2 = f32(suml2 + f32(f32(w[i]! * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const wi = w[i]!;
      const xi = x[i]!;
      let slx = f32(sumlx - f32(f32(wi * xi) * L[i]!));
      let sl2 = f32(suml2 - f32(f32(wi * L[i]!) * L[i]!));
      if (slx > 0 && sl2 > 0) {
        const newL = Math.min(nmax, nearestInt(f32(f32(xi * sl2) / slx)));
        if (newL !== L[i]) {
          slx = f32(slx + f32(f32(wi * xi) * newL));
          sl2 = f32(sl2 + f32(f32(wi * newL) * newL));
          if (f32(f32(slx * slx) * suml2) > f32(f32(sumlx * sumlx) * sl2)) {
            L[i] = newL;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0 ? f32(sumlx / suml2) : 0;
}

/** Packs 6-bit sub-block scale `ls` and min `lm` of sub-block `j` into Q4_K/Q5_K's 12 scale bytes at `out[so..]`. */
export function packScaleMinK4(out: Uint8Array, so: number, j: number, ls: number, lm: number): void {
  if (j < 4) {
    out[so + j] = ls;
    out[so + j + 4] = lm;
  } else {
    out[so + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
    out[so + j - 4] |= (ls >> 4) << 6;
    out[so + j] |= (lm >> 4) << 6;
  }
}

/**
 * The shared part of ggml's Q4_K and Q5_K quantizers (levels 0..nmax = 15 or 31): per super-block, fits a scale and
 * min to each sub-block of 32, quantizes them to 6 bits, writes fp16 d and dmin and the 12 scale bytes at
 * `out[bo..bo+16)`, re-quantizes the elements against the stored scales into `L`, and returns nothing; the caller
 * packs `L`. Reference path (`quantize_row_q{4,5}_K_ref`) without importance, `quantize_row_q{4,5}_K_impl` with it.
 */
function asymmetricKBlock(x: Float32Array, xo: number, nmax: 15 | 31, qw: Float32Array | undefined, qo: number, out: Uint8Array, bo: number, L: Uint8Array, scratch: AsymScratch): void {
  const { laux, weights, mins, scales, sw, ls, lm } = scratch;
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const so = bo + 4;
  let dValue: number;
  let dminValue: number;
  if (qw === undefined) {
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < 8; j++) {
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) {
        const v = x[xo + 32 * j + l]!;
        sumX2 = f32(sumX2 + f32(v * v));
      }
      const avX = f32(Math.sqrt(f32(sumX2 / 32)));
      for (let l = 0; l < 32; l++) weights[l] = f32(avX + Math.abs(x[xo + 32 * j + l]!));
      const [scale, min] = nmax === 15 ? makeQkx2Quants(32, 15, x, xo + 32 * j, weights, L, 32 * j, laux, -1, f32(0.1), 20) : makeQkx2Quants(32, 31, x, xo + 32 * j, weights, L, 32 * j, laux, f32(-0.5), f32(0.1), 15);
      scales[j] = scale;
      mins[j] = min;
      if (scales[j]! > maxScale) maxScale = scales[j]!;
      if (mins[j]! > maxMin) maxMin = mins[j]!;
    }
    const invScale = maxScale > 0 ? f32(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? f32(63 / maxMin) : 0;
    for (let j = 0; j < 8; j++) {
      packScaleMinK4(out, so, j, Math.min(63, nearestInt(f32(invScale * scales[j]!)) & 0xff), Math.min(63, nearestInt(f32(invMin * mins[j]!)) & 0xff));
    }
    dValue = f32(maxScale / 63);
    dminValue = f32(maxMin / 63);
  } else {
    let sumX2 = 0;
    for (let l = 0; l < QK_K; l++) sumX2 = f32(sumX2 + f32(x[xo + l]! * x[xo + l]!));
    const sigma2 = f32(f32(2 * sumX2) / QK_K);
    for (let j = 0; j < 8; j++) {
      let sumw = 0;
      for (let l = 0; l < 32; l++) {
        const v = x[xo + 32 * j + l]!;
        weights[l] = f32(qw[qo + 32 * j + l]! * f32(Math.sqrt(f32(sigma2 + f32(v * v)))));
        sumw = f32(sumw + weights[l]!);
      }
      sw[j] = sumw;
      const [scale, min] = makeQkx2Quants(32, nmax, x, xo + 32 * j, weights, L, 32 * j, laux, f32(-0.9), f32(0.05), 36);
      scales[j] = scale;
      mins[j] = min;
    }
    dValue = makeQpQuants(8, 63, scales, ls, sw);
    dminValue = makeQpQuants(8, 63, mins, lm, sw);
    for (let j = 0; j < 8; j++) packScaleMinK4(out, so, j, Math.min(63, ls[j]!), Math.min(63, lm[j]!));
  }
  const dBits = float32ToFloat16Bits(dValue);
  const dminBits = float32ToFloat16Bits(dminValue);
  view.setUint16(bo, dBits, true);
  view.setUint16(bo + 2, dminBits, true);
  const dStored = float16BitsToFloat32(dBits);
  const dminStored = float16BitsToFloat32(dminBits);
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(j, out, so);
    const d = f32(dStored * sc);
    if (!d) continue;
    const dm = f32(dminStored * m);
    for (let ii = 0; ii < 32; ii++) {
      const l = nearestInt(f32(f32(x[xo + 32 * j + ii]! + dm) / d));
      L[32 * j + ii] = Math.max(0, Math.min(nmax, l));
    }
  }
}

interface AsymScratch {
  readonly laux: Uint8Array;
  readonly weights: Float32Array;
  readonly mins: Float32Array;
  readonly scales: Float32Array;
  readonly sw: Float32Array;
  readonly ls: Uint8Array;
  readonly lm: Uint8Array;
}

function asymScratch(): AsymScratch {
  return { laux: new Uint8Array(32), weights: new Float32Array(32), mins: new Float32Array(8), scales: new Float32Array(8), sw: new Float32Array(8), ls: new Uint8Array(8), lm: new Uint8Array(8) };
}

/**
 * Quantizes float32 values (a multiple of 256) to Q4_K super-blocks (ggml `quantize_row_q4_K_ref`): per sub-block of
 * 32, weights `sqrt(mean x^2) + |x|` drive `make_qkx2_quants(32, 15, rmin -1, rdelta 0.1, 20 steps)`; sub-block
 * scales and mins are quantized to 6 bits against d = max_scale/63 and dmin = max_min/63, then the elements are
 * re-quantized against the stored (fp16, 6-bit) scales.
 *
 * With `importance` (llama.cpp's imatrix: one weight per column), ggml `quantize_row_q4_K_impl` runs instead, as
 * `llama-quantize --imatrix` does: element weights `qw * sqrt(2 mean x^2 + x^2)`, `make_qkx3_quants(32, 15, -0.9,
 * 0.05, 36 steps)`, and the 6-bit sub-block scales and mins fitted by `make_qp_quants` weighted by each sub-block's
 * total weight.
 *
 * @example
 * ```ts
 * quantizeQ4_K(row); // row.length / 256 * 144 bytes
 * quantizeQ4_K(weight.data, { columns: 512, importance }); // importance-weighted
 * ```
 */
export function quantizeQ4_K(x: Float32Array, options: KQuantImportance = {}): Uint8Array {
  checkLength(x.length, 'Q4_K');
  const qw = checkImportance(x.length, options);
  const columns = options.columns ?? x.length;
  const nb = x.length / QK_K;
  const out = new Uint8Array(nb * 144);
  const L = new Uint8Array(QK_K);
  const scratch = asymScratch();
  for (let i = 0; i < nb; i++) {
    const xo = i * QK_K;
    const bo = i * 144;
    asymmetricKBlock(x, xo, 15, qw, xo % columns, out, bo, L, scratch);
    const qo = bo + 16;
    for (let j = 0; j < QK_K; j += 64) {
      for (let l = 0; l < 32; l++) out[qo + j / 2 + l] = L[j + l]! | (L[j + l + 32]! << 4);
    }
  }
  return out;
}

/**
 * Quantizes float32 values (a multiple of 256) to Q5_K super-blocks of 176 bytes (fp16 d, fp16 dmin, 12 bytes of
 * 6-bit scales and mins, qh[32] fifth bits, qs[128] low nibbles; w = d*sc*q - dmin*m with q in 0..31): ggml
 * `quantize_row_q5_K_ref` (`make_qkx2_quants(32, 31, -0.5, 0.1, 15 steps)`), or `quantize_row_q5_K_impl` with
 * `importance`.
 *
 * @example
 * ```ts
 * quantizeQ5_K(row); // row.length / 256 * 176 bytes
 * ```
 */
export function quantizeQ5_K(x: Float32Array, options: KQuantImportance = {}): Uint8Array {
  checkLength(x.length, 'Q5_K');
  const qw = checkImportance(x.length, options);
  const columns = options.columns ?? x.length;
  const nb = x.length / QK_K;
  const out = new Uint8Array(nb * 176);
  const L = new Uint8Array(QK_K);
  const scratch = asymScratch();
  for (let i = 0; i < nb; i++) {
    const xo = i * QK_K;
    const bo = i * 176;
    asymmetricKBlock(x, xo, 31, qw, xo % columns, out, bo, L, scratch);
    const qh = bo + 16;
    let ql = bo + 48;
    let m1 = 1;
    let m2 = 2;
    for (let n = 0; n < QK_K; n += 64) {
      for (let j = 0; j < 32; j++) {
        let l1 = L[n + j]!;
        if (l1 > 15) {
          l1 -= 16;
          out[qh + j] |= m1;
        }
        let l2 = L[n + j + 32]!;
        if (l2 > 15) {
          l2 -= 16;
          out[qh + j] |= m2;
        }
        out[ql + j] = l1 | (l2 << 4);
      }
      m1 <<= 2;
      m2 <<= 2;
      ql += 32;
    }
  }
  return out;
}

/** Decodes Q5_K super-blocks (ggml `dequantize_row_q5_K`). */
export function dequantizeQ5_K(bytes: Uint8Array, count: number): Float32Array {
  checkLength(count, 'Q5_K');
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let y = 0;
  for (let i = 0; i < count / QK_K; i++) {
    const bo = i * 176;
    const d = float16BitsToFloat32(view.getUint16(bo, true));
    const min = float16BitsToFloat32(view.getUint16(bo + 2, true));
    const qh = bo + 16;
    let ql = bo + 48;
    let u1 = 1;
    let u2 = 2;
    for (let j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32) {
      const [sc1, m1i] = scaleMinK4(is, bytes, bo + 4);
      const [sc2, m2i] = scaleMinK4(is + 1, bytes, bo + 4);
      const d1 = f32(d * sc1);
      const m1 = f32(min * m1i);
      const d2 = f32(d * sc2);
      const m2 = f32(min * m2i);
      for (let l = 0; l < 32; l++) out[y++] = f32(d1 * ((bytes[ql + l]! & 0xf) + (bytes[qh + l]! & u1 ? 16 : 0))) - m1;
      for (let l = 0; l < 32; l++) out[y++] = f32(d2 * ((bytes[ql + l]! >> 4) + (bytes[qh + l]! & u2 ? 16 : 0))) - m2;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
  return out;
}

/** Decodes Q4_K super-blocks (ggml `dequantize_row_q4_K`). */
export function dequantizeQ4_K(bytes: Uint8Array, count: number): Float32Array {
  checkLength(count, 'Q4_K');
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let y = 0;
  for (let i = 0; i < count / QK_K; i++) {
    const bo = i * 144;
    const d = float16BitsToFloat32(view.getUint16(bo, true));
    const min = float16BitsToFloat32(view.getUint16(bo + 2, true));
    let q = bo + 16;
    for (let j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
      const [sc1, m1i] = scaleMinK4(is, bytes, bo + 4);
      const [sc2, m2i] = scaleMinK4(is + 1, bytes, bo + 4);
      const d1 = f32(d * sc1);
      const m1 = f32(min * m1i);
      const d2 = f32(d * sc2);
      const m2 = f32(min * m2i);
      for (let l = 0; l < 32; l++) out[y++] = f32(d1 * (bytes[q + l]! & 0xf)) - m1;
      for (let l = 0; l < 32; l++) out[y++] = f32(d2 * (bytes[q + l]! >> 4)) - m2;
    }
  }
  return out;
}

/**
 * ggml `make_qx_quants` with `rmse_type = 1`: symmetric quantization of `n` values to -nmax..nmax-1 (stored + nmax)
 * with weights x^2 (or the importance weights `qw[qo..qo+n)` when given) and a search over 18 scales around
 * nmax / max. Returns the scale.
 */
export function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, L: Int8Array, lo: number, qw?: Float32Array, qo = 0): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  let iscale = f32(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i]!;
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * v))));
    L[lo + i] = l + nmax;
    const w = qw ? qw[qo + i]! : f32(v * v);
    sumlx = f32(sumlx + f32(f32(w * v) * l));
    suml2 = f32(suml2 + f32(f32(w * l) * l));
  }
  let scale = suml2 ? f32(sumlx / suml2) : 0;
  let best = f32(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f32(-f32(nmax + f32(f32(0.1) * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const v = x[xo + i]!;
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * v))));
      const w = qw ? qw[qo + i]! : f32(v * v);
      sumlx = f32(sumlx + f32(f32(w * v) * l));
      suml2 = f32(suml2 + f32(f32(w * l) * l));
    }
    if (suml2 > 0 && f32(sumlx * sumlx) > f32(best * suml2)) {
      for (let i = 0; i < n; i++) {
        const l = nearestInt(f32(iscale * x[xo + i]!));
        L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
      }
      scale = f32(sumlx / suml2);
      best = f32(scale * sumlx);
    }
  }
  return scale;
}

/**
 * Packs one Q6_K super-block's 256 six-bit codes (`L`, 0..63) at `out[bo]`: the low 4 bits into `ql` (128 bytes),
 * the high 2 bits into `qh` (64 bytes), in ggml's interleaved order (`quantize_row_q6_K_ref`).
 */
export function packQ6KCodes(L: ArrayLike<number>, out: Uint8Array, bo: number): void {
  for (let j = 0, ql = bo, qh = bo + 128; j < QK_K; j += 128, ql += 64, qh += 32) {
    for (let l = 0; l < 32; l++) {
      const a = L[j + l]!;
      const b = L[j + l + 32]!;
      const c = L[j + l + 64]!;
      const e = L[j + l + 96]!;
      out[ql + l] = (a & 0xf) | ((c & 0xf) << 4);
      out[ql + l + 32] = (b & 0xf) | ((e & 0xf) << 4);
      out[qh + l] = ((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6)) & 0xff;
    }
  }
}

/**
 * Quantizes float32 values (a multiple of 256) to Q6_K super-blocks (ggml `quantize_row_q6_K_ref`): per sub-block of
 * 16, `make_qx_quants(16, 32, rmse_type 1)`; the sub-block scales become int8 against d = -max_scale/128 (signed
 * extreme), then elements are re-quantized to -32..31 against the stored scales.
 *
 * With `importance` (one weight per column of the `[rows, columns]` matrix, llama.cpp's imatrix values), the
 * sub-block fit weighs element i by `importance[i % columns]` instead of x^2 (ggml `quantize_row_q6_K_impl`, what
 * `llama-quantize --imatrix` runs).
 *
 * @example
 * ```ts
 * quantizeQ6_K(row); // row.length / 256 * 210 bytes
 * quantizeQ6_K(weight.data, { columns: 512, importance }); // importance-weighted
 * ```
 */
export function quantizeQ6_K(x: Float32Array, options: KQuantImportance = {}): Uint8Array {
  checkLength(x.length, 'Q6_K');
  const qw = checkImportance(x.length, options);
  const columns = options.columns ?? x.length;
  const nb = x.length / QK_K;
  const out = new Uint8Array(nb * 210);
  const view = new DataView(out.buffer);
  const L = new Int8Array(QK_K);
  const scales = new Float32Array(16);
  for (let i = 0; i < nb; i++) {
    const xo = i * QK_K;
    const bo = i * 210;
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      const scale = makeQxQuants(16, 32, x, xo + 16 * ib, L, 16 * ib, qw, (xo % columns) + 16 * ib);
      scales[ib] = scale;
      const abs = Math.abs(scale);
      if (abs > maxAbsScale) {
        maxAbsScale = abs;
        maxScale = scale;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) continue; // all-zero block: every byte 0 (d = +0)
    const iscale = f32(-128 / maxScale);
    const dBits = float32ToFloat16Bits(f32(1 / iscale));
    view.setUint16(bo + 208, dBits, true);
    const sco = bo + 192;
    for (let ib = 0; ib < 16; ib++) view.setInt8(sco + ib, Math.min(127, nearestInt(f32(iscale * scales[ib]!))));
    const dStored = float16BitsToFloat32(dBits);
    for (let j = 0; j < 16; j++) {
      const d = f32(dStored * view.getInt8(sco + j));
      if (!d) continue;
      for (let ii = 0; ii < 16; ii++) {
        const l = nearestInt(f32(x[xo + 16 * j + ii]! / d));
        L[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32;
      }
    }
    packQ6KCodes(L, out, bo);
  }
  return out;
}

/** Decodes Q6_K super-blocks (ggml `dequantize_row_q6_K`). */
export function dequantizeQ6_K(bytes: Uint8Array, count: number): Float32Array {
  checkLength(count, 'Q6_K');
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < count / QK_K; i++) {
    const bo = i * 210;
    const d = float16BitsToFloat32(view.getUint16(bo + 208, true));
    for (let n = 0, ql = bo, qh = bo + 128, sc = bo + 192; n < QK_K; n += 128, ql += 64, qh += 32, sc += 8) {
      const y = i * QK_K + n;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = bytes[qh + l]!;
        const q1 = ((bytes[ql + l]! & 0xf) | ((h & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32]! & 0xf) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
        out[y + l] = f32(d * view.getInt8(sc + is)) * q1;
        out[y + l + 32] = f32(d * view.getInt8(sc + is + 2)) * q2;
        out[y + l + 64] = f32(d * view.getInt8(sc + is + 4)) * q3;
        out[y + l + 96] = f32(d * view.getInt8(sc + is + 6)) * q4;
      }
    }
  }
  return out;
}
