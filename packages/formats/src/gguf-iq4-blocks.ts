import { InvalidArgumentError } from '@bitsmith/core';
import { f32, GROUP_MAX_EPS, nearestInt } from './gguf-float32-math.js';
import { float16BitsToFloat32, float32ToFloat16Bits } from './gguf-float16.js';

/**
 * ggml's 4-bit non-linear quants, bit-exact with ggml-quants.c `quantize_iq4_nl` / `quantize_iq4_xs` (the paths
 * `llama-quantize` runs, with or without an importance matrix) and `dequantize_row_iq4_{nl,xs}`:
 *
 * | type | block | bytes | layout | value |
 * |---|---|---|---|---|
 * | IQ4_NL | 32 | 18 | fp16 d, qs[16]: element j low nibble, j+16 high | d * K[q] |
 * | IQ4_XS | 256 | 136 | fp16 d, uint16 scales_h, scales_l[4], qs[128] (per 32: as IQ4_NL) | d * (ls - 32) * K[q], ls 6 bits per 32 |
 *
 * K is the fixed non-uniform table {@link IQ4_NL_VALUES} (denser near zero, like the distribution of weights).
 */
const QK4_NL = 32;
const QK_K = 256;

/** ggml's `kvalues_iq4nl`: the 16 levels of IQ4_NL and IQ4_XS. */
export const IQ4_NL_VALUES: Int8Array = Int8Array.from([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]);

/** ggml `best_index_int8`: index of the table value nearest to `x` (the upper one on ties), by bisection. */
function bestIndex(values: Int8Array, x: number): number {
  const n = values.length;
  if (x <= values[0]!) return 0;
  if (x >= values[n - 1]!) return n - 1;
  let ml = 0;
  let mu = n - 1;
  while (mu - ml > 1) {
    const mav = (ml + mu) >> 1;
    if (x < values[mav]!) mu = mav;
    else ml = mav;
  }
  return f32(x - values[mu - 1]!) < f32(values[mu]! - x) ? mu - 1 : mu;
}

/** Options of the IQ4 encoders: llama.cpp's imatrix, one weight per column of a `[rows, columns]` matrix. */
export interface Iq4Importance {
  /** Row length (a multiple of the block size). Default: the whole input is one row. */
  readonly columns?: number;
  /** One weight per column; without it the weights are x^2 (what `llama-quantize` does without `--imatrix`). */
  readonly importance?: Float32Array;
}

/**
 * ggml `quantize_row_iq4_nl_impl` with `ntry = 7` on one super-block of `superBlock` elements at `x[xo..]`, sub-blocks
 * of 32: fits each sub-block's scale by a weighted search over 15 candidate scales, then (IQ4_XS) quantizes the
 * sub-block scales to 6 bits against d = -max/32, or (IQ4_NL, one sub-block) stores the scale as fp16; writes d,
 * the scales and the nibbles at `out[bo..]`.
 */
