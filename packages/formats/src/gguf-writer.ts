import { InvalidArgumentError } from '@bitsmith/core';
import { GGML_TYPE_ID, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE_TYPE, GGUF_VERSION, type GgmlTypeName, type GgufValueTypeName } from './gguf-constants.js';
import type { GgufArrayValue, GgufValue } from './gguf-metadata.js';
import { ggmlTensorBytes } from './gguf-tensor-codec.js';

/** One tensor to write: its row-major shape (outermost first, as PyTorch), ggml type and encoded bytes. */
export interface GgufTensorInput {
  readonly name: string;
  /** Row-major shape, e.g. `[outFeatures, inFeatures]`; the file stores it reversed (ne[0] = innermost). */
  readonly shape: readonly number[];
  readonly type: GgmlTypeName;
  /** Encoded data (see `encodeGgmlTensor`), exactly `ggmlTensorBytes(type, product(shape))` bytes. */
  readonly data: Uint8Array;
}

/** What a GGUF file holds: ordered metadata and tensors. */
export interface GgufFileInput {
  /** Ordered key/value metadata. `general.alignment` (uint32), when present, sets the alignment (default 32). */
  readonly metadata: Iterable<readonly [string, GgufValue]>;
  readonly tensors: readonly GgufTensorInput[];
}

const textEncoder = new TextEncoder();

class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void { this.reserve(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v: number): void { this.reserve(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v: number): void { this.reserve(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number): void { this.reserve(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number): void { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.reserve(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.reserve(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number): void { this.reserve(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: bigint | number): void { this.reserve(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: bigint | number): void { this.reserve(8); this.view.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array): void { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  string(s: string): void { const b = textEncoder.encode(s); this.u64(b.length); this.bytes(b); }
  result(): Uint8Array { return this.buf.slice(0, this.length); }
}

function writeScalar(sink: ByteSink, type: GgufValueTypeName, v: unknown, key: string): void {
  switch (type) {
    case 'uint8': return sink.u8(v as number);
    case 'int8': return sink.i8(v as number);
    case 'uint16': return sink.u16(v as number);
    case 'int16': return sink.i16(v as number);
    case 'uint32': return sink.u32(v as number);
    case 'int32': return sink.i32(v as number);
    case 'float32': return sink.f32(v as number);
    case 'float64': return sink.f64(v as number);
    case 'uint64': return sink.u64(v as bigint);
    case 'int64': return sink.i64(v as bigint);
    case 'bool': return sink.u8(v ? 1 : 0);
    case 'string': return sink.string(v as string);
    case 'array': return writeArray(sink, v as GgufArrayValue, key);
  }
}

function writeArray(sink: ByteSink, a: GgufArrayValue, key: string): void {
  if (!(a.itemType in GGUF_VALUE_TYPE)) throw new InvalidArgumentError(key, `unknown GGUF array item type ${String(a.itemType)}`);
  sink.u32(GGUF_VALUE_TYPE[a.itemType]);
  const items = a.value as ArrayLike<unknown>;
  sink.u64(items.length);
  for (let i = 0; i < items.length; i++) writeScalar(sink, a.itemType, items[i], key);
}

function checkValue(key: string, v: GgufValue): void {
  if (!((v as { type: string }).type in GGUF_VALUE_TYPE)) throw new InvalidArgumentError(key, `unknown GGUF value type ${String((v as { type: string }).type)}`);
  const t = (v as { type: string }).type;
  if ((t === 'uint64' || t === 'int64') && typeof v.value !== 'bigint') throw new InvalidArgumentError(key, `${t} values must be bigints`);
}

const pad = (n: number, alignment: number): number => (alignment - (n % alignment)) % alignment;

/** Where the parts of a GGUF file go. @internal */
export interface Plan {
  readonly header: Uint8Array;
  readonly alignment: number;
  readonly offsets: readonly number[];
  readonly dataBytes: number;
}

/** The header bytes and tensor offsets of a GGUF file (shared by `encodeGguf` and the Node entry's `writeGguf`). @internal */
export function plan(input: GgufFileInput): Plan {
  const metadata = [...input.metadata];
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const seen = new Set<string>();
  for (const [key, v] of metadata) {
    if (seen.has(key)) throw new InvalidArgumentError('metadata', `duplicate key ${key}`);
    seen.add(key);
    checkValue(key, v);
    if (key === 'general.alignment') {
      if (v.type !== 'uint32' || !Number.isInteger(v.value) || v.value <= 0 || v.value % 8 !== 0) {
        throw new InvalidArgumentError('general.alignment', 'must be a uint32 multiple of 8');
      }
      alignment = v.value;
    }
  }
  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64(input.tensors.length);
  sink.u64(metadata.length);
  for (const [key, v] of metadata) {
    sink.string(key);
    sink.u32(GGUF_VALUE_TYPE[v.type]);
    if (v.type === 'array') writeArray(sink, v, key);
    else writeScalar(sink, v.type, v.value, key);
  }
  const offsets: number[] = [];
  let offset = 0;
  const names = new Set<string>();
  for (const t of input.tensors) {
    if (names.has(t.name)) throw new InvalidArgumentError('tensors', `duplicate tensor ${t.name}`);
    names.add(t.name);
    if (textEncoder.encode(t.name).length > 64) throw new InvalidArgumentError(t.name, 'GGUF tensor names are at most 64 bytes');
    if (t.shape.length < 1 || t.shape.length > 4) throw new InvalidArgumentError(t.name, `GGUF tensors have 1 to 4 dimensions, got ${t.shape.length}`);
    const count = t.shape.reduce((a, b) => a * b, 1);
    const need = ggmlTensorBytes(t.type, count);
    if (t.data.byteLength !== need) throw new InvalidArgumentError(t.name, `${t.type} [${t.shape.join(', ')}] needs ${need} bytes, got ${t.data.byteLength}`);
    sink.string(t.name);
    sink.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) sink.u64(t.shape[i]!);
    sink.u32(GGML_TYPE_ID[t.type]!);
    sink.u64(offset);
    offsets.push(offset);
    offset += need;
    offset += pad(offset, alignment);
  }
  const headerLength = sink.length;
  for (let i = 0; i < pad(headerLength, alignment); i++) sink.u8(0);
  return { header: sink.result(), alignment, offsets, dataBytes: offset };
}

/**
 * Encodes a GGUF v3 file in memory: header (magic, version 3, tensor and KV counts), typed metadata, tensor infos
 * (dims reversed to ggml order, type, offset) and the tensor data, each tensor aligned to `general.alignment`
 * (default 32) and padded with zeros.
 *
 * @example
 * ```ts
 * const bytes = encodeGguf({
 *   metadata: [['general.architecture', gguf.str('llama')]],
 *   tensors: [{ name: 'w', shape: [2, 32], type: 'Q8_0', data: encodeGgmlTensor('Q8_0', values) }],
 * });
 * ```
 */
export function encodeGguf(input: GgufFileInput): Uint8Array {
  const p = plan(input);
  const out = new Uint8Array(p.header.length + p.dataBytes);
  out.set(p.header);
  input.tensors.forEach((t, i) => out.set(t.data, p.header.length + p.offsets[i]!));
  return out;
}
