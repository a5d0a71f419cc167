import { InvalidArgumentError, ShapeMismatchError, UnsupportedFormatError, type Granularity, type QuantizedTensor, type ScaleEncoding } from '@bitsmith/core';

/** Bit widths onnxruntime's `MatMulNBits` kernels accept (`matmul_nbits_helper.h`: "bits should be 2, 4 or 8"). */
export const MATMUL_NBITS_BITS: readonly number[] = [2, 4, 8];

/** Smallest `block_size` onnxruntime accepts; every block size must also be a power of two. */
export const MATMUL_NBITS_MIN_BLOCK_SIZE = 16;

/**
 * Largest `block_size` onnxruntime's CPU kernel accepts (1.30: "Only block sizes 16, 32, 64, 128, and 256 are
 * supported for MatMulNBits op").
 */
export const MATMUL_NBITS_MAX_BLOCK_SIZE = 256;

/**
 * The tensors and attributes of one `com.microsoft` `MatMulNBits` node: `Y = A · W^T` with `W` the `[N, K]` weight
 * (`N` outputs, `K` inputs), quantized in blocks of `blockSize` consecutive inputs of each output row.
 *
 * - `b`: uint8 `[N, kBlocks, blockSize * bits / 8]`; inside each block, code `i` occupies bits `[i*bits, (i+1)*bits)`
 *   (least significant first: for 4 bits, element `2j` is the low nibble of byte `j`, element `2j+1` the high one).
 *   When `K` is not a multiple of `blockSize`, the last block of a row is padded (with the zero point's code).
 * - `scales`: float32 `[N * kBlocks]`, row-major `[N, kBlocks]`.
 * - `zeroPoints`: uint8 `[N * ceil(kBlocks * bits / 8)]`, each row's zero points packed like `b`; absent means
 *   `2^(bits-1)` for every block (8 for 4 bits).
 * - value of element `(n, k)`: `(code - zeroPoint) * scale` of block `(n, floor(k / blockSize))`.
 */
export interface MatMulNBitsWeights {
  /** Inputs (`K` attribute): columns of the `[N, K]` weight. */
  readonly k: number;
  /** Outputs (`N` attribute): rows of the `[N, K]` weight. */
  readonly n: number;
  /** `bits` attribute: 2, 4 or 8. */
  readonly bits: number;
  /** `block_size` attribute: a power of two >= 16. */
  readonly blockSize: number;
  /** `ceil(K / blockSize)`. */
  readonly kBlocks: number;
  /** Packed codes, `[N, kBlocks, blockSize * bits / 8]`. */
  readonly b: Uint8Array;
  /** `[N * kBlocks]`. */
  readonly scales: Float32Array;
  /** Packed uint8 zero points, `[N * ceil(kBlocks * bits / 8)]`; absent for the default `2^(bits-1)`. */
  readonly zeroPoints?: Uint8Array;
}

/** What the reader needs to turn {@link MatMulNBitsWeights} back into the exact `QuantizedTensor` they came from. */
export interface MatMulNBitsTensorInfo {
  /** The tensor's granularity (`group` or `channel`). */
  readonly granularity: Granularity;
  /** The tensor's scale encoding (values are stored as float32 either way). */
  readonly scaleEncoding: ScaleEncoding;
  /** Whether the integer format was symmetric (no zero points stored). */
  readonly symmetric: boolean;
}

function isPowerOfTwo(v: number): boolean {
  return Number.isInteger(v) && v > 0 && (v & (v - 1)) === 0;
}

function nextPowerOfTwo(v: number): number {
  let p = 1;
  while (p < v) p *= 2;
  return p;
}

