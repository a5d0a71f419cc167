import { BFLOAT16, FLOAT16, FP8_E4M3, minifloat, type MinifloatCodec } from './minifloat.js';
import type { ScaleEncoding } from './quantized-tensor.js';

/** Bits one stored scale takes in an encoding. */
export function scaleEncodingBits(encoding: ScaleEncoding): number {
  switch (encoding) {
    case 'float32':
      return 32;
    case 'float16':
    case 'bfloat16':
      return 16;
    case 'e8m0':
    case 'e4m3':
      return 8;
  }
}

/** The codecs of the 16- and 8-bit scale encodings, built on first use (resolving them per call costs more than the rounding). */
const scaleCodecs: { float16?: MinifloatCodec; bfloat16?: MinifloatCodec; e4m3?: MinifloatCodec } = {};

/**
 * Rounds a positive scale to the nearest value of a storage encoding, never to zero when the input is positive
 * (a zero scale would lose the group). `e8m0` rounds down to a power of two in [2^-127, 2^127].
 * With `direction: 'up'` the result is never below `scale`, so a group's extreme value does not saturate.
 *
 * @example
 * ```ts
 * roundScale(0.1, 'float16'); // 0.0999755859375
 * ```
 */
export function roundScale(scale: number, encoding: ScaleEncoding, direction: 'nearest' | 'up' = 'nearest'): number {
  if (!(scale > 0)) return scale === 0 ? 0 : scale;
  switch (encoding) {
    case 'float32': {
      const r = Math.fround(scale);
      if (direction === 'up' && r < scale) {
        const bits = new Float32Array([r]);
        new Uint32Array(bits.buffer)[0]! += 1;
        return bits[0]!;
      }
      return r;
    }
    case 'float16':
    case 'bfloat16':
    case 'e4m3': {
      const codec = (scaleCodecs[encoding] ??= minifloat(encoding === 'float16' ? FLOAT16 : encoding === 'bfloat16' ? BFLOAT16 : FP8_E4M3));
      let code = codec.encode(scale);
      // Positive codes increase with value, so the next code up is the next larger value (saturating at the max).
      if (direction === 'up' && codec.decode(code) < scale && codec.decode(code + 1) <= codec.maxValue) code += 1;
      const r = codec.decode(code);
      return r === 0 ? codec.minPositive : r;
    }
    case 'e8m0': {
      const e = Math.min(127, Math.max(-127, Math.floor(Math.log2(scale))));
      return 2 ** e;
    }
  }
}
