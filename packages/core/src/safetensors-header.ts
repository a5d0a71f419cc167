import { InvalidFileError } from './invalid-file-error.js';

/** Element types the safetensors format defines (those this package reads and writes). */
export type SafetensorsDType =
  | 'BOOL'
  | 'U8'
  | 'I8'
  | 'F8_E4M3'
  | 'F8_E5M2'
  | 'F8_E8M0'
  | 'I16'
  | 'U16'
  | 'F16'
  | 'BF16'
  | 'I32'
  | 'U32'
  | 'F32'
  | 'F64'
  | 'I64'
  | 'U64';

/** Bytes per element of each safetensors dtype. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/**
 * True when `name` is a safetensors dtype this package supports.
 *
 * @example
 * ```ts
 * isSafetensorsDType('BF16'); // true
 * ```
 */
export function isSafetensorsDType(name: unknown): name is SafetensorsDType {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, name);
}


/** One tensor's entry in a safetensors header. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** `[begin, end)` byte offsets relative to the start of the data section (after the header). */
  readonly dataOffsets: readonly [begin: number, end: number];
}

/** A parsed, validated safetensors header. */
export interface SafetensorsHeader {
  /** Byte length of the JSON header (the 8-byte length prefix not included). */
  readonly headerLength: number;
  /** Absolute byte offset where the data section begins: `8 + headerLength`. */
  readonly dataStart: number;
  /** Entries by tensor name. */
  readonly tensors: ReadonlyMap<string, SafetensorsEntry>;
  /** The `__metadata__` string map (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
}

/** Largest header accepted, as in the reference Rust implementation (100 MB). */
export const MAX_SAFETENSORS_HEADER_BYTES = 100_000_000;

/**
 * Reads the 8-byte little-endian header length and checks it against the file size.
 *
 * @param prefix The file's first bytes (at least 8).
 * @param fileSize Total file size in bytes.
 * @param path File name used in error messages.
 * @throws InvalidFileError when the file is shorter than 8 bytes, the length is absurd, or the header runs past the end.
 * @example
 * ```ts
 * const headerLength = readSafetensorsHeaderLength(first8, stat.size, 'model.safetensors');
 * ```
 */
export function readSafetensorsHeaderLength(prefix: Uint8Array, fileSize: number, path: string): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new InvalidFileError(path, `not a safetensors file: ${fileSize} bytes, shorter than the 8-byte header length prefix (truncated or empty file)`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const length = view.getBigUint64(0, true);
  if (length > BigInt(MAX_SAFETENSORS_HEADER_BYTES)) {
    throw new InvalidFileError(path, `safetensors header length ${length} exceeds the ${MAX_SAFETENSORS_HEADER_BYTES}-byte limit (not a safetensors file, or corrupt)`);
  }
  const headerLength = Number(length);
  if (headerLength < 2) throw new InvalidFileError(path, `safetensors header length ${headerLength} is too small to hold a JSON object`);
  if (8 + headerLength > fileSize) {
    throw new InvalidFileError(path, `truncated: the safetensors header needs ${headerLength} bytes after the 8-byte prefix but the file has only ${fileSize - 8}`);
  }
  return headerLength;
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses and validates the JSON header of a safetensors file: known dtypes, integer shapes, offsets that match
 * shape x dtype size, tensors that tile the data section exactly, a `__metadata__` map of strings.
 *
 * @param json The header bytes (UTF-8 JSON, possibly padded with trailing spaces).
 * @param dataSize Bytes in the data section (file size minus 8 minus the header length).
 * @param path File name used in error messages.
 * @throws InvalidFileError naming the tensor and the problem.
 * @example
 * ```ts
 * const header = parseSafetensorsHeader(jsonBytes, fileSize - 8 - jsonBytes.length, 'model.safetensors');
 * header.tensors.get('lm_head.weight')?.shape; // [2048, 128]
 * ```
 */
export function parseSafetensorsHeader(json: Uint8Array, dataSize: number, path: string): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch (cause) {
    throw new InvalidFileError(path, 'safetensors header is not valid UTF-8', { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new InvalidFileError(path, `safetensors header is not valid JSON (${(cause as Error).message}); the file may be truncated or not a safetensors file`, { cause });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidFileError(path, 'safetensors header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}');
  }
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new InvalidFileError(path, '__metadata__ must be an object of string values');
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new InvalidFileError(path, `__metadata__.${k} must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof value !== 'object' || value === null) throw new InvalidFileError(path, `tensor "${name}": entry must be an object`);
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (!isSafetensorsDType(dtype)) {
      throw new InvalidFileError(path, `tensor "${name}": unknown or unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
      throw new InvalidFileError(path, `tensor "${name}": shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger) || offsets[1] < offsets[0]) {
      throw new InvalidFileError(path, `tensor "${name}": data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
    }
    let elements = 1;
    for (const d of shape as number[]) elements *= d;
    const expected = elements * SAFETENSORS_DTYPE_BYTES[dtype];
    const [begin, end] = offsets as [number, number];
    if (end - begin !== expected) {
      throw new InvalidFileError(path, `tensor "${name}": data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${expected}`);
    }
    tensors.set(name, { name, dtype, shape: [...(shape as number[])], dataOffsets: [begin, end] });
  }
  // The tensors must tile the data section: sorted by offset, each begins where the previous ended.
  const sorted = [...tensors.values()].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  for (const entry of sorted) {
    const [begin, end] = entry.dataOffsets;
    if (begin !== cursor) {
      throw new InvalidFileError(
        path,
        begin < cursor
          ? `tensor "${entry.name}": data_offsets [${begin}, ${end}] overlap the previous tensor (which ends at ${cursor})`
          : `tensor "${entry.name}": data_offsets [${begin}, ${end}] leave a gap after byte ${cursor}`,
      );
    }
    cursor = end;
  }
  if (cursor > dataSize) {
    throw new InvalidFileError(path, `truncated: the header describes ${cursor} bytes of tensor data but the file holds only ${dataSize}`);
  }
  if (cursor < dataSize) {
    throw new InvalidFileError(path, `the data section holds ${dataSize} bytes but the header's tensors cover only ${cursor} (trailing bytes)`);
  }
  return { headerLength: json.byteLength, dataStart: 8 + json.byteLength, tensors, metadata };
}

/** One tensor to place in a header being built. */
export interface SafetensorsLayoutInput {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
}

/** A planned file layout: the header bytes (length prefix included) and where each tensor's data goes. */
export interface SafetensorsLayout {
  /** 8-byte little-endian length, then the JSON header padded with spaces to a multiple of 8 bytes. */
  readonly headerBytes: Uint8Array;
  /** Tensors in the order their data is written, with offsets relative to the data section. */
  readonly entries: readonly SafetensorsEntry[];
  /** Total data section size in bytes. */
  readonly dataSize: number;
}

/**
 * Plans a safetensors file: data ordered by element size (largest first, so every tensor is aligned to its
 * element size) then by name, as the reference Rust writer does; JSON keys sorted by name with `__metadata__`
 * first; the header padded with spaces so the data section starts at a multiple of 8.
 *
 * @example
 * ```ts
 * const layout = planSafetensorsLayout([{ name: 'w', dtype: 'F32', shape: [2, 3] }], { format: 'pt' });
 * layout.headerBytes.length % 8; // 0
 * ```
 */
export function planSafetensorsLayout(
  tensors: readonly SafetensorsLayoutInput[],
  metadata: Readonly<Record<string, string>> = {},
): SafetensorsLayout {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new InvalidFileError('safetensors', 'a tensor may not be named "__metadata__"');
    if (seen.has(t.name)) throw new InvalidFileError('safetensors', `tensor "${t.name}" appears twice`);
    seen.add(t.name);
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new InvalidFileError('safetensors', `__metadata__.${k} must be a string`);
  }
  const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  const dataOrder = [...tensors].sort((a, b) => SAFETENSORS_DTYPE_BYTES[b.dtype] - SAFETENSORS_DTYPE_BYTES[a.dtype] || byName(a.name, b.name));
  const entries: SafetensorsEntry[] = [];
  let cursor = 0;
  for (const t of dataOrder) {
    let elements = 1;
    for (const d of t.shape) elements *= d;
    const size = elements * SAFETENSORS_DTYPE_BYTES[t.dtype];
    entries.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], dataOffsets: [cursor, cursor + size] });
    cursor += size;
  }
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    const sortedMeta: Record<string, string> = {};
    for (const k of Object.keys(metadata).sort(byName)) sortedMeta[k] = metadata[k]!;
    header.__metadata__ = sortedMeta;
  }
  for (const e of [...entries].sort((a, b) => byName(a.name, b.name))) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: e.dataOffsets };
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const headerBytes = new Uint8Array(8 + padded).fill(0x20);
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(padded), true);
  headerBytes.set(json, 8);
  return { headerBytes, entries, dataSize: cursor };
}
