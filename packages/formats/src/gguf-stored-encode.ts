import { elementCodec, groupLayout, UnsupportedFormatError, type QuantizedTensor } from '@bitsmith/core';
import { GGML_BLOCK, type GgmlTypeName } from './gguf-constants.js';
import { f32, nearestInt } from './gguf-float32-math.js';
import { float16BitsToFloat32, float32ToFloat16Bits } from './gguf-float16.js';
import { makeQkx2Quants, makeQpQuants, makeQxQuants, packQ6KCodes, packScaleMinK4, scaleMinK4 } from './gguf-k-quant-blocks.js';
import { encodeGgmlTensor, decodeGgmlTensor } from './gguf-tensor-codec.js';

/**
 * How one tensor of a GGUF file was obtained from the recipe's result:
 * - `exact`: the stored codes and scales were written as they are; the file decodes to the calibrated weights bit
 *   for bit (Q8_0 / Q4_0 / Q5_0 from a matching symmetric int grid of groups of 32 with fp16 scales).
 * - `carried`: the stored codes were kept; scales (and Q4_1's offsets) were rounded to fp16, so values move by at
 *   most that rounding.
 * - `re-derived`: a k-quant (Q4_K, Q5_K, Q6_K) whose sub-block scales and mins were taken from the calibrated grid
 *   and quantized to the type's 6- or 8-bit sub-scales; codes re-rounded to the calibrated values (the recipe's
 *   codes survive wherever the sub-scale rounding leaves them nearest).
 * - `re-quantized`: the calibrated (dequantized) weights did not fit the type's grid (more levels than it holds,
 *   groups that straddle its blocks, a non-integer format), so ggml's quantizer ran on them: a second rounding on
 *   top of the recipe's. Reported as a warning.
 * - `quantized`: the layer had no calibrated result (embeddings, float layers): quantized from its float weights as
 *   `llama-quantize` does (with the importance matrix when given).
 */
export type GgufTensorPath = 'exact' | 'carried' | 're-derived' | 're-quantized' | 'quantized';

/** What {@link encodeGridForGguf} wrote for one tensor. */
export interface GgufGridEncoding {
  readonly bytes: Uint8Array;
  readonly path: GgufTensorPath;
  /** Blocks (32 for legacy types and IQ4, sub-blocks of 32 / 16 for k-quants) that had to be fitted anew. */
  readonly refittedBlocks: number;
  readonly blocks: number;
  /** sqrt(sum (decoded - calibrated)^2 / sum calibrated^2): how far the file moved from the recipe's weights. */
  readonly relativeDeviation: number;
}

/**
 * A grid tensor unpacked per element for encoding, in the row order the file uses: the code's value `k` (an integer
 * in `codeRange`), the offset `o` (minus the zero point; 0 for symmetric grids), the step `s` (scale) and the group
 * id, so that the weight is `(k + o) * s`.
 */
export interface GridElements {
  readonly rows: number;
  readonly columns: number;
  readonly codes: Int16Array;
  readonly offsets: Float32Array;
  readonly steps: Float32Array;
  readonly groups: Int32Array;
  /** The smallest and largest code value of the format (`-8..7` for symmetric int4, `0..15` asymmetric). */
  readonly codeRange: readonly [number, number];
}

/**
 * Unpacks a uniform integer grid into per-element codes, offsets, steps and group ids (see {@link GridElements}).
 *
 * @throws UnsupportedFormatError for formats other than integer grids (minifloats, NF4, MX: their levels are not
 *   uniform, so no GGML integer block holds them).
 * @example
 * ```ts
 * const g = gridElements(q); // g.codes[i] + g.offsets[i] times g.steps[i] is dequantize(q).data[i]
 * ```
 */
export function gridElements(q: QuantizedTensor): GridElements {
  if (q.format.type !== 'int') throw new UnsupportedFormatError(`${q.format.type} grids have no GGML block layout (only uniform integer grids map)`);
  const [rows, columns] = q.shape;
  const codec = elementCodec(q.format);
  const table = new Int16Array(codec.levels);
  for (let c = 0; c < codec.levels; c++) table[c] = codec.decode(c);
  const { ids } = groupLayout(rows, columns, q.granularity, q.permutation);
  const ts = q.tensorScale ?? 1;
  const n = rows * columns;
  const codes = new Int16Array(n);
  const offsets = new Float32Array(n);
  const steps = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = ids[i]!;
    codes[i] = table[q.codes[i]!]!;
    offsets[i] = q.zeroPoints ? -q.zeroPoints[g]! : 0;
    steps[i] = q.scales[g]! * ts;
  }
  return { rows, columns, codes, offsets, steps, groups: ids, codeRange: [table[0]!, table[codec.levels - 1]!] };
}

