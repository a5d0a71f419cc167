import type { Tensor } from '@bitsmith/core';
import { ModelFileError } from './model-file-error.js';
import { decodeToFloat32, type SafetensorsDType } from './safetensors-dtype.js';
import {
  parseSafetensorsHeader,
  readSafetensorsHeaderLength,
  type SafetensorsEntry,
  type SafetensorsHeader,
} from './safetensors-header.js';

/** A tensor's stored bytes, unconverted. */
export interface RawSafetensor {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Little-endian element bytes, a fresh copy owned by the caller. */
  readonly bytes: Uint8Array;
}

/** Random-access bytes: a file handle, a `Blob` or an in-memory buffer. */
export interface ByteSource {
  readonly size: number;
  read(position: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
  /**
   * A synchronous positional read that stays valid after `close` (a file on disk, opened again for each call), for
   * weights read from the file each time they are used instead of being held in memory. Absent for `Blob`s and
   * in-memory buffers.
   */
  readonly readDetached?: (position: number, length: number, out?: Uint8Array) => Uint8Array;
}

/**
 * Reads bytes `[start, end)` of one tensor's stored bytes (relative to the tensor), synchronously, into `out` when
 * given (its first `end - start` bytes; the view is returned) or into a new array; see
 * {@link SafetensorsFile.detachedReader}.
 */
export type TensorByteReader = (start: number, end: number, out?: Uint8Array) => Uint8Array;

/**
 * A safetensors file opened for reading: the header is parsed and validated on open; each tensor is read on
 * demand with a positional read, so memory holds one tensor at a time. Close it when done.
 *
 * Create with `openSafetensors` (a file, Node entry), {@link readSafetensorsBlob} (a `Blob`/`File`, read lazily) or
 * {@link readSafetensorsBytes} (an in-memory buffer).
 *
 * @example
 * ```ts
 * const file = await openSafetensors('model.safetensors');
 * try {
 *   for (const name of file.names) console.log(name, file.entry(name).shape);
 *   const w = await file.readTensor('lm_head.weight'); // float32, whatever the stored dtype
 * } finally { await file.close(); }
 * ```
 */
export class SafetensorsFile {
  /** Path (or a label for in-memory data), used in error messages. */
  readonly path: string;
  /** The validated header. */
  readonly header: SafetensorsHeader;
  private readonly source: ByteSource;

  /** @internal Use `openSafetensors`, {@link readSafetensorsBlob} or {@link readSafetensorsBytes}. */
  constructor(path: string, header: SafetensorsHeader, source: ByteSource) {
    this.path = path;
    this.header = header;
    this.source = source;
  }

  /** Tensor names, sorted. */
  get names(): string[] {
    return [...this.header.tensors.keys()].sort();
  }

  /** The `__metadata__` string map (empty when the file has none). */
  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  /** True when the file holds a tensor of that name. */
  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  /** The header entry of a tensor; throws {@link ModelFileError} when absent. */
  entry(name: string): SafetensorsEntry {
    const e = this.header.tensors.get(name);
    if (!e) throw new ModelFileError(this.path, `no tensor named "${name}"`);
    return e;
  }

  /** Reads a tensor's stored bytes without conversion. */
  async readRaw(name: string): Promise<RawSafetensor> {
    const e = this.entry(name);
    const [begin, end] = e.dataOffsets;
    const bytes = await this.source.read(this.header.dataStart + begin, end - begin);
    return { dtype: e.dtype, shape: e.shape, bytes };
  }

