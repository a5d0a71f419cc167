/**
 * Conversions between float32 and the narrow float formats stored in model files: IEEE float16, bfloat16,
 * and the 8-bit formats F8_E4M3 (the "fn" variant: no infinities, one NaN pattern, max 448), F8_E5M2
 * (IEEE-like, max 57344) and F8_E8M0 (unsigned power of two, as in OCP MX scales).
 *
 * Decoders are exact (every narrow value is a float32). Encoders round to nearest, ties to even.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

let float16Table: Float32Array | undefined;

/** Float32 value of a float16 bit pattern (exact), computed without tables. */
function decodeFloat16Scalar(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function float16Lookup(): Float32Array {
  if (!float16Table) {
    float16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) float16Table[i] = decodeFloat16Scalar(i);
  }
  return float16Table;
}

/**
 * Float value of one IEEE 754 binary16 bit pattern.
 *
 * @example
 * ```ts
 * float16ToFloat32(0x3c00); // 1
 * float16ToFloat32(0x0001); // 5.960464477539063e-8 (smallest subnormal)
 * ```
 */
export function float16ToFloat32(bits: number): number {
  return decodeFloat16Scalar(bits & 0xffff);
}

/**
 * Float value of one bfloat16 bit pattern (the top 16 bits of a float32).
 *
 * @example
 * ```ts
 * bfloat16ToFloat32(0x3f80); // 1
 * ```
 */
export function bfloat16ToFloat32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/**
 * Float16 bit pattern nearest to `value` (round to nearest, ties to even; overflow gives infinity; NaN stays NaN).
 *
 * @example
 * ```ts
 * float32ToFloat16(1); // 0x3c00
 * float32ToFloat16(65520); // 0x7c00 (rounds up to infinity)
 * ```
 */
export function float32ToFloat16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal (or zero) result: value = m * 2^-24 with m = full mantissa * 2^(e - 14).
    if (e < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - e;
    let half = full >>> shift;
    const remainder = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  if (remainder > 0x1000 || (remainder === 0x1000 && half & 1)) half++; // a carry may overflow into infinity, which is correct
  return sign | half;
}

/**
 * Bfloat16 bit pattern nearest to `value` (round to nearest, ties to even; NaN stays a quiet NaN).
 *
 * @example
 * ```ts
 * float32ToBfloat16(1); // 0x3f80
 * ```
 */
export function float32ToBfloat16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Decodes an F8_E4M3 (fn) byte: bias 7, no infinity, `S.1111.111` is NaN. */
function decodeE4M3(byte: number): number {
  const sign = byte & 0x80 ? -1 : 1;
  const exponent = (byte >>> 3) & 0xf;
  const mantissa = byte & 7;
  if (exponent === 15 && mantissa === 7) return NaN;
  if (exponent === 0) return sign * mantissa * 2 ** -9;
  return sign * (1 + mantissa / 8) * 2 ** (exponent - 7);
}

/** Decodes an F8_E5M2 byte: the top byte of a float16. */
function decodeE5M2(byte: number): number {
  return decodeFloat16Scalar((byte & 0xff) << 8);
}

/** Decodes an F8_E8M0 byte: 2^(byte - 127), 255 is NaN. */
function decodeE8M0(byte: number): number {
  return byte === 255 ? NaN : 2 ** (byte - 127);
}

/** Which 8-bit float format. */
export type Float8Format = 'e4m3' | 'e5m2' | 'e8m0';

const float8Tables = new Map<Float8Format, Float32Array>();

/**
 * The 256-entry decode table of an 8-bit float format: `table[byte]` is the byte's value.
 *
 * @example
 * ```ts
 * float8Table('e4m3')[0x7e]; // 448
 * ```
 */
export function float8Table(format: Float8Format): Float32Array {
  let table = float8Tables.get(format);
  if (!table) {
    table = new Float32Array(256);
    const decode = format === 'e4m3' ? decodeE4M3 : format === 'e5m2' ? decodeE5M2 : decodeE8M0;
    for (let i = 0; i < 256; i++) table[i] = decode(i);
    float8Tables.set(format, table);
  }
  return table;
}

/** Sorted non-negative finite values of a format and their codes, for nearest-value search. */
const float8Positive = new Map<Float8Format, { values: Float64Array; codes: Uint8Array }>();

