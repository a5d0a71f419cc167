import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf as hfGguf } from '@huggingface/gguf';
import { describe, expect, it } from 'vitest';
import type { GgufValue } from './gguf-metadata.js';
import { parseGguf } from './gguf-reader.js';
import { encodeGgmlTensor } from './gguf-tensor-codec.js';
import { encodeGguf } from './gguf-writer.js';

const values = Float32Array.from({ length: 2 * 64 }, (_, i) => Math.sin(i));
const metadata: [string, GgufValue][] = [
  ['general.architecture', { type: 'string', value: 'llama' }],
  ['u8', { type: 'uint8', value: 200 }],
  ['i8', { type: 'int8', value: -100 }],
  ['u16', { type: 'uint16', value: 60000 }],
  ['i16', { type: 'int16', value: -30000 }],
  ['u32', { type: 'uint32', value: 4000000000 }],
  ['i32', { type: 'int32', value: -2000000000 }],
  ['f32', { type: 'float32', value: 0.5 }],
  ['f64', { type: 'float64', value: Math.PI }],
  ['u64', { type: 'uint64', value: 2n ** 63n }],
  ['i64', { type: 'int64', value: -(2n ** 40n) }],
  ['flag', { type: 'bool', value: true }],
  ['text', { type: 'string', value: 'héllo ▁world' }],
  ['strings', { type: 'array', itemType: 'string', value: ['a', '', '▁b'] }],
  ['floats', { type: 'array', itemType: 'float32', value: new Float32Array([1.5, -2]) }],
  ['ints', { type: 'array', itemType: 'int32', value: new Int32Array([1, -2, 3]) }],
  ['nested', { type: 'array', itemType: 'array', value: [{ type: 'array', itemType: 'uint8', value: new Uint8Array([1, 2]) }] }],
];
const tensors = [
  { name: 'a.weight', shape: [2, 64], type: 'Q8_0' as const, data: encodeGgmlTensor('Q8_0', values) },
  { name: 'b.weight', shape: [3], type: 'F32' as const, data: encodeGgmlTensor('F32', new Float32Array([1, 2, 3])) },
  { name: 'c.weight', shape: [2, 64], type: 'Q4_0' as const, data: encodeGgmlTensor('Q4_0', values) },
];

describe('GGUF writer and reader', () => {
  const bytes = encodeGguf({ metadata, tensors });

  it('writes the v3 header, aligned offsets and padding', () => {
    const view = new DataView(bytes.buffer);
    expect(String.fromCharCode(...bytes.subarray(0, 4))).toBe('GGUF');
    expect(view.getUint32(4, true)).toBe(3);
    expect(view.getBigUint64(8, true)).toBe(3n);
    expect(view.getBigUint64(16, true)).toBe(BigInt(metadata.length));
    const file = parseGguf(bytes);
    expect(file.dataOffset % 32).toBe(0);
    expect(file.tensors.map((t) => t.offset)).toEqual([0, 160, 192]); // 4 Q8_0 blocks = 136 -> 160, 12 -> 192
    expect(bytes.length - file.dataOffset).toBe(192 + 96); // 4 Q4_0 blocks = 72 -> 96
  });

  it('round-trips metadata, tensor infos and data', () => {
    const file = parseGguf(bytes);
    expect(file.version).toBe(3);
    for (const [key, v] of metadata) {
      const got = file.metadata.get(key)!;
      expect(got.type).toBe(v.type);
      if (v.type === 'float32') expect(got.value).toBe(Math.fround(v.value));
      else if (v.type === 'array' && v.itemType !== 'array') expect(Array.from(got.value as ArrayLike<unknown>)).toEqual(Array.from(v.value as ArrayLike<unknown>));
      else if (v.type !== 'array') expect(got.value).toEqual(v.value);
    }
    expect(file.tensors[0]).toMatchObject({ name: 'a.weight', dims: [64, 2], shape: [2, 64], type: 'Q8_0', typeId: 8 });
    expect(file.tensorBytes('c.weight')).toEqual(tensors[2]!.data);
    expect(file.tensorValues('b.weight')).toEqual(new Float32Array([1, 2, 3]));
  });

  it('honours general.alignment', () => {
    const file = parseGguf(encodeGguf({ metadata: [['general.alignment', { type: 'uint32', value: 64 }]], tensors }));
    expect(file.alignment).toBe(64);
    expect(file.tensors.map((t) => t.offset)).toEqual([0, 192, 256]);
    expect(file.dataOffset % 64).toBe(0);
  });

  it('is parsed identically by @huggingface/gguf', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bitsmith-gguf-'));
    const path = join(dir, 'test.gguf');
    writeFileSync(path, bytes);
    let parsed: Awaited<ReturnType<typeof hfGguf>>;
    try {
      parsed = await hfGguf(path, { allowLocalFile: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(parsed.metadata.version).toBe(3);
    expect(parsed.metadata.tensor_count).toBe(3n);
    const md = parsed.metadata as unknown as Record<string, unknown>;
    expect(md['general.architecture']).toBe('llama');
    expect(md.u32).toBe(4000000000);
    expect(md.i8).toBe(-100);
    expect(md.u64).toBe(2n ** 63n);
    expect(md.flag).toBe(true);
    expect(md.text).toBe('héllo ▁world');
    expect(md.strings).toEqual(['a', '', '▁b']);
    expect(md.ints).toEqual([1, -2, 3]);
    const info = parsed.tensorInfos.map((t) => ({ name: t.name, shape: t.shape.map(Number), dtype: t.dtype, offset: Number(t.offset) }));
    expect(info).toEqual(parseGguf(bytes).tensors.map((t) => ({ name: t.name, shape: [...t.dims], dtype: t.typeId, offset: t.offset })));
  });

  it('rejects bad input', () => {
    expect(() => parseGguf(new Uint8Array(16))).toThrow(/magic/);
    expect(() => parseGguf(bytes.subarray(0, 40))).toThrow(/truncated/);
    expect(() => encodeGguf({ metadata: [], tensors: [{ ...tensors[0]!, shape: [2, 32] }] })).toThrow(/bytes/);
  });
});