/**
 * The `block_size` a quantized tensor would be written with, or throws `UnsupportedFormatError` naming the
 * constraint onnxruntime imposes. Group granularity: the group size, which must be a power of two from 16 to 256.
 * Channel granularity (one scale per row): blocks of `min(256, nextPowerOfTwo(max(K, 16)))` inputs, each repeating
 * the row's scale and zero point (lossless), the tail of the last block padded (onnxruntime allows `K` to be a
 * non-multiple of `block_size`).
 *
 * @example
 * ```ts
 * matMulNBitsBlockSize(q); // 32 for int4 g32
 * ```
 */
export function matMulNBitsBlockSize(q: Pick<QuantizedTensor, 'shape' | 'granularity'>): number {
  const g = q.granularity;
  const k = q.shape[1];
  if (g.type === 'group') {
    if (!isPowerOfTwo(g.size) || g.size < MATMUL_NBITS_MIN_BLOCK_SIZE || g.size > MATMUL_NBITS_MAX_BLOCK_SIZE) {
      throw new UnsupportedFormatError(
        `MatMulNBits needs a block size that is a power of two >= ${MATMUL_NBITS_MIN_BLOCK_SIZE} and <= ${MATMUL_NBITS_MAX_BLOCK_SIZE} (onnxruntime rejects others); got group size ${g.size}. Quantize with group size 16, 32, 64, 128 or 256, or per channel`,
      );
    }
    return g.size;
  }
  if (g.type === 'channel') return Math.min(MATMUL_NBITS_MAX_BLOCK_SIZE, nextPowerOfTwo(Math.max(k, MATMUL_NBITS_MIN_BLOCK_SIZE)));
  throw new UnsupportedFormatError(`MatMulNBits stores one scale per block of inputs of each output row (group or channel granularity); got ${g.type} granularity`);
}

/**
 * Checks that a quantized tensor can be written as `MatMulNBits` and throws `UnsupportedFormatError` naming what does
 * not fit: the format must be `int` with 2, 4 or 8 bits (onnxruntime has no 3-bit kernel), without a tensor scale or
 * act-order permutation, with group (power of two >= 16) or channel granularity.
 *
 * @example
 * ```ts
 * checkMatMulNBits(q, 'model.layers.0.mlp.up_proj');
 * ```
 */
export function checkMatMulNBits(q: QuantizedTensor, name = 'tensor'): void {
  const f = q.format;
  if (f.type !== 'int') {
    throw new UnsupportedFormatError(`${name}: MatMulNBits stores uniform integer codes (int2, int4, int8, symmetric or with zero points); got format type '${f.type}'`);
  }
  if (!MATMUL_NBITS_BITS.includes(f.bits)) {
    throw new UnsupportedFormatError(`${name}: onnxruntime's MatMulNBits supports bits 2, 4 and 8 only; got int${f.bits}`);
  }
  if (q.tensorScale !== undefined && q.tensorScale !== 1) throw new UnsupportedFormatError(`${name}: MatMulNBits has no second-level tensor scale`);
  if (q.permutation) {
    throw new UnsupportedFormatError(`${name}: act-order permutations (g_idx) are not exported to MatMulNBits; quantize without actOrder or with staticGroups`);
  }
  if (q.shape[0] < 1 || q.shape[1] < 1) throw new InvalidArgumentError(name, `empty weight of shape [${q.shape.join(', ')}]`);
  if (q.codes.length !== q.shape[0] * q.shape[1]) throw new ShapeMismatchError(`${name}.codes`, [q.shape[0] * q.shape[1]], [q.codes.length]);
  matMulNBitsBlockSize(q);
  if (!f.symmetric && !q.zeroPoints) throw new InvalidArgumentError(name, 'an asymmetric int tensor needs zero points');
  if (q.zeroPointEncoding === 'float16') throw new UnsupportedFormatError(`${name}: MatMulNBits stores integer zero points; this tensor has float16 zero points (HQQ's default: use zeroPoint: 'integer')`);
}

/** Writes `bits`-bit value `v` at element `index` of a little-endian, least-significant-first bit stream. */
function putBits(out: Uint8Array, offset: number, index: number, bits: number, v: number): void {
  if (bits === 8) {
    out[offset + index] = v;
    return;
  }
  const bit = index * bits; // 2 and 4 bits never straddle a byte
  out[offset + (bit >> 3)]! |= v << (bit & 7);
}