/**
 * Reorders the rows of every per-element array of a grid the way `reorder` reorders a float matrix (the q/k RoPE
 * permutation of the GGUF export).
 */
export function reorderGridRows(g: GridElements, reorder: <T extends Float32Array | Int16Array | Int32Array>(data: T) => T): GridElements {
  return { ...g, codes: reorder(g.codes), offsets: reorder(g.offsets), steps: reorder(g.steps), groups: reorder(g.groups) };
}

/** True when elements `[o, o+n)` share one group (one step and one offset). */
function oneGroup(g: GridElements, o: number, n: number): boolean {
  const id = g.groups[o]!;
  for (let i = 1; i < n; i++) if (g.groups[o + i] !== id) return false;
  return true;
}

function relativeDeviation(decoded: Float32Array, target: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < target.length; i++) {
    const d = decoded[i]! - target[i]!;
    num += d * d;
    den += target[i]! * target[i]!;
  }
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}

interface BlockResult {
  readonly bytes: Uint8Array;
  readonly refitted: number;
  readonly blocks: number;
  /** Blocks whose scale (or offset) was rounded to fp16 on the way. */
  readonly rounded: number;
}

const fp16Exact = (x: number): boolean => float16BitsToFloat32(float32ToFloat16Bits(x)) === x;

/** Q8_0 / Q4_0 / Q5_0 (w = d (q - half)) where a block of 32 is one group of integer levels in range; else ggml's quantizer on the block. */
function encodeLegacySymmetric(type: 'Q8_0' | 'Q4_0' | 'Q5_0', g: GridElements, target: Float32Array): BlockResult {
  const { bytes: bb, half } = { Q8_0: { bytes: 34, half: 128 }, Q4_0: { bytes: 18, half: 8 }, Q5_0: { bytes: 22, half: 16 } }[type];
  const nb = target.length / 32;
  const out = new Uint8Array(nb * bb);
  const view = new DataView(out.buffer);
  const t = new Int16Array(32);
  let refitted = 0;
  let rounded = 0;
  for (let b = 0; b < nb; b++) {
    const o = b * 32;
    const bo = b * bb;
    let fits = oneGroup(g, o, 32) && Number.isInteger(g.offsets[o]!);
    for (let j = 0; fits && j < 32; j++) {
      t[j] = g.codes[o + j]! + g.offsets[o + j]!;
      fits = t[j]! >= -half && t[j]! < half;
    }
    if (!fits) {
      out.set(encodeGgmlTensor(type, target.subarray(o, o + 32)), bo);
      refitted++;
      continue;
    }
    if (!fp16Exact(g.steps[o]!)) rounded++;
    view.setUint16(bo, float32ToFloat16Bits(g.steps[o]!), true);
    if (type === 'Q8_0') {
      for (let j = 0; j < 32; j++) view.setInt8(bo + 2 + j, t[j]!);
    } else if (type === 'Q4_0') {
      for (let j = 0; j < 16; j++) out[bo + 2 + j] = (t[j]! + 8) | ((t[j + 16]! + 8) << 4);
    } else {
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        const a = t[j]! + 16;
        const c = t[j + 16]! + 16;
        out[bo + 6 + j] = (a & 0xf) | ((c & 0xf) << 4);
        qh |= ((a >> 4) & 1) << j;
        qh |= ((c >> 4) & 1) << (j + 16);
      }
      view.setUint32(bo + 2, qh >>> 0, true);
    }
  }
  return { bytes: out, refitted, blocks: nb, rounded };
}

