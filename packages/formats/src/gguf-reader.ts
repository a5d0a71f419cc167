import { InvalidArgumentError, UnsupportedFormatError } from '@bitsmith/core';
import { GGML_BLOCK_SIZES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE_TYPE, ggmlTypeName, type GgmlTypeName, type GgufValueTypeName } from './gguf-constants.js';
import type { GgufArrayValue, GgufValue } from './gguf-metadata.js';
import { decodeGgmlTensor } from './gguf-tensor-codec.js';

/** A tensor's entry in a GGUF file. */
export interface GgufTensorInfo {
  readonly name: string;
  /** Dimensions in ggml order (`ne[0]` = innermost, contiguous). */
  readonly dims: readonly number[];
  /** Row-major shape (`dims` reversed), e.g. `[outFeatures, inFeatures]`. */
  readonly shape: readonly number[];
  /** ggml type name (`'Q4_0'`, ...; `'type<N>'` for ids this package does not know). */
  readonly type: string;
  readonly typeId: number;
  /** Offset from the start of the data section. */
  readonly offset: number;
  /** Byte size, when the type's block geometry is known (see `GGML_BLOCK_SIZES`). */
  readonly byteLength: number | undefined;
}

/** A parsed GGUF file (v2 or v3, little-endian). */
export interface GgufFile {
  readonly version: number;
  readonly metadata: Map<string, GgufValue>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** Absolute offset of the tensor data section. */
  readonly dataOffset: number;
  /** The raw bytes of a tensor (a view into the file). */
  tensorBytes(name: string): Uint8Array;
  /** A tensor decoded to float32 (row-major), for the types this package decodes. */
  tensorValues(name: string): Float32Array;
}

const textDecoder = new TextDecoder('utf-8', { fatal: true });

class ByteSource {
  readonly view: DataView;
  pos = 0;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(n: number): number {
    if (this.pos + n > this.bytes.byteLength) throw new InvalidArgumentError('gguf', `truncated file: needs ${n} bytes at offset ${this.pos}`);
    const p = this.pos;
    this.pos += n;
    return p;
  }
  u8(): number { return this.view.getUint8(this.need(1)); }
  i8(): number { return this.view.getInt8(this.need(1)); }
  u16(): number { return this.view.getUint16(this.need(2), true); }
  i16(): number { return this.view.getInt16(this.need(2), true); }
  u32(): number { return this.view.getUint32(this.need(4), true); }
  i32(): number { return this.view.getInt32(this.need(4), true); }
  f32(): number { return this.view.getFloat32(this.need(4), true); }
  f64(): number { return this.view.getFloat64(this.need(8), true); }
  u64(): bigint { return this.view.getBigUint64(this.need(8), true); }
  i64(): bigint { return this.view.getBigInt64(this.need(8), true); }
  size(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgumentError('gguf', `size ${v} too large`);
    return Number(v);
  }
  string(): string {
    const n = this.size();
    const p = this.need(n);
    return textDecoder.decode(this.bytes.subarray(p, p + n));
  }
}

const TYPE_NAMES = Object.fromEntries(Object.entries(GGUF_VALUE_TYPE).map(([k, v]) => [v, k])) as Record<number, GgufValueTypeName>;

function valueType(src: ByteSource): GgufValueTypeName {
  const id = src.u32();
  const name = TYPE_NAMES[id];
  if (name === undefined) throw new UnsupportedFormatError(`GGUF value type ${id} is unknown`);
  return name;
}

function readScalar(src: ByteSource, type: Exclude<GgufValueTypeName, 'array'>): number | bigint | boolean | string {
  switch (type) {
    case 'uint8': return src.u8();
    case 'int8': return src.i8();
    case 'uint16': return src.u16();
    case 'int16': return src.i16();
    case 'uint32': return src.u32();
    case 'int32': return src.i32();
    case 'float32': return src.f32();
    case 'float64': return src.f64();
    case 'uint64': return src.u64();
    case 'int64': return src.i64();
    case 'bool': return src.u8() !== 0;
    case 'string': return src.string();
  }
}

const TYPED: Partial<Record<GgufValueTypeName, { new (n: number): ArrayLike<unknown> & { [i: number]: unknown } }>> = {
  uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array, uint32: Uint32Array, int32: Int32Array,
  float32: Float32Array, float64: Float64Array, uint64: BigUint64Array, int64: BigInt64Array,
};

function readArray(src: ByteSource): GgufArrayValue {
  const itemType = valueType(src);
  const n = src.size();
  // Every item takes at least one byte: a count beyond the bytes left is a corrupt file, not an allocation to try.
  if (n > src.bytes.byteLength - src.pos) throw new InvalidArgumentError('gguf', `truncated or corrupt: an array of ${n} items at offset ${src.pos} is longer than the ${src.bytes.byteLength - src.pos} bytes left`);
  if (itemType === 'array') {
    const value: GgufArrayValue[] = [];
    for (let i = 0; i < n; i++) value.push(readArray(src));
    return { type: 'array', itemType, value };
  }
  const Typed = TYPED[itemType];
  const value: { [i: number]: unknown } = Typed ? new Typed(n) : new Array<unknown>(n);
  for (let i = 0; i < n; i++) value[i] = readScalar(src, itemType);
  return { type: 'array', itemType, value } as GgufArrayValue;
}

