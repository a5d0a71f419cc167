import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { matrix, tensor } from '@bitsmith/core';
import { ModelFileError } from './model-file-error.js';
import { SAFETENSORS_DTYPE_BYTES, type SafetensorsDType } from './safetensors-dtype.js';
import { readSafetensorsBytes } from './safetensors-reader.js';
import { openSafetensors } from './safetensors-open.js';
import { encodeSafetensors, type WritableTensor } from './safetensors-writer.js';
import { writeSafetensors } from './safetensors-write-file.js';

const dir = mkdtempSync(join(tmpdir(), 'bitsmith-safetensors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Hand-written little-endian bytes and the float32 values each dtype must decode them to. */
const CASES: Record<SafetensorsDType, { bytes: number[]; values: number[] }> = {
  BOOL: { bytes: [0, 1, 1], values: [0, 1, 1] },
  U8: { bytes: [0, 7, 255], values: [0, 7, 255] },
  I8: { bytes: [0, 7, 0xff, 0x80], values: [0, 7, -1, -128] },
  F8_E4M3: { bytes: [0x38, 0xb8, 0x7e, 0x01], values: [1, -1, 448, 2 ** -9] },
  F8_E5M2: { bytes: [0x3c, 0x7b, 0xbe], values: [1, 57344, -1.5] },
  F8_E8M0: { bytes: [127, 128, 0], values: [1, 2, 2 ** -127] },
  I16: { bytes: [0x01, 0x00, 0xff, 0xff, 0x00, 0x80], values: [1, -1, -32768] },
  U16: { bytes: [0x01, 0x00, 0xff, 0xff], values: [1, 65535] },
  F16: { bytes: [0x00, 0x3c, 0x00, 0xc0, 0x55, 0x35, 0x01, 0x00], values: [1, -2, 0.333251953125, 2 ** -24] },
  BF16: { bytes: [0x80, 0x3f, 0x49, 0x40, 0xf7, 0xc2], values: [1, 3.140625, -123.5] },
  I32: { bytes: [0xff, 0xff, 0xff, 0xff, 0x10, 0x00, 0x00, 0x00], values: [-1, 16] },
  U32: { bytes: [0xff, 0xff, 0xff, 0xff], values: [4294967296] }, // 2^32 - 1 rounds to 2^32 in float32,
  F32: { bytes: [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc1], values: [1, -10] },
  F64: { bytes: [0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0x04, 0xc0], values: [1, -2.5] },
  I64: { bytes: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 5, 0, 0, 0, 0, 0, 0, 0], values: [-1, 5] },
  U64: { bytes: [0, 1, 0, 0, 0, 0, 0, 0], values: [256] },
};

function rawTensors(): Record<string, WritableTensor> {
  const out: Record<string, WritableTensor> = {};
  for (const [dtype, c] of Object.entries(CASES) as [SafetensorsDType, (typeof CASES)[SafetensorsDType]][]) {
    out[`t.${dtype.toLowerCase()}`] = { dtype, shape: [c.values.length], bytes: new Uint8Array(c.bytes) };
  }
  return out;
}

describe('safetensors round trip', () => {
  it('writes every dtype and metadata, and reads them back exactly (file, positional reads)', async () => {
    const path = join(dir, 'all.safetensors');
    await writeSafetensors(path, rawTensors(), { metadata: { format: 'pt', note: 'round trip' } });
    const file = await openSafetensors(path);
    try {
      expect(file.metadata).toEqual({ format: 'pt', note: 'round trip' });
      expect(file.names).toHaveLength(Object.keys(CASES).length);
      for (const [dtype, c] of Object.entries(CASES) as [SafetensorsDType, (typeof CASES)[SafetensorsDType]][]) {
        const name = `t.${dtype.toLowerCase()}`;
        const raw = await file.readRaw(name);
        expect(raw.dtype).toBe(dtype);
        expect([...raw.bytes]).toEqual(c.bytes);
        const t = await file.readTensor(name);
        expect(t.dtype).toBe('float32');
        expect(t.shape).toEqual([c.values.length]);
        expect([...t.data]).toEqual(c.values);
      }
    } finally {
      await file.close();
    }
  });

  it('lays the file out as the format requires (prefix, sorted padded header, aligned data)', async () => {
    const bytes = encodeSafetensors(rawTensors(), { metadata: { b: '2', a: '1' } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const json = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(json.trimEnd().length).toBeLessThanOrEqual(n);
    expect(json.slice(json.trimEnd().length)).toMatch(/^ *$/);
    const header = JSON.parse(json) as Record<string, { dtype: SafetensorsDType; data_offsets: [number, number] }>;
    const keys = Object.keys(header);
    expect(keys[0]).toBe('__metadata__');
    expect(Object.keys(header.__metadata__!)).toEqual(['a', 'b']);
    expect(keys.slice(1)).toEqual([...keys.slice(1)].sort());
    for (const k of keys.slice(1)) {
      const e = header[k]!;
      expect(Object.keys(e)).toEqual(['dtype', 'shape', 'data_offsets']);
      expect(e.data_offsets[0] % SAFETENSORS_DTYPE_BYTES[e.dtype]).toBe(0);
    }
    expect(bytes.byteLength).toBe(8 + n + Math.max(...keys.slice(1).map((k) => header[k]!.data_offsets[1])));
  });

  it('converts float32 tensors with storeAs and keeps natural dtypes', async () => {
    const w = matrix(new Float32Array([1, -2, 0.1, 65504, 3.140625, 1e-8]), 2, 3);
    const bytes = encodeSafetensors({
      f32: w,
      f16: { ...w, storeAs: 'F16' },
      bf16: { ...w, storeAs: 'BF16' },
      f64: tensor(new Float64Array([Math.PI]), [1]),
      i32: tensor(new Int32Array([-7, 9]), [2]),
      u16: tensor(new Uint16Array([65535]), [1]),
    });
    const file = readSafetensorsBytes(bytes);
    expect((await file.readTensor('f32')).data).toEqual(w.data);
    expect(file.entry('f16').dtype).toBe('F16');
    expect([...(await file.readTensor('f16')).data]).toEqual([1, -2, 0.0999755859375, 65504, 3.140625, 0]);
    expect([...(await file.readTensor('bf16')).data]).toEqual([1, -2, 0.10009765625, 65536, 3.140625, 1.34375 * 2 ** -27]);
    expect(file.entry('f64').dtype).toBe('F64');
    expect((await file.readRaw('f64')).bytes).toEqual(new Uint8Array(new Float64Array([Math.PI]).buffer));
    expect([...(await file.readTensor('i32')).data]).toEqual([-7, 9]);
    expect([...(await file.readTensor('u16')).data]).toEqual([65535]);
  });

  it('handles empty files of tensors and zero-size tensors', () => {
    const file = readSafetensorsBytes(encodeSafetensors({ empty: tensor(new Float32Array(0), [0, 4]) }));
    expect(file.entry('empty').shape).toEqual([0, 4]);
    expect(readSafetensorsBytes(encodeSafetensors({})).names).toEqual([]);
  });
});

describe('safetensors errors', () => {
  const good = encodeSafetensors({ w: matrix(new Float32Array([1, 2, 3, 4]), 2, 2) });
  const headerOf = (obj: unknown, data = new Uint8Array(0)): Uint8Array => {
    const json = new TextEncoder().encode(JSON.stringify(obj));
    const out = new Uint8Array(8 + json.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    out.set(data, 8 + json.length);
    return out;
  };
  const expectFileError = (bytes: Uint8Array, pattern: RegExp): void => {
    let caught: unknown;
    try {
      readSafetensorsBytes(bytes, 'bad.safetensors');
    } catch (e) {
      caught = e;
    }
    expect(ModelFileError.isInstance(caught)).toBe(true);
    expect((caught as Error).message).toMatch(/^bad\.safetensors: /);
    expect((caught as Error).message).toMatch(pattern);
  };

  it('rejects files shorter than the length prefix', () => expectFileError(good.subarray(0, 5), /shorter than the 8-byte/));
  it('rejects a header length past the end of the file', () => expectFileError(good.subarray(0, 20), /truncated.*header/));
  it('rejects an absurd header length', () => {
    const bytes = good.slice();
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 40n, true);
    expectFileError(bytes, /exceeds/);
  });
  it('rejects truncated tensor data', () => expectFileError(good.subarray(0, good.length - 4), /truncated.*tensor data/));
  it('rejects invalid JSON', () => {
    const bytes = good.slice();
    bytes[8] = 0x5b; // '['
    expectFileError(bytes, /not valid JSON/);
  });
  it('rejects a JSON array header', () => expectFileError(headerOf([1, 2]), /must be a JSON object/));
  it('rejects an unknown dtype', () => expectFileError(headerOf({ w: { dtype: 'F12', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /unknown or unsupported dtype "F12"/));
  it('rejects a bad shape', () => expectFileError(headerOf({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /shape must be/));
  it('rejects offsets that do not match the shape', () => expectFileError(headerOf({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4)), /needs 8/));
  it('rejects overlapping tensors', () =>
    expectFileError(
      headerOf({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /overlap/,
    ));
  it('rejects non-string metadata', () => expectFileError(headerOf({ __metadata__: { a: 1 } }), /__metadata__\.a must be a string/));
  it('names a missing file', async () => {
    await expect(openSafetensors(join(dir, 'missing.safetensors'))).rejects.toThrow(/missing\.safetensors: file not found/);
  });
  it('reports truncation when opening a file', async () => {
    const path = join(dir, 'truncated.safetensors');
    writeFileSync(path, good.subarray(0, good.length - 1));
    await expect(openSafetensors(path)).rejects.toThrow(/truncated/);
    writeFileSync(path, readFileSync(path).subarray(0, 3));
    await expect(openSafetensors(path)).rejects.toThrow(/shorter than the 8-byte/);
  });
});