function iq4Block(x: Float32Array, xo: number, superBlock: number, qw: Float32Array | undefined, qo: number, out: Uint8Array, bo: number, L: Uint8Array, scales: Float32Array, weight: Float32Array): void {
  const values = IQ4_NL_VALUES;
  const ntry = 7;
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let sigma2 = 0;
  for (let j = 0; j < superBlock; j++) sigma2 = f32(sigma2 + f32(x[xo + j]! * x[xo + j]!));
  sigma2 = f32(sigma2 * f32(2 / superBlock));
  const xs = superBlock === QK4_NL ? bo + 2 : bo + 8;
  out.fill(0, xs, xs + superBlock / 2);
  view.setUint16(bo, 0, true);
  let maxScale = 0;
  let amaxScale = 0;
  const nb = superBlock / 32;
  for (let ib = 0; ib < nb; ib++) {
    const xb = xo + ib * 32;
    const lb = ib * 32;
    for (let j = 0; j < 32; j++) {
      const v = x[xb + j]!;
      weight[j] = qw ? f32(qw[qo + ib * 32 + j]! * f32(Math.sqrt(f32(sigma2 + f32(v * v))))) : f32(v * v);
    }
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const ax = Math.abs(x[xb + j]!);
      if (ax > amax) {
        amax = ax;
        max = x[xb + j]!;
      }
    }
    if (amax < GROUP_MAX_EPS) {
      scales[ib] = 0;
      continue;
    }
    let d = f32(-max / values[0]!);
    let id = f32(1 / d);
    let sumqx = 0;
    let sumq2 = 0;
    for (let j = 0; j < 32; j++) {
      const l = bestIndex(values, f32(id * x[xb + j]!));
      L[lb + j] = l;
      const q = values[l]!;
      const w = weight[j]!;
      sumqx = f32(sumqx + f32(f32(w * q) * x[xb + j]!));
      sumq2 = f32(sumq2 + f32(f32(w * q) * q));
    }
    d = sumq2 > 0 ? f32(sumqx / sumq2) : 0;
    let best = f32(d * sumqx);
    for (let itry = -ntry; itry <= ntry; itry++) {
      id = f32((itry + values[0]!) / max);
      sumqx = 0;
      sumq2 = 0;
      for (let j = 0; j < 32; j++) {
        const q = values[bestIndex(values, f32(id * x[xb + j]!))]!;
        const w = weight[j]!;
        sumqx = f32(sumqx + f32(f32(w * q) * x[xb + j]!));
        sumq2 = f32(sumq2 + f32(f32(w * q) * q));
      }
      if (sumq2 > 0 && f32(sumqx * sumqx) > f32(best * sumq2)) {
        d = f32(sumqx / sumq2);
        best = f32(d * sumqx);
      }
    }
    scales[ib] = d;
    if (Math.abs(d) > amaxScale) {
      amaxScale = Math.abs(d);
      maxScale = d;
    }
  }
  if (nb > 1) {
    view.setUint16(bo + 2, 0, true);
    const d = f32(-maxScale / 32);
    view.setUint16(bo, float32ToFloat16Bits(d), true);
    const id = d ? f32(1 / d) : 0;
    let scalesH = 0;
    for (let ib = 0; ib < nb; ib++) {
      let l = nearestInt(f32(id * scales[ib]!));
      l = Math.max(-32, Math.min(31, l));
      const dl = f32(d * l);
      const idl = dl ? f32(1 / dl) : 0;
      for (let j = 0; j < 32; j++) L[ib * 32 + j] = bestIndex(values, f32(idl * x[xo + ib * 32 + j]!));
      l += 32;
      const lo = l & 0xf;
      if (ib % 2 === 0) out[bo + 4 + (ib >> 1)] = lo;
      else out[bo + 4 + (ib >> 1)] |= lo << 4;
      scalesH |= (l >> 4) << (2 * ib);
    }
    view.setUint16(bo + 2, scalesH, true);
  } else {
    view.setUint16(bo, float32ToFloat16Bits(scales[0]!), true);
    const id = scales[0] ? f32(1 / scales[0]!) : 0;
    for (let j = 0; j < superBlock; j++) L[j] = bestIndex(values, f32(id * x[xo + j]!));
  }
  for (let i = 0; i < superBlock / 32; i++) {
    for (let j = 0; j < 16; j++) out[xs + 16 * i + j] = L[32 * i + j]! | (L[32 * i + 16 + j]! << 4);
  }
}

function encodeIq4(x: Float32Array, superBlock: number, bytesPerBlock: number, type: string, options: Iq4Importance): Uint8Array {
  const columns = options.columns ?? x.length;
  if (columns % superBlock !== 0 || x.length % columns !== 0) throw new InvalidArgumentError('columns', `${type} needs rows of a multiple of ${superBlock} elements that divide ${x.length}, got ${columns}`);
  const qw = options.importance;
  if (qw !== undefined) {
    if (qw.length !== columns) throw new InvalidArgumentError('importance', `expected one weight per column (${columns}), got ${qw.length}`);
    for (let i = 0; i < qw.length; i++) if (!(qw[i]! >= 0)) throw new InvalidArgumentError('importance', `weight ${i} is ${qw[i]}; expected a finite number >= 0`);
  }
  const nb = x.length / superBlock;
  const out = new Uint8Array(nb * bytesPerBlock);
  const L = new Uint8Array(superBlock);
  const scales = new Float32Array(superBlock / 32);
  const weight = new Float32Array(32);
  for (let i = 0; i < nb; i++) iq4Block(x, i * superBlock, superBlock, qw, (i * superBlock) % columns, out, i * bytesPerBlock, L, scales, weight);
  return out;
}

