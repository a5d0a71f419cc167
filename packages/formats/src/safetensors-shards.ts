import { InvalidArgumentError } from '@bitsmith/core';
import { STORED_DTYPE_BYTES, type StoredTensor } from './stored-tensor.js';

// Safetensors files written piece by piece (header, then each tensor's own bytes: never one buffer of the whole
// file) and split into shards with Hugging Face's `model.safetensors.index.json`, as transformers' `save_pretrained`
// does. Browser-safe: the writing goes through a sink; the node entry's savers hand it a file handle.

/** Most bytes of tensor data per shard unless told: 5 GB, transformers' default `max_shard_size` ("5GB"). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

/** The name of the shard index file beside sharded safetensors files. */
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

/**
 * The layout of one safetensors file: its header bytes (the 8-byte length and the JSON, padded with spaces to a
 * multiple of 8), the tensors in file order (sorted by name) and the size of the data after the header.
 */
export interface SafetensorsFileLayout {
  readonly header: Uint8Array;
  readonly names: readonly string[];
  readonly dataBytes: number;
  /** Header plus data: the file's size. */
  readonly fileBytes: number;
}

/**
 * Plans one safetensors file of `tensors` (sorted by name, `__metadata__` first, header padded with spaces to a
 * multiple of 8 bytes): the layout `encodeSafetensorsFile` fills in memory and {@link writeSafetensorsStream} writes
 * piece by piece. A tensor whose bytes do not match its shape and dtype throws core's `InvalidArgumentError`.
 *
 * @example
 * ```ts
 * const { header, names, fileBytes } = safetensorsFileLayout(tensors, { format: 'pt' });
 * ```
 */
export function safetensorsFileLayout(tensors: ReadonlyMap<string, StoredTensor>, metadata?: Readonly<Record<string, string>>): SafetensorsFileLayout {
  const names = [...tensors.keys()].sort();
  const json: Record<string, unknown> = {};
  if (metadata) json.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const expected = t.shape.reduce((a, b) => a * b, 1) * STORED_DTYPE_BYTES[t.dtype];
    if (expected !== t.bytes.byteLength) throw new InvalidArgumentError(`tensor ${name}`, `holds ${t.bytes.byteLength} bytes; shape [${t.shape.join(', ')}] of ${t.dtype} needs ${expected}`);
    json[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
    offset += t.bytes.byteLength;
  }
  const text = new TextEncoder().encode(JSON.stringify(json));
  const padded = Math.ceil(text.byteLength / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(text, 8);
  return { header, names, dataBytes: offset, fileBytes: header.byteLength + offset };
}

/** Where {@link writeSafetensorsStream} puts bytes: a file handle's positional write, or anything that records them. */
export interface SafetensorsSink {
  /** Writes all of `bytes` at byte `position` of the file. */
  write(bytes: Uint8Array, position: number): Promise<void>;
}

/**
 * Writes one safetensors file to a sink: the header, then each tensor's bytes as they are (no buffer of the whole
 * file, so files past the 4 GiB typed-array limit can be written). The bytes are those of `encodeSafetensorsFile`.
 *
 * @returns The file's size in bytes.
 * @example
 * ```ts
 * const handle = await open('model.safetensors', 'w');
 * await writeSafetensorsStream({ write: async (b, at) => void (await handle.write(b, 0, b.byteLength, at)) }, tensors, { format: 'pt' });
 * ```
 */
export async function writeSafetensorsStream(sink: SafetensorsSink, tensors: ReadonlyMap<string, StoredTensor>, metadata?: Readonly<Record<string, string>>): Promise<number> {
  const layout = safetensorsFileLayout(tensors, metadata);
  await sink.write(layout.header, 0);
  let at = layout.header.byteLength;
  for (const name of layout.names) {
    const bytes = tensors.get(name)!.bytes;
    if (bytes.byteLength > 0) await sink.write(bytes, at);
    at += bytes.byteLength;
  }
  return at;
}

/** One shard of a checkpoint: its file name and its tensors. */
export interface SafetensorsShard {
  readonly file: string;
  readonly tensors: Map<string, StoredTensor>;
}

/** The shards of a checkpoint's tensors and, when there are several, the index that maps each tensor to its file. */
export interface SafetensorsShardPlan {
  readonly shards: readonly SafetensorsShard[];
  /** `model.safetensors.index.json`'s content (`metadata.total_size`, `weight_map`); absent for a single file. */
  readonly index?: { metadata: { total_size: number }; weight_map: Record<string, string> };
}

/**
 * Splits tensors into safetensors shards of at most `maxShardBytes` of tensor data each (in name order, a new shard
 * when the next tensor would not fit; a tensor larger than the limit gets a shard of its own), named as transformers
 * names them: one shard is `model.safetensors`, several are `model-00001-of-00003.safetensors`, ... with
 * {@link SAFETENSORS_INDEX_FILE}'s content (`{ metadata: { total_size }, weight_map }`) in `index`.
 *
 * @param maxShardBytes Default {@link DEFAULT_MAX_SHARD_BYTES} (5 GB).
 * @example
 * ```ts
 * const { shards, index } = planSafetensorsShards(ckpt.tensors, 2_000_000_000);
 * ```
 */
export function planSafetensorsShards(tensors: ReadonlyMap<string, StoredTensor>, maxShardBytes = DEFAULT_MAX_SHARD_BYTES): SafetensorsShardPlan {
  if (!(maxShardBytes > 0) || !Number.isFinite(maxShardBytes)) throw new InvalidArgumentError('maxShardBytes', `must be a positive number of bytes; got ${maxShardBytes}`);
  const groups: Map<string, StoredTensor>[] = [];
  let current = new Map<string, StoredTensor>();
  let size = 0;
  for (const name of [...tensors.keys()].sort()) {
    const t = tensors.get(name)!;
    if (current.size > 0 && size + t.bytes.byteLength > maxShardBytes) {
      groups.push(current);
      current = new Map();
      size = 0;
    }
    current.set(name, t);
    size += t.bytes.byteLength;
  }
  groups.push(current);
  if (groups.length === 1) return { shards: [{ file: 'model.safetensors', tensors: groups[0]! }] };
  const count = String(groups.length).padStart(5, '0');
  const shards = groups.map((g, i) => ({ file: `model-${String(i + 1).padStart(5, '0')}-of-${count}.safetensors`, tensors: g }));
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const shard of shards) {
    for (const [name, t] of shard.tensors) {
      weightMap[name] = shard.file;
      total += t.bytes.byteLength;
    }
  }
  return { shards, index: { metadata: { total_size: total }, weight_map: weightMap } };
}