  /**
   * A synchronous reader of a tensor's stored bytes that keeps working after {@link SafetensorsFile.close} (the file
   * is opened again for each read; a file that changed on disk since it was opened is refused with a
   * {@link ModelFileError}), or undefined when the source cannot read synchronously (a `Blob`, in-memory bytes).
   * Lets a loader keep a large model's weights on disk and read each one when it is worked on.
   *
   * @example
   * ```ts
   * const read = file.detachedReader('model.layers.0.mlp.down_proj.weight');
   * const firstRow = read?.(0, 2 * columns); // bf16 bytes of row 0
   * ```
   */
  detachedReader(name: string): TensorByteReader | undefined {
    const readDetached = this.source.readDetached;
    if (!readDetached) return undefined;
    const [begin, end] = this.entry(name).dataOffsets;
    const base = this.header.dataStart + begin;
    const length = end - begin;
    const path = this.path;
    return (start, stop, out) => {
      if (!(Number.isInteger(start) && Number.isInteger(stop) && start >= 0 && start <= stop && stop <= length)) {
        throw new ModelFileError(path, `bytes [${start}, ${stop}) are outside tensor "${name}" (${length} bytes)`);
      }
      if (out && out.byteLength < stop - start) throw new ModelFileError(path, `a buffer of ${out.byteLength} bytes cannot hold bytes [${start}, ${stop}) of tensor "${name}"`);
      return readDetached(base + start, stop - start, out);
    };
  }

  /**
   * Reads a tensor converted to float32 (every supported dtype: floats exactly, 64-bit integers through `Number`,
   * BOOL as 0/1).
   */
  async readTensor(name: string): Promise<Tensor<'float32'>> {
    const raw = await this.readRaw(name);
    return { dtype: 'float32', shape: [...raw.shape], data: decodeToFloat32(raw.bytes, raw.dtype) };
  }

  /** Releases the file handle. Reading afterwards fails. */
  async close(): Promise<void> {
    await this.source.close();
  }
}

/**
 * Parses a safetensors file held in memory (for browsers, or bytes from `fetch`). Tensors are copied out on read.
 *
 * @param label Name used in error messages. Default `'<bytes>'`.
 * @example
 * ```ts
 * const file = readSafetensorsBytes(new Uint8Array(await (await fetch(url)).arrayBuffer()), url);
 * ```
 */
export function readSafetensorsBytes(bytes: Uint8Array, label = '<bytes>'): SafetensorsFile {
  const headerLength = readSafetensorsHeaderLength(bytes.subarray(0, 8), bytes.byteLength, label);
  const header = parseSafetensorsHeader(bytes.subarray(8, 8 + headerLength), bytes.byteLength - 8 - headerLength, label);
  const source: ByteSource = {
    size: bytes.byteLength,
    read: async (position, length) => bytes.slice(position, position + length),
    close: async () => {},
  };
  return new SafetensorsFile(label, header, source);
}

/**
 * Opens a safetensors file given as a `Blob` (a browser `File` from a drop or a file input): the header is read and
 * validated at once, each tensor later with `Blob.slice`, so memory holds one tensor at a time however large the file.
 *
 * @param label Name used in error messages. Default the file's name, else `'<blob>'`.
 * @example
 * ```ts
 * const file = await readSafetensorsBlob(input.files[0]);
 * const w = await file.readTensor('lm_head.weight');
 * ```
 */
export async function readSafetensorsBlob(blob: Blob, label = (blob as { name?: string }).name || '<blob>'): Promise<SafetensorsFile> {
  const size = blob.size;
  const read = async (position: number, length: number): Promise<Uint8Array> => {
    if (position + length > size) throw new ModelFileError(label, `truncated: expected ${length} bytes at offset ${position}, the file has ${size}`);
    return new Uint8Array(await blob.slice(position, position + length).arrayBuffer());
  };
  const prefix = await read(0, Math.min(8, size));
  const headerLength = readSafetensorsHeaderLength(prefix, size, label);
  const header = parseSafetensorsHeader(await read(8, headerLength), size - 8 - headerLength, label);
  let closed = false;
  const source: ByteSource = {
    size,
    read: (position, length) => {
      if (closed) throw new ModelFileError(label, 'the file was closed');
      return read(position, length);
    },
    close: async () => {
      closed = true;
    },
  };
  return new SafetensorsFile(label, header, source);
}