/**
 * Quantizes float32 values (a multiple of 32) to IQ4_NL blocks (ggml `quantize_iq4_nl`, as `llama-quantize` runs it):
 * per block of 32, one fp16 scale fitted by a weighted least-squares search over 15 candidates; each element takes
 * the nearest of the 16 levels of {@link IQ4_NL_VALUES} times the scale. Weights are x^2, or
 * `importance[column] * sqrt(2 mean x^2 + x^2)` with llama.cpp's imatrix.
 *
 * @example
 * ```ts
 * quantizeIq4Nl(weight.data, { columns: 512, importance }); // 18 bytes per 32 weights (4.5 bits)
 * ```
 */
export function quantizeIq4Nl(x: Float32Array, options: Iq4Importance = {}): Uint8Array {
  return encodeIq4(x, QK4_NL, 18, 'IQ4_NL', options);
}

/**
 * Quantizes float32 values (a multiple of 256) to IQ4_XS super-blocks (ggml `quantize_iq4_xs`): the IQ4_NL fit per
 * sub-block of 32, then the sub-block scales quantized to 6 bits (-32..31) against one fp16 d per 256 elements
 * (4.25 bits per weight).
 *
 * @example
 * ```ts
 * quantizeIq4Xs(weight.data, { columns: 512, importance }); // 136 bytes per 256 weights
 * ```
 */
export function quantizeIq4Xs(x: Float32Array, options: Iq4Importance = {}): Uint8Array {
  return encodeIq4(x, QK_K, 136, 'IQ4_XS', options);
}

/** Decodes IQ4_NL blocks (ggml `dequantize_row_iq4_nl`). */
export function dequantizeIq4Nl(bytes: Uint8Array, count: number): Float32Array {
  if (count % QK4_NL !== 0) throw new InvalidArgumentError('count', `IQ4_NL needs a multiple of ${QK4_NL} elements, got ${count}`);
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < count / QK4_NL; i++) {
    const bo = i * 18;
    const d = float16BitsToFloat32(view.getUint16(bo, true));
    for (let j = 0; j < 16; j++) {
      const q = bytes[bo + 2 + j]!;
      out[i * 32 + j] = d * IQ4_NL_VALUES[q & 0xf]!;
      out[i * 32 + j + 16] = d * IQ4_NL_VALUES[q >> 4]!;
    }
  }
  return out;
}

/** Decodes IQ4_XS super-blocks (ggml `dequantize_row_iq4_xs`). */
export function dequantizeIq4Xs(bytes: Uint8Array, count: number): Float32Array {
  if (count % QK_K !== 0) throw new InvalidArgumentError('count', `IQ4_XS needs a multiple of ${QK_K} elements, got ${count}`);
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < count / QK_K; i++) {
    const bo = i * 136;
    const d = float16BitsToFloat32(view.getUint16(bo, true));
    const scalesH = view.getUint16(bo + 2, true);
    for (let ib = 0; ib < 8; ib++) {
      const ls = ((bytes[bo + 4 + (ib >> 1)]! >> (4 * (ib % 2))) & 0xf) | (((scalesH >> (2 * ib)) & 3) << 4);
      const dl = f32(d * (ls - 32));
      const qs = bo + 8 + 16 * ib;
      const y = i * QK_K + 32 * ib;
      for (let j = 0; j < 16; j++) {
        out[y + j] = dl * IQ4_NL_VALUES[bytes[qs + j]! & 0xf]!;
        out[y + j + 16] = dl * IQ4_NL_VALUES[bytes[qs + j]! >> 4]!;
      }
    }
  }
  return out;
}
