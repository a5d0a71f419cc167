import type { DType, Tensor } from '@bitsmith/core';
import { ShapeMismatchError, shapeSize } from '@bitsmith/core';
import { ModelFileError } from './model-file-error.js';
import { encodeFromNumbers, SAFETENSORS_DTYPE_BYTES, type SafetensorsDType } from './safetensors-dtype.js';
import { planSafetensorsLayout, type SafetensorsLayout } from './safetensors-header.js';
import type { RawSafetensor } from './safetensors-reader.js';

/**
 * A tensor to write: either a core tensor (stored in its natural dtype, or converted to `storeAs`, e.g. a float32
 * tensor stored as `'BF16'`), or raw little-endian bytes with their safetensors dtype.
 */
export type WritableTensor = (Tensor<DType> & { readonly storeAs?: SafetensorsDType }) | RawSafetensor;

/** Options of {@link writeSafetensors} and {@link encodeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** The `__metadata__` string map. Default none (e.g. pass `{ format: 'pt' }` for PyTorch loaders). */
  metadata?: Readonly<Record<string, string>>;
}

const NATURAL: Record<DType, SafetensorsDType> = {
  float32: 'F32',
  float64: 'F64',
  int32: 'I32',
  int8: 'I8',
  uint8: 'U8',
  uint16: 'U16',
};

function storedDType(t: WritableTensor): SafetensorsDType {
  if ('bytes' in t) return t.dtype;
  return t.storeAs ?? NATURAL[t.dtype];
}

function tensorBytes(name: string, t: WritableTensor): Uint8Array {
  const dtype = storedDType(t);
  const expected = shapeSize(t.shape) * SAFETENSORS_DTYPE_BYTES[dtype];
  if ('bytes' in t) {
    if (t.bytes.byteLength !== expected) {
      throw new ShapeMismatchError(`tensor "${name}" bytes`, [expected], [t.bytes.byteLength], `shape [${t.shape.join(', ')}] of ${dtype}`);
    }
    return t.bytes;
  }
  // Read `data` once: a graph's tensors() may produce it on access (weights held in their stored dtype).
  const data = t.data;
  if (data.length !== shapeSize(t.shape)) throw new ShapeMismatchError(`tensor "${name}" data`, [shapeSize(t.shape)], [data.length]);
  if (!t.storeAs || t.storeAs === NATURAL[t.dtype]) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  return encodeFromNumbers(data, dtype);
}

function entriesOf(tensors: Readonly<Record<string, WritableTensor>> | ReadonlyMap<string, WritableTensor>): [string, WritableTensor][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}

function plan(list: [string, WritableTensor][], options: WriteSafetensorsOptions): SafetensorsLayout {
  return planSafetensorsLayout(
    list.map(([name, t]) => ({ name, dtype: storedDType(t), shape: t.shape })),
    options.metadata,
  );
}

/**
 * The layout of a set of tensors and each one's bytes, for {@link encodeSafetensors} and the Node entry's
 * `writeSafetensors` (which writes the same layout one tensor at a time). @internal
 */
export function safetensorsParts(
  tensors: Readonly<Record<string, WritableTensor>> | ReadonlyMap<string, WritableTensor>,
  options: WriteSafetensorsOptions = {},
): { layout: SafetensorsLayout; bytes: (name: string) => Uint8Array } {
  const list = entriesOf(tensors);
  const byName = new Map(list);
  return { layout: plan(list, options), bytes: (name) => tensorBytes(name, byName.get(name)!) };
}

/**
 * Encodes tensors as the bytes of a safetensors file, in memory (the layout `writeSafetensors` writes to disk); in a
 * browser, wrap the bytes in a `Blob` to offer them for download.
 *
 * @example
 * ```ts
 * const bytes = encodeSafetensors({ bias: tensor(new Float32Array(4), [4]) });
 * readSafetensorsBytes(bytes).names; // ['bias']
 * ```
 */
export function encodeSafetensors(
  tensors: Readonly<Record<string, WritableTensor>> | ReadonlyMap<string, WritableTensor>,
  options: WriteSafetensorsOptions = {},
): Uint8Array {
  const { layout, bytes } = safetensorsParts(tensors, options);
  const out = new Uint8Array(layout.headerBytes.byteLength + layout.dataSize);
  out.set(layout.headerBytes, 0);
  for (const entry of layout.entries) out.set(bytes(entry.name), layout.headerBytes.byteLength + entry.dataOffsets[0]);
  return out;
}