/**
 * Parses a GGUF file (v2 or v3, little-endian) from its bytes: metadata with explicit types, tensor infos, and
 * accessors for each tensor's bytes and decoded values.
 *
 * @throws InvalidArgumentError on a bad magic, truncated data or inconsistent tensor infos; UnsupportedFormatError on
 *   other versions or unknown value types.
 * @example
 * ```ts
 * const file = parseGguf(bytes);
 * file.metadata.get('general.architecture'); // { type: 'string', value: 'llama' }
 * ```
 */
export function parseGguf(bytes: Uint8Array): GgufFile {
  const src = new ByteSource(bytes);
  if (bytes.byteLength < 4 || src.u32() !== GGUF_MAGIC) throw new InvalidArgumentError('gguf', 'not a GGUF file (bad magic)');
  const version = src.u32();
  if (version !== 2 && version !== 3) throw new UnsupportedFormatError(`GGUF version ${version} is not supported (2 or 3)`);
  const tensorCount = src.size();
  const kvCount = src.size();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = src.string();
    const type = valueType(src);
    const value: GgufValue = type === 'array' ? readArray(src) : ({ type, value: readScalar(src, type) } as GgufValue);
    metadata.set(key, value);
  }
  const a = metadata.get('general.alignment');
  const alignment = a && a.type === 'uint32' ? a.value : GGUF_DEFAULT_ALIGNMENT;
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = src.string();
    const nDims = src.u32();
    if (nDims < 1 || nDims > 4) throw new InvalidArgumentError(name, `has ${nDims} dimensions`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(src.size());
    const typeId = src.u32();
    const offset = src.size();
    if (offset % alignment !== 0) throw new InvalidArgumentError(name, `offset ${offset} is not a multiple of the alignment ${alignment}`);
    const type = ggmlTypeName(typeId) ?? `type${typeId}`;
    const block = GGML_BLOCK_SIZES[type];
    const count = dims.reduce((x, y) => x * y, 1);
    const byteLength = block ? (count / block.elements) * block.bytes : undefined;
    tensors.push({ name, dims, shape: [...dims].reverse(), type, typeId, offset, byteLength });
  }
  const dataOffset = src.pos + ((alignment - (src.pos % alignment)) % alignment);
  checkTensorLayout(tensors, dataOffset, bytes.byteLength);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const info = (name: string): GgufTensorInfo => {
    const t = byName.get(name);
    if (!t) throw new InvalidArgumentError('name', `no tensor ${name} in the GGUF file`);
    return t;
  };
  const tensorBytes = (name: string): Uint8Array => {
    const t = info(name);
    if (t.byteLength === undefined) throw new UnsupportedFormatError(`${name}: ggml type ${t.type} is not supported`);
    const start = dataOffset + t.offset;
    if (start + t.byteLength > bytes.byteLength) throw new InvalidArgumentError(name, 'tensor data past the end of the file');
    return bytes.subarray(start, start + t.byteLength);
  };
  return {
    version,
    metadata,
    tensors,
    alignment,
    dataOffset,
    tensorBytes,
    tensorValues(name) {
      const t = info(name);
      return decodeGgmlTensor(t.type as GgmlTypeName, tensorBytes(name), t.dims.reduce((x, y) => x * y, 1));
    },
  };
}

/** Every tensor of a known type holds whole blocks, lies inside the file, and overlaps no other tensor; names are unique. */
function checkTensorLayout(tensors: readonly GgufTensorInfo[], dataOffset: number, fileSize: number): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new InvalidArgumentError(t.name, 'appears twice in the tensor infos; expected unique names');
    seen.add(t.name);
    if (t.byteLength === undefined) continue;
    if (!Number.isInteger(t.byteLength)) {
      const block = GGML_BLOCK_SIZES[t.type]!;
      throw new InvalidArgumentError(t.name, `has ${t.dims.reduce((x, y) => x * y, 1)} elements, not a multiple of the ${block.elements}-element ${t.type} block`);
    }
    if (dataOffset + t.offset + t.byteLength > fileSize) {
      throw new InvalidArgumentError(t.name, `data [${dataOffset + t.offset}, ${dataOffset + t.offset + t.byteLength}) runs past the end of the file (${fileSize} bytes): truncated`);
    }
  }
  const sized = tensors.filter((t) => t.byteLength !== undefined).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sized.length; i++) {
    const prev = sized[i - 1]!;
    const t = sized[i]!;
    if (t.offset < prev.offset + prev.byteLength!) {
      throw new InvalidArgumentError(t.name, `data at offset ${t.offset} overlaps ${prev.name} (which ends at ${prev.offset + prev.byteLength!}); expected disjoint tensors`);
    }
  }
}
