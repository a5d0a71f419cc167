import { UnsupportedFormatError } from '@bitsmith/core';
import {
  decodeBfloat16Array,
  decodeFloat16Array,
  float32ToBfloat16,
  float32ToFloat16,
  float32ToFloat8,
  float8Table,
} from './float-conversion.js';

import { isSafetensorsDType, SAFETENSORS_DTYPE_BYTES, type SafetensorsDType } from '@bitsmith/core';

export { isSafetensorsDType, SAFETENSORS_DTYPE_BYTES, type SafetensorsDType };

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function requireLittleEndian(): void {
  if (!littleEndian) throw new UnsupportedFormatError('safetensors: big-endian hosts are not supported');
}

/**
 * Converts the little-endian bytes of `count` elements of `dtype` to float32 values. 64-bit integers go through
 * `Number` (exact up to 2^53, then rounded); BOOL gives 0 or 1.
 *
 * @example
 * ```ts
 * decodeToFloat32(new Uint8Array([0x00, 0x3c]), 'F16'); // Float32Array [1]
 * ```
 */
export function decodeToFloat32(bytes: Uint8Array, dtype: SafetensorsDType, out?: Float32Array): Float32Array {
  requireLittleEndian();
  const size = SAFETENSORS_DTYPE_BYTES[dtype];
  const count = bytes.byteLength / size;
  const result = out ?? new Float32Array(count);
  switch (dtype) {
    case 'F32':
      result.set(typedView(bytes, 'F32') as Float32Array);
      return result;
    case 'F16':
      return decodeFloat16Array(bytes, result);
    case 'BF16':
      return decodeBfloat16Array(bytes, result);
    case 'F8_E4M3':
    case 'F8_E5M2':
    case 'F8_E8M0': {
      const table = float8Table(dtype === 'F8_E4M3' ? 'e4m3' : dtype === 'F8_E5M2' ? 'e5m2' : 'e8m0');
      for (let i = 0; i < count; i++) result[i] = table[bytes[i]!]!;
      return result;
    }
    case 'BOOL':
      for (let i = 0; i < count; i++) result[i] = bytes[i] ? 1 : 0;
      return result;
    default: {
      const view = typedView(bytes, dtype);
      if (view instanceof BigInt64Array || view instanceof BigUint64Array) {
        for (let i = 0; i < count; i++) result[i] = Number(view[i]!);
      } else {
        result.set(view as ArrayLike<number>);
      }
      return result;
    }
  }
}

/** A typed array of the dtype's natural element type over the bytes (copied when misaligned). */
function typedView(
  bytes: Uint8Array,
  dtype: SafetensorsDType,
): Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array {
  const size = SAFETENSORS_DTYPE_BYTES[dtype];
  const count = bytes.byteLength / size;
  const aligns = bytes.byteOffset % size === 0;
  const buffer = aligns ? bytes.buffer : bytes.slice().buffer;
  const offset = aligns ? bytes.byteOffset : 0;
  switch (dtype) {
    case 'U8':
    case 'BOOL':
    case 'F8_E4M3':
    case 'F8_E5M2':
    case 'F8_E8M0':
      return new Uint8Array(buffer, offset, count);
    case 'I8':
      return new Int8Array(buffer, offset, count);
    case 'I16':
      return new Int16Array(buffer, offset, count);
    case 'U16':
    case 'F16':
    case 'BF16':
      return new Uint16Array(buffer, offset, count);
    case 'I32':
      return new Int32Array(buffer, offset, count);
    case 'U32':
      return new Uint32Array(buffer, offset, count);
    case 'F32':
      return new Float32Array(buffer, offset, count);
    case 'F64':
      return new Float64Array(buffer, offset, count);
    case 'I64':
      return new BigInt64Array(buffer, offset, count);
    case 'U64':
      return new BigUint64Array(buffer, offset, count);
  }
}

/**
 * Encodes numbers as the little-endian bytes of `dtype`. Floats round to nearest (ties to even); integers are
 * rounded with `Math.round` and wrap like the typed array of that width; BOOL stores `value !== 0`.
 *
 * @example
 * ```ts
 * encodeFromNumbers(new Float32Array([1, -2]), 'BF16'); // Uint8Array [0x80, 0x3f, 0x00, 0xc0]
 * ```
 */
export function encodeFromNumbers(values: ArrayLike<number>, dtype: SafetensorsDType): Uint8Array {
  requireLittleEndian();
  const n = values.length;
  const bytes = new Uint8Array(n * SAFETENSORS_DTYPE_BYTES[dtype]);
  switch (dtype) {
    case 'F32':
      new Float32Array(bytes.buffer).set(values);
      return bytes;
    case 'F64':
      new Float64Array(bytes.buffer).set(values);
      return bytes;
    case 'F16': {
      const out = new Uint16Array(bytes.buffer);
      for (let i = 0; i < n; i++) out[i] = float32ToFloat16(values[i]!);
      return bytes;
    }
    case 'BF16': {
      const out = new Uint16Array(bytes.buffer);
      for (let i = 0; i < n; i++) out[i] = float32ToBfloat16(values[i]!);
      return bytes;
    }
    case 'F8_E4M3':
    case 'F8_E5M2':
    case 'F8_E8M0': {
      const format = dtype === 'F8_E4M3' ? 'e4m3' : dtype === 'F8_E5M2' ? 'e5m2' : 'e8m0';
      for (let i = 0; i < n; i++) bytes[i] = float32ToFloat8(values[i]!, format);
      return bytes;
    }
    case 'BOOL':
      for (let i = 0; i < n; i++) bytes[i] = values[i] !== 0 ? 1 : 0;
      return bytes;
    case 'I64':
    case 'U64': {
      const out = dtype === 'I64' ? new BigInt64Array(bytes.buffer) : new BigUint64Array(bytes.buffer);
      for (let i = 0; i < n; i++) out[i] = BigInt(Math.round(values[i]!));
      return bytes;
    }
    default: {
      const out = typedView(bytes, dtype) as Exclude<ReturnType<typeof typedView>, BigInt64Array | BigUint64Array>;
      for (let i = 0; i < n; i++) out[i] = Math.round(values[i]!);
      return bytes;
    }
  }
}