function getBits(data: Uint8Array, offset: number, index: number, bits: number): number {
  if (bits === 8) return data[offset + index]!;
  const bit = index * bits;
  return (data[offset + (bit >> 3)]! >> (bit & 7)) & ((1 << bits) - 1);
}

/**
 * Packs a core `QuantizedTensor` (`[N, K]` codes, one scale per group) into `MatMulNBits` tensors, bit-exactly: codes
 * and zero points unchanged, scales as float32. Symmetric formats need no zero points (core's symmetric codes are
 * offset by `2^(bits-1)`, onnxruntime's default zero point).
 *
 * @throws UnsupportedFormatError when the tensor cannot be expressed (see {@link checkMatMulNBits}).
 * @example
 * ```ts
 * const w = packMatMulNBits(quantize(weight, { format: parseFormat('int4'), granularity: { type: 'group', size: 32 } }));
 * w.b.length; // N * (K / 32) * 16
 * ```
 */
export function packMatMulNBits(q: QuantizedTensor, name = 'tensor'): MatMulNBitsWeights {
  checkMatMulNBits(q, name);
  const [n, k] = q.shape;
  const bits = (q.format as { bits: number }).bits;
  const blockSize = matMulNBitsBlockSize(q);
  const kBlocks = Math.ceil(k / blockSize);
  const blob = (blockSize * bits) / 8;
  const groupsPerRow = q.granularity.type === 'group' ? k / q.granularity.size : 1;
  if (q.scales.length !== n * groupsPerRow) throw new ShapeMismatchError(`${name}.scales`, [n * groupsPerRow], [q.scales.length]);
  // Block b of row r takes group `groupOf(r, b)`: the same with group granularity, the row's one group per channel.
  const groupOf = (r: number, blk: number) => (groupsPerRow === 1 ? r : r * groupsPerRow + blk);
  const b = new Uint8Array(n * kBlocks * blob);
  const codes = q.codes;
  const limit = 1 << bits;
  const zp = q.zeroPoints;
  const defaultZero = 1 << (bits - 1);
  for (let r = 0; r < n; r++) {
    const rowOffset = r * kBlocks * blob;
    for (let c = 0; c < k; c++) {
      const code = codes[r * k + c]!;
      if (code >= limit) throw new InvalidArgumentError(`${name}.codes`, `code ${code} at [${r}, ${c}] does not fit in ${bits} bits`);
      putBits(b, rowOffset, c, bits, code);
    }
    // Pad the tail of the last block with the zero point's code, so padded elements decode to 0.
    const pad = zp ? zp[r * groupsPerRow + groupsPerRow - 1]! : defaultZero;
    for (let c = k; c < kBlocks * blockSize; c++) putBits(b, rowOffset, c, bits, pad);
  }
  const scales = new Float32Array(n * kBlocks);
  for (let r = 0; r < n; r++) for (let blk = 0; blk < kBlocks; blk++) scales[r * kBlocks + blk] = q.scales[groupOf(r, blk)]!;
  if (!zp) return { k, n, bits, blockSize, kBlocks, b, scales };
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const zeroPoints = new Uint8Array(n * zpRow);
  for (let r = 0; r < n; r++) {
    for (let blk = 0; blk < kBlocks; blk++) {
      const z = zp[groupOf(r, blk)]!;
      if (!Number.isInteger(z) || z < 0 || z >= limit) throw new InvalidArgumentError(`${name}.zeroPoints`, `zero point ${z} of row ${r} is not an integer in [0, ${limit - 1}]`);
      putBits(zeroPoints, r * zpRow, blk, bits, z);
    }
  }
  return { k, n, bits, blockSize, kBlocks, b, scales, zeroPoints };
}

