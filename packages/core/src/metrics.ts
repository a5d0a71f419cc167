import { scaleEncodingBits } from './float-encoding.js';
import { ShapeMismatchError } from './errors.js';
import { elementCodec } from './number-format.js';
import type { QuantizedTensor } from './quantized-tensor.js';

/**
 * Relative Frobenius error `||reference - approximation||_F / ||reference||_F` (0 when both are zero).
 *
 * @example
 * ```ts
 * relativeError(w.data, dequantize(q).data);
 * ```
 */
export function relativeError(reference: ArrayLike<number>, approximation: ArrayLike<number>): number {
  if (reference.length !== approximation.length) throw new ShapeMismatchError('approximation', [reference.length], [approximation.length]);
  let num = 0;
  let den = 0;
  for (let i = 0; i < reference.length; i++) {
    const r = reference[i]!;
    const d = r - approximation[i]!;
    num += d * d;
    den += r * r;
  }
  return den === 0 ? (num === 0 ? 0 : Infinity) : Math.sqrt(num / den);
}

/**
 * Storage cost of a quantized tensor in bits per weight, counting packed codes, scales in their storage encoding,
 * zero points (packed at the code width, or 16 bits each when `zeroPointEncoding` is `float16`) and a float32 tensor
 * scale.
 *
 * @example
 * ```ts
 * bitsPerWeight(quantize(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 128 } })); // 4.125
 * ```
 */
export function bitsPerWeight(q: QuantizedTensor): number {
  const elements = q.shape[0] * q.shape[1];
  const codec = elementCodec(q.format);
  let bits = elements * codec.bits + q.scales.length * scaleEncodingBits(q.scaleEncoding);
  if (q.zeroPoints) bits += q.zeroPoints.length * (q.zeroPointEncoding === 'float16' ? 16 : codec.bits);
  if (q.tensorScale !== undefined) bits += 32;
  return bits / elements;
}
