import { InvalidArgumentError } from './errors.js';

/**
 * A binary floating-point format of at most 16 bits, defined generically: one sign bit, `exponentBits`,
 * `mantissaBits`, an exponent `bias`, and how the all-ones exponent is used.
 *
 * - `specials: 'ieee'`: the all-ones exponent encodes infinities (mantissa 0) and NaN (otherwise), as IEEE 754 and FP8 E5M2 do.
 * - `specials: 'nan-only'`: only the all-ones bit pattern (exponent and mantissa all ones) is NaN; there are no infinities.
 *   This is the OCP FP8 "fn" convention (E4M3, max 448).
 * - `specials: 'none'`: every pattern is a finite number (FP6 E2M3/E3M2, FP4 E2M1).
 */
export interface MinifloatSpec {
  readonly exponentBits: number;
  readonly mantissaBits: number;
  /** Exponent bias. Default `2^(exponentBits-1) - 1`. */
  readonly bias?: number;
  readonly specials: 'ieee' | 'nan-only' | 'none';
  /** Whether a zero exponent encodes subnormals (true) or flushes to zero. Default true. */
  readonly subnormals?: boolean;
}

/** OCP FP8 E4M3 ("fn": no infinities, one NaN pattern), max 448. */
export const FP8_E4M3: MinifloatSpec = { exponentBits: 4, mantissaBits: 3, specials: 'nan-only' };
/** OCP FP8 E5M2 (IEEE-style infinities and NaNs), max 57344. */
export const FP8_E5M2: MinifloatSpec = { exponentBits: 5, mantissaBits: 2, specials: 'ieee' };
/** OCP FP6 E2M3, max 7.5. */
export const FP6_E2M3: MinifloatSpec = { exponentBits: 2, mantissaBits: 3, specials: 'none' };
/** OCP FP6 E3M2, max 28. */
export const FP6_E3M2: MinifloatSpec = { exponentBits: 3, mantissaBits: 2, specials: 'none' };
/** OCP FP4 E2M1: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives. */
export const FP4_E2M1: MinifloatSpec = { exponentBits: 2, mantissaBits: 1, specials: 'none' };
/** IEEE 754 half precision (binary16). */
export const FLOAT16: MinifloatSpec = { exponentBits: 5, mantissaBits: 10, specials: 'ieee' };
/** bfloat16: float32's exponent with 7 mantissa bits. */
export const BFLOAT16: MinifloatSpec = { exponentBits: 8, mantissaBits: 7, specials: 'ieee' };

/**
 * An exact codec for one minifloat format: decodes every code to its value and encodes any number to the
 * nearest code, ties to the code with an even mantissa, saturating to the largest finite magnitude.
 */
export interface MinifloatCodec {
  readonly spec: Required<MinifloatSpec>;
  /** Bits per code: 1 + exponentBits + mantissaBits. */
  readonly bits: number;
  /** Largest finite value. */
  readonly maxValue: number;
  /** Smallest positive value (subnormal when subnormals exist). */
  readonly minPositive: number;
  /** Value of exponent of the largest normal number (`floor(log2(maxValue))`), used by MX scaling. */
  readonly maxExponent: number;
  /** The value of a code (NaN or ±Infinity for special codes). */
  decode(code: number): number;
  /** The nearest code to `x` (round to nearest, ties to even, saturating). NaN maps to a NaN code where one exists, else throws. */
  encode(x: number): number;
  /** The nearest representable value to `x` (`decode(encode(x))`). */
  round(x: number): number;
}

function checkSpec(spec: MinifloatSpec): Required<MinifloatSpec> {
  const { exponentBits: e, mantissaBits: m } = spec;
  if (!Number.isInteger(e) || e < 1 || e > 8) throw new InvalidArgumentError('exponentBits', `got ${e}; expected an integer from 1 to 8`);
  if (!Number.isInteger(m) || m < 0 || m > 10) throw new InvalidArgumentError('mantissaBits', `got ${m}; expected an integer from 0 to 10`);
  if (1 + e + m > 16) throw new InvalidArgumentError('minifloat', `1 + ${e} + ${m} bits exceed 16`);
  const bias = spec.bias ?? 2 ** (e - 1) - 1;
  if (!Number.isInteger(bias)) throw new InvalidArgumentError('bias', `got ${bias}; expected an integer`);
  if (spec.specials === 'ieee' && e < 2) throw new InvalidArgumentError('specials', `'ieee' needs at least 2 exponent bits`);
  return { exponentBits: e, mantissaBits: m, bias, specials: spec.specials, subnormals: spec.subnormals ?? true };
}

function decodeWith(spec: Required<MinifloatSpec>, code: number): number {
  const { exponentBits: e, mantissaBits: m, bias, specials, subnormals } = spec;
  const sign = (code >> (e + m)) & 1 ? -1 : 1;
  const exponentField = (code >> m) & ((1 << e) - 1);
  const mantissaField = code & ((1 << m) - 1);
  const allOnesExponent = exponentField === (1 << e) - 1;
  if (specials === 'ieee' && allOnesExponent) return mantissaField === 0 ? sign * Infinity : NaN;
  if (specials === 'nan-only' && allOnesExponent && mantissaField === (1 << m) - 1) return NaN;
  if (exponentField === 0) {
    if (!subnormals) return sign * 0;
    return sign * (mantissaField / 2 ** m) * 2 ** (1 - bias);
  }
  return sign * (1 + mantissaField / 2 ** m) * 2 ** (exponentField - bias);
}