/**
 * Unpacks `MatMulNBits` tensors into a core `QuantizedTensor` (the inverse of {@link packMatMulNBits}). Without
 * `info`, the granularity is inferred: one block per row is `channel`, otherwise `group` of `blockSize` (which must
 * then divide `K`); the format is symmetric exactly when there are no zero points; the scale encoding is `float32`.
 *
 * @example
 * ```ts
 * const q = unpackMatMulNBits(packMatMulNBits(original), { granularity: original.granularity, scaleEncoding: 'float16', symmetric: true });
 * ```
 */
export function unpackMatMulNBits(w: MatMulNBitsWeights, info?: MatMulNBitsTensorInfo): QuantizedTensor {
  const { k, n, bits, blockSize, kBlocks } = w;
  if (!MATMUL_NBITS_BITS.includes(bits)) throw new UnsupportedFormatError(`MatMulNBits with bits=${bits} is not supported (2, 4 or 8)`);
  const blob = (blockSize * bits) / 8;
  if (w.b.length !== n * kBlocks * blob) throw new ShapeMismatchError('MatMulNBits B', [n, kBlocks, blob], [w.b.length]);
  if (w.scales.length !== n * kBlocks) throw new ShapeMismatchError('MatMulNBits scales', [n * kBlocks], [w.scales.length]);
  const granularity: Granularity = info?.granularity ?? (kBlocks === 1 ? { type: 'channel' } : { type: 'group', size: blockSize });
  if (granularity.type === 'group' && (granularity.size !== blockSize || k % blockSize !== 0)) {
    throw new UnsupportedFormatError(`MatMulNBits block size ${blockSize} does not divide K = ${k}; core group granularity needs equal groups`);
  }
  // Channel granularity: every block of a row repeats the row's scale (and zero point); keep one per row.
  const groupsPerRow = granularity.type === 'channel' ? 1 : kBlocks;
  const codes = new Uint8Array(n * k);
  for (let r = 0; r < n; r++) {
    const rowOffset = r * kBlocks * blob;
    for (let c = 0; c < k; c++) codes[r * k + c] = getBits(w.b, rowOffset, c, bits);
  }
  const symmetric = info?.symmetric ?? !w.zeroPoints;
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  if (w.zeroPoints && w.zeroPoints.length !== n * zpRow) throw new ShapeMismatchError('MatMulNBits zero_points', [n * zpRow], [w.zeroPoints.length]);
  const defaultZero = 1 << (bits - 1);
  const zeroAt = (r: number, blk: number) => (w.zeroPoints ? getBits(w.zeroPoints, r * zpRow, blk, bits) : defaultZero);
  const scales = new Float32Array(n * groupsPerRow);
  const zeroPoints = symmetric ? undefined : new Float32Array(n * groupsPerRow);
  for (let r = 0; r < n; r++) {
    for (let blk = 0; blk < kBlocks; blk++) {
      const s = w.scales[r * kBlocks + blk]!;
      const z = zeroAt(r, blk);
      if (symmetric && z !== defaultZero) throw new UnsupportedFormatError(`a symmetric tensor must have every zero point at ${defaultZero}; row ${r} block ${blk} has ${z}`);
      const g = r * groupsPerRow + (groupsPerRow === 1 ? 0 : blk);
      if (groupsPerRow === 1 && blk > 0) {
        if (!Object.is(scales[g], s) || (zeroPoints && zeroPoints[g] !== z)) {
          throw new UnsupportedFormatError(`channel granularity needs one scale and zero point per row; row ${r} differs between blocks 0 and ${blk}`);
        }
        continue;
      }
      scales[g] = s;
      if (zeroPoints) zeroPoints[g] = z;
    }
  }
  return {
    shape: [n, k],
    format: { type: 'int', bits, symmetric },
    granularity,
    codes,
    scales,
    scaleEncoding: info?.scaleEncoding ?? 'float32',
    ...(zeroPoints ? { zeroPoints } : {}),
  };
}
