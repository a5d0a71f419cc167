import { InvalidArgumentError, UnsupportedFormatError } from '@bitsmith/core';
import { GGML_BLOCK, type GgmlTypeName } from './gguf-constants.js';
import { float16BitsToFloat32, float32ToFloat16Bits } from './gguf-float16.js';
import { dequantizeIq4Nl, dequantizeIq4Xs, quantizeIq4Nl, quantizeIq4Xs } from './gguf-iq4-blocks.js';
import { dequantizeQ4_K, dequantizeQ5_K, dequantizeQ6_K, quantizeQ4_K, quantizeQ5_K, quantizeQ6_K } from './gguf-k-quant-blocks.js';
import { dequantizeQ4_0, dequantizeQ4_1, dequantizeQ5_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ4_1, quantizeQ5_0, quantizeQ8_0 } from './gguf-legacy-blocks.js';

/** Bytes that `count` elements of a ggml type take (`count` must be a multiple of the type's block size). */
export function ggmlTensorBytes(type: GgmlTypeName, count: number): number {
  const block = GGML_BLOCK[type];
  if (!block) throw new UnsupportedFormatError(`ggml type ${type} is not supported`);
  if (count % block.elements !== 0) throw new InvalidArgumentError('count', `${type} needs a multiple of ${block.elements} elements, got ${count}`);
  return (count / block.elements) * block.bytes;
}

/** Options of {@link encodeGgmlTensor}. */
export interface GgmlEncodeOptions {
  /** Row length of the `[rows, columns]` matrix (needed with `importance`). Default: one row. */
  readonly columns?: number;
  /**
   * llama.cpp's importance matrix for this tensor: one weight per column (mean squared input activation of that
   * channel). Used by the k-quants (Q4_K, Q5_K, Q6_K) and IQ4_NL / IQ4_XS, as `llama-quantize --imatrix` does.
   */
  readonly importance?: Float32Array;
}

/** ggml types whose encoders take an importance matrix here. */
export const GGML_IMPORTANCE_TYPES: readonly GgmlTypeName[] = ['Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS'];

/**
 * Encodes row-major float32 values as a ggml tensor of the given type: F32 and F16 (round to nearest even) as is,
 * quantized types with the quantizers `llama-quantize` runs (ggml's `quantize_row_*_ref`, `quantize_iq4_nl`,
 * `quantize_iq4_xs`; with `importance`, the imatrix variants `quantize_row_*_impl`). Rows are contiguous, so a
 * `[rows, columns]` matrix needs `columns` to be a multiple of the type's block size (32 or 256).
 *
 * @throws UnsupportedFormatError when `importance` is given for a type without an importance-weighted encoder here
 *   (F32, F16 and the legacy Q4_0 / Q4_1 / Q5_0 / Q8_0).
 * @example
 * ```ts
 * const bytes = encodeGgmlTensor('Q8_0', weight.data); // weight.data.length / 32 * 34 bytes
 * encodeGgmlTensor('Q4_K', weight.data, { columns: 512, importance }); // as llama-quantize --imatrix
 * ```
 */
export function encodeGgmlTensor(type: GgmlTypeName, values: Float32Array, options: GgmlEncodeOptions = {}): Uint8Array {
  ggmlTensorBytes(type, values.length);
  if (options.importance !== undefined && !GGML_IMPORTANCE_TYPES.includes(type)) {
    throw new UnsupportedFormatError(`${type} has no importance-weighted encoder here (${GGML_IMPORTANCE_TYPES.join(', ')} do)`);
  }
  switch (type) {
    case 'F32':
      return new Uint8Array(values.slice().buffer);
    case 'F16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bits(values[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'Q8_0':
      return quantizeQ8_0(values);
    case 'Q4_0':
      return quantizeQ4_0(values);
    case 'Q4_1':
      return quantizeQ4_1(values);
    case 'Q5_0':
      return quantizeQ5_0(values);
    case 'Q4_K':
      return quantizeQ4_K(values, options);
    case 'Q5_K':
      return quantizeQ5_K(values, options);
    case 'Q6_K':
      return quantizeQ6_K(values, options);
    case 'IQ4_NL':
      return quantizeIq4Nl(values, options);
    case 'IQ4_XS':
      return quantizeIq4Xs(values, options);
    default:
      throw new UnsupportedFormatError(`ggml type ${String(type)} is not supported`);
  }
}

/**
 * Decodes `count` elements of a ggml tensor to float32 (ggml's `dequantize_row_*`; F16 exactly).
 *
 * @example
 * ```ts
 * const values = decodeGgmlTensor('Q4_0', bytes, 4096);
 * ```
 */
export function decodeGgmlTensor(type: GgmlTypeName, bytes: Uint8Array, count: number): Float32Array {
  const need = ggmlTensorBytes(type, count);
  if (bytes.byteLength < need) throw new InvalidArgumentError('bytes', `${type} x ${count} needs ${need} bytes, got ${bytes.byteLength}`);
  switch (type) {
    case 'F32': {
      const out = new Float32Array(count);
      new Uint8Array(out.buffer).set(bytes.subarray(0, need));
      return out;
    }
    case 'F16': {
      const out = new Float32Array(count);
      const view = new DataView(bytes.buffer, bytes.byteOffset, need);
      for (let i = 0; i < count; i++) out[i] = float16BitsToFloat32(view.getUint16(2 * i, true));
      return out;
    }
    case 'Q8_0':
      return dequantizeQ8_0(bytes, count);
    case 'Q4_0':
      return dequantizeQ4_0(bytes, count);
    case 'Q4_1':
      return dequantizeQ4_1(bytes, count);
    case 'Q5_0':
      return dequantizeQ5_0(bytes, count);
    case 'Q4_K':
      return dequantizeQ4_K(bytes, count);
    case 'Q5_K':
      return dequantizeQ5_K(bytes, count);
    case 'Q6_K':
      return dequantizeQ6_K(bytes, count);
    case 'IQ4_NL':
      return dequantizeIq4Nl(bytes, count);
    case 'IQ4_XS':
      return dequantizeIq4Xs(bytes, count);
    default:
      throw new UnsupportedFormatError(`ggml type ${String(type)} is not supported`);
  }
}