/** Q4_1 (w = d q + m, q in 0..15) where a block of 32 is one group of a grid with at most 16 codes; else ggml's quantizer. */
function encodeQ4_1(g: GridElements, target: Float32Array): BlockResult {
  const nb = target.length / 32;
  const out = new Uint8Array(nb * 20);
  const view = new DataView(out.buffer);
  const [lo, hi] = g.codeRange;
  let refitted = 0;
  let rounded = 0;
  for (let b = 0; b < nb; b++) {
    const o = b * 32;
    const bo = b * 20;
    if (hi - lo > 15 || !oneGroup(g, o, 32)) {
      out.set(encodeGgmlTensor('Q4_1', target.subarray(o, o + 32)), bo);
      refitted++;
      continue;
    }
    const s = g.steps[o]!;
    const m = f32((lo + g.offsets[o]!) * s);
    if (!fp16Exact(s) || !fp16Exact(m) || f32(m) !== (lo + g.offsets[o]!) * s) rounded++;
    view.setUint16(bo, float32ToFloat16Bits(s), true);
    view.setUint16(bo + 2, float32ToFloat16Bits(m), true);
    for (let j = 0; j < 16; j++) out[bo + 4 + j] = (g.codes[o + j]! - lo) | ((g.codes[o + j + 16]! - lo) << 4);
  }
  return { bytes: out, refitted, blocks: nb, rounded };
}

/**
 * Q4_K / Q5_K (w = d sc q - dmin m per sub-block of 32, q in 0..nmax) re-derived from a grid: a sub-block that is one
 * group of a grid with at most nmax + 1 codes and a non-negative offset takes its scale s and min -(lo + o) s from
 * the grid exactly; other sub-blocks are fitted to the calibrated values (ggml `make_qkx2/3_quants`). The 8 scales
 * and mins of a super-block are then quantized to 6 bits (ggml `make_qp_quants`, weighted by each sub-block's
 * weight), and every element re-rounded to its calibrated value against the stored scales.
 */