const cache = new Map<string, MinifloatCodec>();

/**
 * Returns the codec of a minifloat format (cached per spec).
 *
 * @example
 * ```ts
 * const e4m3 = minifloat(FP8_E4M3);
 * e4m3.maxValue;        // 448
 * e4m3.round(300);      // 288
 * ```
 */
export function minifloat(specIn: MinifloatSpec): MinifloatCodec {
  const spec = checkSpec(specIn);
  const key = `${spec.exponentBits}:${spec.mantissaBits}:${spec.bias}:${spec.specials}:${spec.subnormals}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const bits = 1 + spec.exponentBits + spec.mantissaBits;
  const positiveCodes = 1 << (bits - 1);
  // Non-negative finite values in code order are increasing, so the table is sorted.
  const values: number[] = [];
  const codes: number[] = [];
  for (let c = 0; c < positiveCodes; c++) {
    const v = decodeWith(spec, c);
    if (!Number.isFinite(v)) continue;
    if (values.length > 0 && v === values[values.length - 1]) continue; // flushed subnormals duplicate zero
    values.push(v);
    codes.push(c);
  }
  const table = Float64Array.from(values);
  const tableCodes = Int32Array.from(codes);
  const signBit = 1 << (bits - 1);
  const maxValue = table[table.length - 1]!;
  // With subnormals every non-negative finite code has its own value, so table index = code, and the code below a
  // value follows from its float64 bits instead of a binary search: the exponent field (rebiased) and the leading
  // mantissa bits for normal values, the value over the smallest subnormal step below the smallest normal one.
  let direct = spec.subnormals && spec.mantissaBits <= 20;
  for (let i = 0; direct && i < tableCodes.length; i++) if (tableCodes[i] !== i) direct = false;
  const minNormal = 2 ** (1 - spec.bias);
  const subnormalSteps = 2 ** (spec.bias - 1 + spec.mantissaBits);
  const bits64 = new Float64Array(1);
  const words = new Uint32Array(bits64.buffer);
  // The float64's high word: index 1 on little-endian machines, 0 on big-endian ones.
  const high = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
  const nanCode = spec.specials === 'ieee' ? (((1 << spec.exponentBits) - 1) << spec.mantissaBits) | 1 : spec.specials === 'nan-only' ? signBit - 1 : -1;
  const encode = (x: number): number => {
    if (Number.isNaN(x)) {
      if (nanCode < 0) throw new InvalidArgumentError('x', 'NaN cannot be encoded in a format without NaN');
      return nanCode;
    }
    const negative = x < 0 || Object.is(x, -0);
    const a = Math.abs(x);
    let code: number;
    if (a >= maxValue) code = tableCodes[tableCodes.length - 1]!;
    else {
      let lo: number;
      let hi: number; // table[lo] <= a < table[hi]
      if (direct) {
        // The code whose value is a rounded down, read off a's float64 bits (exact: the table holds every code).
        if (a < minNormal) lo = Math.floor(a * subnormalSteps);
        else {
          bits64[0] = a;
          const word = words[high]!;
          lo = ((((word >>> 20) & 0x7ff) - 1023 + spec.bias) << spec.mantissaBits) | ((word & 0xfffff) >>> (20 - spec.mantissaBits));
        }
        hi = lo + 1;
      } else {
        lo = 0;
        hi = table.length - 1;
        while (hi - lo > 1) {
          const mid = (lo + hi) >> 1;
          if (table[mid]! <= a) lo = mid;
          else hi = mid;
        }
      }
      const dLo = a - table[lo]!;
      const dHi = table[hi]! - a;
      if (dLo < dHi) code = tableCodes[lo]!;
      else if (dHi < dLo) code = tableCodes[hi]!;
      else code = (tableCodes[lo]! & 1) === 0 ? tableCodes[lo]! : tableCodes[hi]!;
    }
    return negative ? code | signBit : code;
  };
  // Every code's value, filled on the first decode (at most 2^16 entries): the same numbers as decodeWith, read from a
  // table (scale rounding decodes per group in AutoRound's every iteration).
  let decoded: Float64Array | undefined;
  const decode = (code: number): number => {
    if (!(code >= 0 && code < 1 << bits && Number.isInteger(code))) return decodeWith(spec, code);
    if (!decoded) {
      decoded = new Float64Array(1 << bits);
      for (let c = 0; c < decoded.length; c++) decoded[c] = decodeWith(spec, c);
    }
    return decoded[code]!;
  };
  const codec: MinifloatCodec = {
    spec,
    bits,
    maxValue,
    minPositive: table[1]!,
    maxExponent: Math.floor(Math.log2(maxValue)),
    decode,
    encode,
    round: (x) => decode(encode(x)),
  };
  cache.set(key, codec);
  return codec;
}
