import { describe, expect, it } from 'vitest';
import {
  bfloat16ToFloat32,
  decodeBfloat16Array,
  decodeFloat16Array,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  float32ToFloat8,
  float8Table,
} from './float-conversion.js';

describe('float16', () => {
  it('decodes hand-computed bit patterns', () => {
    expect(float16ToFloat32(0x3c00)).toBe(1);
    expect(float16ToFloat32(0xc000)).toBe(-2);
    expect(float16ToFloat32(0x3555)).toBe(0.333251953125); // (1 + 341/1024) / 4
    expect(float16ToFloat32(0x7bff)).toBe(65504);
    expect(float16ToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16ToFloat32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(float16ToFloat32(0x0400)).toBe(2 ** -14);
    expect(float16ToFloat32(0x7c00)).toBe(Infinity);
    expect(float16ToFloat32(0xfc00)).toBe(-Infinity);
    expect(float16ToFloat32(0x7e00)).toBeNaN();
    expect(Object.is(float16ToFloat32(0x8000), -0)).toBe(true);
  });
  it('encodes with round-to-nearest-even', () => {
    expect(float32ToFloat16(1)).toBe(0x3c00);
    expect(float32ToFloat16(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(float32ToFloat16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even
    expect(float32ToFloat16(65519)).toBe(0x7bff);
    expect(float32ToFloat16(65520)).toBe(0x7c00);
    expect(float32ToFloat16(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal
    expect(float32ToFloat16(1.5 * 2 ** -25)).toBe(0x0001);
    expect(float32ToFloat16(-0)).toBe(0x8000);
    expect(float32ToFloat16(NaN) & 0x7c00).toBe(0x7c00);
  });
  it('round-trips every finite bit pattern, and the bulk decoder agrees with the scalar one', () => {
    const bytes = new Uint8Array(65536 * 2);
    for (let b = 0; b < 65536; b++) {
      bytes[2 * b] = b & 0xff;
      bytes[2 * b + 1] = b >>> 8;
    }
    const out = decodeFloat16Array(bytes, new Float32Array(65536));
    for (let b = 0; b < 65536; b++) {
      const v = float16ToFloat32(b);
      if (Number.isNaN(v)) continue;
      expect(out[b]).toBe(v);
      if (float32ToFloat16(v) !== b) throw new Error(`pattern ${b.toString(16)} did not round-trip`);
    }
  });
});

describe('bfloat16', () => {
  it('decodes and encodes hand-computed values', () => {
    expect(bfloat16ToFloat32(0x3f80)).toBe(1);
    expect(bfloat16ToFloat32(0x4049)).toBe(3.140625);
    expect(bfloat16ToFloat32(0xc2f7)).toBe(-123.5);
    expect(bfloat16ToFloat32(0x0001)).toBe(2 ** -133);
    expect(float32ToBfloat16(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(float32ToBfloat16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(float32ToBfloat16(Math.PI)).toBe(0x4049);
    expect(decodeBfloat16Array(new Uint8Array([0x80, 0x3f, 0xf7, 0xc2]), new Float32Array(2))).toEqual(new Float32Array([1, -123.5]));
    // Every bfloat16 bit pattern, from even- and odd-aligned bytes, is the high half of its float32 (NaNs kept bit for bit).
    const all = new Uint8Array(2 * 65536 + 1);
    for (let v = 0; v < 65536; v++) {
      all[2 * v] = v & 0xff;
      all[2 * v + 1] = v >> 8;
    }
    const odd = new Uint8Array(all.byteLength + 1);
    odd.set(all.subarray(0, 2 * 65536), 1);
    for (const source of [all.subarray(0, 2 * 65536), odd.subarray(1)]) {
      const words = new Uint32Array(decodeBfloat16Array(source, new Float32Array(65536)).buffer);
      for (let v = 0; v < 65536; v++) if (words[v] !== v * 65536) throw new Error(`bfloat16 0x${v.toString(16)} decoded to 0x${words[v]!.toString(16)}`);
    }
  });
  it('round-trips every finite bit pattern', () => {
    for (let b = 0; b < 65536; b++) {
      const v = bfloat16ToFloat32(b);
      if (!Number.isNaN(v) && float32ToBfloat16(v) !== b) throw new Error(`pattern ${b.toString(16)} did not round-trip`);
    }
  });
});

describe('float8', () => {
  it('decodes hand-computed E4M3 and E5M2 values', () => {
    const e4 = float8Table('e4m3');
    expect(e4[0x38]).toBe(1);
    expect(e4[0xb8]).toBe(-1);
    expect(e4[0x7e]).toBe(448);
    expect(e4[0x01]).toBe(2 ** -9);
    expect(e4[0x7f]).toBeNaN();
    const e5 = float8Table('e5m2');
    expect(e5[0x3c]).toBe(1);
    expect(e5[0x7b]).toBe(57344);
    expect(e5[0x01]).toBe(2 ** -16);
    expect(e5[0x7c]).toBe(Infinity);
    expect(float8Table('e8m0')[127]).toBe(1);
  });
  it('encodes to the nearest code and round-trips every finite code', () => {
    expect(float32ToFloat8(448, 'e4m3')).toBe(0x7e);
    expect(float32ToFloat8(1000, 'e4m3')).toBe(0x7f);
    expect(float32ToFloat8(-1.5, 'e5m2')).toBe(0xbe);
    expect(float32ToFloat8(1e6, 'e5m2')).toBe(0x7c);
    expect(float32ToFloat8(1.0625, 'e4m3')).toBe(0x38); // tie between 1 and 1.125 -> even code
    for (const format of ['e4m3', 'e5m2', 'e8m0'] as const) {
      const table = float8Table(format);
      for (let b = 0; b < 256; b++) {
        const v = table[b]!;
        if (Number.isFinite(v) && !(v === 0 && b & 0x80 && format === 'e8m0')) expect(float32ToFloat8(v, format)).toBe(b);
      }
    }
  });
});