function encodeAsymmetricK(nmax: 15 | 31, g: GridElements, target: Float32Array, importance: Float32Array | undefined): BlockResult {
  const bytesPerBlock = nmax === 15 ? 144 : 176;
  const columns = g.columns;
  const nb = target.length / 256;
  const out = new Uint8Array(nb * bytesPerBlock);
  const view = new DataView(out.buffer);
  const [lo, hi] = g.codeRange;
  const L = new Uint8Array(256);
  const laux = new Uint8Array(32);
  const weights = new Float32Array(32);
  const elementWeights = new Float32Array(256);
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  const sw = new Float32Array(8);
  const ls = new Uint8Array(8);
  const lm = new Uint8Array(8);
  let refitted = 0;
  for (let i = 0; i < nb; i++) {
    const xo = i * 256;
    const bo = i * bytesPerBlock;
    const co = xo % columns;
    let sumX2 = 0;
    for (let l = 0; l < 256; l++) sumX2 = f32(sumX2 + f32(target[xo + l]! * target[xo + l]!));
    const sigma2 = f32(f32(2 * sumX2) / 256);
    for (let j = 0; j < 8; j++) {
      const o = xo + 32 * j;
      let sumSub = 0;
      for (let l = 0; l < 32; l++) sumSub = f32(sumSub + f32(target[o + l]! * target[o + l]!));
      const avX = f32(Math.sqrt(f32(sumSub / 32)));
      let sumw = 0;
      for (let l = 0; l < 32; l++) {
        const v = target[o + l]!;
        weights[l] = importance ? f32(importance[co + 32 * j + l]! * f32(Math.sqrt(f32(sigma2 + f32(v * v))))) : f32(avX + Math.abs(v));
        elementWeights[32 * j + l] = importance ? importance[co + 32 * j + l]! : 1;
        sumw = f32(sumw + weights[l]!);
      }
      sw[j] = sumw;
      const minValue = -(lo + g.offsets[o]!) * g.steps[o]!;
      if (hi - lo <= nmax && oneGroup(g, o, 32) && minValue >= 0) {
        scales[j] = g.steps[o]!;
        mins[j] = f32(minValue);
      } else {
        const [scale, min] = importance ? makeQkx2Quants(32, nmax, target, o, weights, L, 32 * j, laux, f32(-0.9), f32(0.05), 36) : nmax === 15 ? makeQkx2Quants(32, 15, target, o, weights, L, 32 * j, laux, -1, f32(0.1), 20) : makeQkx2Quants(32, 31, target, o, weights, L, 32 * j, laux, f32(-0.5), f32(0.1), 15);
        scales[j] = scale;
        mins[j] = min;
        refitted++;
      }
    }
    const d = makeQpQuants(8, 63, scales, ls, sw);
    const dmin = makeQpQuants(8, 63, mins, lm, sw);
    const dBits = float32ToFloat16Bits(d);
    const dminBits = float32ToFloat16Bits(dmin);
    view.setUint16(bo, dBits, true);
    view.setUint16(bo + 2, dminBits, true);
    const dStored = float16BitsToFloat32(dBits);
    const dminStored = float16BitsToFloat32(dminBits);
    // Each sub-block's 6-bit scale and min are refined by a 3 x 3 search around the fitted pair, with the elements
    // re-rounded to the calibrated values, minimising the weighted error (the sub-scale quantization is the only
    // loss of this path, so it pays to choose the pair that loses least on these values).
    for (let j = 0; j < 8; j++) {
      const o = xo + 32 * j;
      let best = Infinity;
      let bestS = ls[j]!;
      let bestM = lm[j]!;
      for (let a = Math.max(0, ls[j]! - 1); a <= Math.min(63, ls[j]! + 1); a++) {
        const dj = f32(dStored * a);
        for (let b = Math.max(0, lm[j]! - 1); b <= Math.min(63, lm[j]! + 1); b++) {
          const dm = f32(dminStored * b);
          let err = 0;
          for (let ii = 0; ii < 32; ii++) {
            const x = target[o + ii]!;
            const l = dj ? Math.max(0, Math.min(nmax, nearestInt(f32(f32(x + dm) / dj)))) : 0;
            const e = f32(f32(dj * l) - dm) - x;
            err += elementWeights[32 * j + ii]! * e * e;
          }
          if (err < best) {
            best = err;
            bestS = a;
            bestM = b;
          }
        }
      }
      packScaleMinK4(out, bo + 4, j, bestS, bestM);
    }
    L.fill(0);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(j, out, bo + 4);
      const dj = f32(dStored * sc);
      if (!dj) continue;
      const dm = f32(dminStored * m);
      for (let ii = 0; ii < 32; ii++) L[32 * j + ii] = Math.max(0, Math.min(nmax, nearestInt(f32(f32(target[xo + 32 * j + ii]! + dm) / dj))));
    }
    if (nmax === 15) {
      for (let j = 0; j < 256; j += 64) {
        for (let l = 0; l < 32; l++) out[bo + 16 + j / 2 + l] = L[j + l]! | (L[j + l + 32]! << 4);
      }
    } else {
      const qh = bo + 16;
      let ql = bo + 48;
      let m1 = 1;
      let m2 = 2;
      for (let n = 0; n < 256; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
        for (let j = 0; j < 32; j++) {
          const l1 = L[n + j]!;
          const l2 = L[n + j + 32]!;
          if (l1 > 15) out[qh + j] |= m1;
          if (l2 > 15) out[qh + j] |= m2;
          out[ql + j] = (l1 & 0xf) | ((l2 & 0xf) << 4);
        }
      }
    }
  }
  return { bytes: out, refitted, blocks: nb * 8, rounded: 0 };
}

/**
 * Q6_K (w = d sc (q - 32) per sub-block of 16, sc int8) re-derived from a grid: a sub-block that is one group with
 * integer levels k + o in -32..31 takes the grid's step as its scale; others are fitted (ggml `make_qx_quants`). The
 * 16 scales are quantized to int8 as ggml does (d = -max/128), and elements re-rounded to their calibrated values.
 */
