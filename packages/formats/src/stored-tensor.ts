import { safetensorsFileLayout } from './safetensors-shards.js';
import { BFLOAT16, FLOAT16, FP8_E4M3, InvalidArgumentError, InvalidFileError, minifloat, parseSafetensorsHeader, readSafetensorsHeaderLength, UnsupportedFormatError, type ScaleEncoding } from '@bitsmith/core';

/** Element types of stored tensors (safetensors names). */
export type StoredDType = 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'F16' | 'BF16' | 'F32' | 'F8_E4M3';

/**
 * A tensor as a file holds it: dtype, shape and little-endian bytes. Structurally the same as
 * `@bitsmith/models`' `RawSafetensor`, so it can be handed to `writeSafetensors` as is.
 */
export interface StoredTensor {
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

/** Bytes per element of each stored dtype. */
export const STORED_DTYPE_BYTES: Readonly<Record<StoredDType, number>> = { I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, F16: 2, BF16: 2, F32: 4, F8_E4M3: 1 };

function view<T>(bytes: Uint8Array, size: number, make: (buffer: ArrayBufferLike, offset: number, length: number) => T): T {
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return make(aligned.buffer, aligned.byteOffset, aligned.byteLength / size);
}

/** Stores int32 values as an `I32` tensor. */
export function int32Tensor(values: Int32Array, shape: readonly number[]): StoredTensor {
  return { dtype: 'I32', shape: [...shape], bytes: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)) };
}

/** Stores integers as an `I64` tensor. */
export function int64Tensor(values: ArrayLike<number>, shape: readonly number[]): StoredTensor {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]!);
  return { dtype: 'I64', shape: [...shape], bytes: new Uint8Array(out.buffer) };
}

const half = minifloat(FLOAT16);
const brain = minifloat(BFLOAT16);
const e4m3 = minifloat(FP8_E4M3);

/**
 * Stores float values as `F16`, `BF16` or `F32`. With `exact` (default true) a value that the dtype does not hold
 * exactly throws (scales must reach the file as `quantize` reported them).
 */
export function floatTensor(values: ArrayLike<number>, shape: readonly number[], dtype: 'F16' | 'BF16' | 'F32', exact = true): StoredTensor {
  if (dtype === 'F32') {
    const f = Float32Array.from(values);
    if (exact) for (let i = 0; i < f.length; i++) if (f[i] !== values[i] && !Number.isNaN(values[i]!)) throw new InvalidArgumentError('values', `value ${values[i]} at ${i} is not a float32`);
    return { dtype, shape: [...shape], bytes: new Uint8Array(f.buffer) };
  }
  const codec = dtype === 'F16' ? half : brain;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const code = codec.encode(v);
    if (exact && codec.decode(code) !== v && !Number.isNaN(v)) {
      throw new InvalidArgumentError('values', `value ${v} at ${i} is not exactly representable in ${dtype}; quantize with scaleEncoding '${dtype === 'F16' ? 'float16' : 'bfloat16'}'`);
    }
    out[i] = code;
  }
  return { dtype, shape: [...shape], bytes: new Uint8Array(out.buffer) };
}

/** The stored dtype that holds scales of an encoding exactly. */
export function scaleDType(encoding: ScaleEncoding): 'F16' | 'BF16' | 'F32' {
  switch (encoding) {
    case 'float16':
      return 'F16';
    case 'bfloat16':
      return 'BF16';
    case 'float32':
      return 'F32';
    default:
      throw new UnsupportedFormatError(`scales encoded as ${encoding} cannot be stored in this format (float16, bfloat16 or float32 only)`);
  }
}

/** The scale encoding of a stored float dtype. */
export function scaleEncodingOf(dtype: StoredDType): ScaleEncoding {
  if (dtype === 'F16') return 'float16';
  if (dtype === 'BF16') return 'bfloat16';
  if (dtype === 'F32') return 'float32';
  throw new UnsupportedFormatError(`scales stored as ${dtype}; expected F16, BF16 or F32`);
}