function positiveCodes(format: Float8Format): { values: Float64Array; codes: Uint8Array } {
  let entry = float8Positive.get(format);
  if (!entry) {
    const table = float8Table(format);
    const limit = format === 'e8m0' ? 256 : 128;
    const pairs: [number, number][] = [];
    for (let code = 0; code < limit; code++) {
      const v = table[code]!;
      if (Number.isFinite(v)) pairs.push([v, code]);
    }
    pairs.sort((a, b) => a[0] - b[0]);
    entry = { values: Float64Array.from(pairs, (p) => p[0]), codes: Uint8Array.from(pairs, (p) => p[1]) };
    float8Positive.set(format, entry);
  }
  return entry;
}

/**
 * The 8-bit code nearest to `value` (ties to the even code). Out-of-range values: `e4m3` gives NaN
 * (0x7f/0xff, like PyTorch casts to `float8_e4m3fn`), `e5m2` gives infinity; `e8m0` holds positive powers of two
 * only, so the sign is dropped, zero maps to the smallest code and values beyond 2^127 map to NaN (0xff).
 *
 * @example
 * ```ts
 * float32ToFloat8(448, 'e4m3'); // 0x7e
 * float32ToFloat8(-1.5, 'e5m2'); // 0xbe
 * ```
 */
export function float32ToFloat8(value: number, format: Float8Format): number {
  const nan = format === 'e4m3' ? 0x7f : format === 'e5m2' ? 0x7f : 0xff;
  if (Number.isNaN(value)) return nan;
  const negative = format !== 'e8m0' && (value < 0 || Object.is(value, -0));
  const signBit = negative ? 0x80 : 0;
  const magnitude = Math.abs(value);
  const { values, codes } = positiveCodes(format);
  const last = values.length - 1;
  const maxValue = values[last]!;
  if (magnitude > maxValue) {
    // Beyond the largest finite value: round to it when within half of the last gap (ties to even), else overflow.
    const gap = maxValue - values[last - 1]!;
    const limit = format === 'e8m0' ? maxValue * 1.5 : maxValue + gap / 2;
    if (magnitude < limit || (magnitude === limit && (codes[last]! & 1) === 0)) return signBit | codes[last]!;
    if (format === 'e5m2') return signBit | 0x7c;
    return signBit | nan;
  }
  // Binary search for the first value >= magnitude.
  let lo = 0;
  let hi = last;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid]! < magnitude) lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0 || values[lo] === magnitude) return signBit | codes[lo]!;
  const below = values[lo - 1]!;
  const above = values[lo]!;
  const dBelow = magnitude - below;
  const dAbove = above - magnitude;
  let pick: number;
  if (dBelow < dAbove) pick = lo - 1;
  else if (dAbove < dBelow) pick = lo;
  else pick = (codes[lo - 1]! & 1) === 0 ? lo - 1 : lo;
  return signBit | codes[pick]!;
}

/**
 * Decodes `count` float16 values from little-endian bytes into `out` (table lookup, exact).
 *
 * @example
 * ```ts
 * const out = new Float32Array(2);
 * decodeFloat16Array(new Uint8Array([0x00, 0x3c, 0x00, 0xc0]), out); // out = [1, -2]
 * ```
 */
export function decodeFloat16Array(bytes: Uint8Array, out: Float32Array): Float32Array {
  const table = float16Lookup();
  const n = out.length;
  for (let i = 0, j = 0; i < n; i++, j += 2) out[i] = table[bytes[j]! | (bytes[j + 1]! << 8)]!;
  return out;
}

/**
 * Decodes `out.length` bfloat16 values from little-endian bytes into `out` (exact).
 *
 * @example
 * ```ts
 * decodeBfloat16Array(new Uint8Array([0x80, 0x3f]), new Float32Array(1)); // [1]
 * ```
 */
export function decodeBfloat16Array(bytes: Uint8Array, out: Float32Array): Float32Array {
  const n = out.length;
  // Int32 words throughout (a bfloat16 is the high half of its float32): no unsigned results that leave V8's small
  // integers. The even-aligned case reads 16-bit words straight from the bytes (the platform is little-endian, which
  // the readers require).
  const bits = new Int32Array(out.buffer, out.byteOffset, n);
  if (bytes.byteOffset % 2 === 0) {
    const half = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    for (let i = 0; i < n; i++) bits[i] = half[i]! << 16;
    return out;
  }
  for (let i = 0, j = 0; i < n; i++, j += 2) bits[i] = (bytes[j]! | (bytes[j + 1]! << 8)) << 16;
  return out;
}