function encodeQ6_K(g: GridElements, target: Float32Array, importance: Float32Array | undefined): BlockResult {
  const columns = g.columns;
  const nb = target.length / 256;
  const out = new Uint8Array(nb * 210);
  const view = new DataView(out.buffer);
  const L = new Int8Array(256);
  const scales = new Float32Array(16);
  let refitted = 0;
  for (let i = 0; i < nb; i++) {
    const xo = i * 256;
    const bo = i * 210;
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      const o = xo + 16 * ib;
      let fits = oneGroup(g, o, 16) && Number.isInteger(g.offsets[o]!);
      for (let j = 0; fits && j < 16; j++) {
        const t = g.codes[o + j]! + g.offsets[o + j]!;
        fits = t >= -32 && t <= 31;
      }
      if (fits) scales[ib] = g.steps[o]!;
      else {
        scales[ib] = makeQxQuants(16, 32, target, o, L, 16 * ib, importance, (xo % columns) + 16 * ib);
        refitted++;
      }
      const abs = Math.abs(scales[ib]!);
      if (abs > maxAbsScale) {
        maxAbsScale = abs;
        maxScale = scales[ib]!;
      }
    }
    if (maxAbsScale < 1e-15) continue;
    const iscale = f32(-128 / maxScale);
    view.setUint16(bo + 208, float32ToFloat16Bits(f32(1 / iscale)), true);
    for (let ib = 0; ib < 16; ib++) view.setInt8(bo + 192 + ib, Math.min(127, nearestInt(f32(iscale * scales[ib]!))));
    const dStored = float16BitsToFloat32(view.getUint16(bo + 208, true));
    L.fill(0);
    for (let j = 0; j < 16; j++) {
      const d = f32(dStored * view.getInt8(bo + 192 + j));
      if (!d) continue;
      for (let ii = 0; ii < 16; ii++) L[16 * j + ii] = Math.max(-32, Math.min(31, nearestInt(f32(target[xo + 16 * j + ii]! / d)))) + 32;
    }
    packQ6KCodes(L, out, bo);
  }
  return { bytes: out, refitted, blocks: nb * 16, rounded: 0 };
}

/**
 * Encodes a calibrated grid tensor as a GGML type, keeping the recipe's result wherever the type can hold it (see
 * {@link GgufTensorPath}): Q8_0 / Q4_0 / Q5_0 / Q4_1 carry the codes and scales of groups of 32 (or of larger groups
 * and per-channel scales, which split into blocks of 32); Q4_K / Q5_K / Q6_K re-derive their sub-block scales from
 * the grid; blocks the type cannot hold, and IQ4_NL / IQ4_XS (a non-uniform table), are fitted to the calibrated
 * values with ggml's quantizer (importance-weighted when `importance` is given).
 *
 * @param grid The grid per element, rows in file order ({@link gridElements}, then {@link reorderGridRows}).
 * @param target The calibrated weights `(k + o) * s` in the same order (the dequantized stored form).
 * @param type GGML type; `columns` must be a multiple of its block size.
 * @param importance llama.cpp importance per column (imatrix), for fitted blocks and the k-quants' sub-scale fit.
 * @example
 * ```ts
 * const g = gridElements(storedGrid(form)!);
 * const { bytes, path } = encodeGridForGguf(g, decodeStored(form).data, 'Q4_0'); // path 'exact' for int4 g32 fp16 scales
 * ```
 */
export function encodeGridForGguf(grid: GridElements, target: Float32Array, type: GgmlTypeName, importance?: Float32Array): GgufGridEncoding {
  const block = GGML_BLOCK[type];
  if (grid.columns % block.elements !== 0) throw new UnsupportedFormatError(`rows of ${grid.columns} do not split into ${type} blocks of ${block.elements}`);
  let result: BlockResult;
  switch (type) {
    case 'Q8_0':
    case 'Q4_0':
    case 'Q5_0':
      result = encodeLegacySymmetric(type, grid, target);
      break;
    case 'Q4_1':
      result = encodeQ4_1(grid, target);
      break;
    case 'Q4_K':
      result = encodeAsymmetricK(15, grid, target, importance);
      break;
    case 'Q5_K':
      result = encodeAsymmetricK(31, grid, target, importance);
      break;
    case 'Q6_K':
      result = encodeQ6_K(grid, target, importance);
      break;
    default: {
      const bytes = encodeGgmlTensor(type, target, importance ? { columns: grid.columns, importance } : { columns: grid.columns });
      const decoded = decodeGgmlTensor(type, bytes, target.length);
      return { bytes, path: type === 'F32' ? 'exact' : 're-quantized', refittedBlocks: type === 'F32' || type === 'F16' ? 0 : target.length / block.elements, blocks: target.length / block.elements, relativeDeviation: relativeDeviation(decoded, target) };
    }
  }
  const decoded = decodeGgmlTensor(type, result.bytes, target.length);
  const deviation = relativeDeviation(decoded, target);
  const legacy = type === 'Q8_0' || type === 'Q4_0' || type === 'Q5_0' || type === 'Q4_1';
  const path: GgufTensorPath = result.refitted > 0 ? 're-quantized' : !legacy ? 're-derived' : result.rounded === 0 && deviation === 0 ? 'exact' : 'carried';
  return { bytes: result.bytes, path, refittedBlocks: result.refitted, blocks: result.blocks, relativeDeviation: deviation };
}