/** Decodes a stored tensor's elements to numbers (floats exactly, integers exactly up to 2^53). */
export function storedValues(t: StoredTensor): Float64Array {
  const n = t.bytes.byteLength / STORED_DTYPE_BYTES[t.dtype];
  const out = new Float64Array(n);
  switch (t.dtype) {
    case 'F32':
      out.set(view(t.bytes, 4, (b, o, l) => new Float32Array(b, o, l)));
      break;
    case 'F16':
    case 'BF16': {
      const codec = t.dtype === 'F16' ? half : brain;
      const u = view(t.bytes, 2, (b, o, l) => new Uint16Array(b, o, l));
      for (let i = 0; i < n; i++) out[i] = codec.decode(u[i]!);
      break;
    }
    case 'I64': {
      const u = view(t.bytes, 8, (b, o, l) => new BigInt64Array(b, o, l));
      for (let i = 0; i < n; i++) out[i] = Number(u[i]!);
      break;
    }
    case 'I32':
      out.set(view(t.bytes, 4, (b, o, l) => new Int32Array(b, o, l)));
      break;
    case 'I16':
      out.set(view(t.bytes, 2, (b, o, l) => new Int16Array(b, o, l)));
      break;
    case 'U16':
      out.set(view(t.bytes, 2, (b, o, l) => new Uint16Array(b, o, l)));
      break;
    case 'I8':
      out.set(new Int8Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength));
      break;
    case 'U8':
      out.set(t.bytes);
      break;
    case 'F8_E4M3':
      for (let i = 0; i < n; i++) out[i] = e4m3.decode(t.bytes[i]!);
      break;
  }
  return out;
}

/** The int32 words of an `I32` tensor. */
export function storedInt32(t: StoredTensor, name: string): Int32Array {
  if (t.dtype !== 'I32') throw new UnsupportedFormatError(`${name} is ${t.dtype}; expected I32`);
  return view(t.bytes, 4, (b, o, l) => new Int32Array(b, o, l));
}

/** Decodes a float tensor to float32 (any stored dtype). */
export function storedFloat32(t: StoredTensor): Float32Array {
  return Float32Array.from(storedValues(t));
}

// ---- a minimal safetensors codec (header JSON sorted by name, 8-byte aligned; the layout of @bitsmith/models) ----

/**
 * Encodes stored tensors as the bytes of one safetensors file (tensors sorted by name, header padded with spaces
 * to a multiple of 8, `__metadata__` first). Same layout as `@bitsmith/models`' `encodeSafetensors`.
 *
 * @example
 * ```ts
 * const bytes = encodeSafetensorsFile(new Map([['x', int32Tensor(Int32Array.of(1), [1])]]), { format: 'pt' });
 * ```
 */
export function encodeSafetensorsFile(tensors: ReadonlyMap<string, StoredTensor>, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const layout = safetensorsFileLayout(tensors, metadata);
  const out = new Uint8Array(layout.fileBytes);
  out.set(layout.header, 0);
  let at = layout.header.byteLength;
  for (const name of layout.names) {
    const t = tensors.get(name)!;
    out.set(t.bytes, at);
    at += t.bytes.byteLength;
  }
  return out;
}

/**
 * Decodes the bytes of a safetensors file into stored tensors (copies) and its metadata, through core's checked header
 * parser (the one `@bitsmith/models` reads with): a short or truncated file, a bad JSON header, negative or
 * non-integer shapes, offsets that overlap, leave gaps or run past the end, and unknown dtypes each throw core's
 * `InvalidFileError` naming the file, the tensor and what was expected.
 *
 * @example
 * ```ts
 * const { tensors } = decodeSafetensorsFile(await readFile('model.safetensors'), 'model.safetensors');
 * ```
 */
export function decodeSafetensorsFile(bytes: Uint8Array, label = '<bytes>'): { tensors: Map<string, StoredTensor>; metadata: Record<string, string> } {
  const headerLength = readSafetensorsHeaderLength(bytes.subarray(0, 8), bytes.byteLength, label);
  const header = parseSafetensorsHeader(bytes.subarray(8, 8 + headerLength), bytes.byteLength - 8 - headerLength, label);
  const tensors = new Map<string, StoredTensor>();
  for (const [name, e] of header.tensors) {
    if (!(e.dtype in STORED_DTYPE_BYTES)) {
      throw new InvalidFileError(label, `tensor "${name}" has dtype ${e.dtype}; checkpoints hold ${Object.keys(STORED_DTYPE_BYTES).join(', ')}`);
    }
    const [begin, end] = e.dataOffsets;
    tensors.set(name, { dtype: e.dtype as StoredDType, shape: [...e.shape], bytes: bytes.slice(header.dataStart + begin, header.dataStart + end) });
  }
  return { tensors, metadata: { ...header.metadata } };
}
