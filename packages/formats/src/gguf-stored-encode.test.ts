import { dequantize, parseFormat, quantize, type Matrix, type QuantizedTensor } from '@bitsmith/core';
import { describe, expect, it } from 'vitest';
import { encodeGridForGguf, gridElements, reorderGridRows } from './gguf-stored-encode.js';
import { permuteForGgmlRope } from './gguf-llama-export.js';
import { decodeGgmlTensor, encodeGgmlTensor } from './gguf-tensor-codec.js';
import type { GgmlTypeName } from './gguf-constants.js';

/** A heavy-tailed random [rows, columns] matrix (seeded). */
function weights(rows: number, columns: number, seed: number): Matrix {
  let a = seed >>> 0;
  const r = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const data = new Float32Array(rows * columns);
  for (let i = 0; i < data.length; i++) {
    const u = r() - 0.5;
    data[i] = -Math.sign(u) * Math.log(1 - 2 * Math.abs(u)) * 0.03 * (1 + (i % columns === 7 ? 6 : 0));
  }
  return { dtype: 'float32', shape: [rows, columns], data };
}

function rel(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

const w = weights(16, 512, 3);
const grid = (format: string, size: number | 'channel'): QuantizedTensor =>
  quantize(w, { format: parseFormat(format), granularity: size === 'channel' ? { type: 'channel' } : { type: 'group', size }, scaleEncoding: 'float16' });

describe('encodeGridForGguf: legacy blocks carry the calibrated codes', () => {
  const cases: [string, number | 'channel', GgmlTypeName][] = [
    ['int4', 32, 'Q4_0'],
    ['int4', 128, 'Q4_0'], // a group of 128 splits into 4 blocks of 32 with the same scale
    ['int4', 'channel', 'Q4_0'],
    ['int3', 32, 'Q4_0'], // 8 levels fit Q4_0's 16
    ['int8', 32, 'Q8_0'],
    ['int5', 64, 'Q5_0'],
  ];
  for (const [format, size, type] of cases) {
    it(`${format} ${size === 'channel' ? 'per channel' : `g${size}`} as ${type} decodes to the dequantized grid bit for bit`, () => {
      const q = grid(format, size);
      const target = dequantize(q).data as Float32Array;
      const result = encodeGridForGguf(gridElements(q), target, type);
      expect(result.path).toBe('exact');
      expect(result.refittedBlocks).toBe(0);
      // ggml's dequantization (decodeGgmlTensor, checked against ggml's block definitions) equals core's dequantize.
      expect([...decodeGgmlTensor(type, result.bytes, target.length)]).toEqual([...target]);
    });
  }

  it('asymmetric int4 g32 as Q4_1 keeps every code; offsets rounded to fp16 move values by at most that rounding', () => {
    const q = grid('int4-asym', 32);
    const target = dequantize(q).data as Float32Array;
    const result = encodeGridForGguf(gridElements(q), target, 'Q4_1');
    expect(result.path === 'carried' || result.path === 'exact').toBe(true);
    const decoded = decodeGgmlTensor('Q4_1', result.bytes, target.length);
    for (let b = 0; b < target.length / 32; b++) {
      // |m - fp16(m)| <= 2^-11 |m| with |m| <= 15 d: the error is within 2^-11 * 15 steps of the group.
      const step = q.scales[b]!;
      for (let j = 0; j < 32; j++) expect(Math.abs(decoded[b * 32 + j]! - target[b * 32 + j]!)).toBeLessThanOrEqual(16 * step * 2 ** -11 + 1e-7);
    }
  });

  it('int4 with float32 scales is carried with scales rounded to fp16', () => {
    const q = quantize(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 32 }, scaleEncoding: 'float32' });
    const target = dequantize(q).data as Float32Array;
    const result = encodeGridForGguf(gridElements(q), target, 'Q4_0');
    expect(result.path).toBe('carried');
    expect(result.relativeDeviation).toBeGreaterThan(0);
    expect(result.relativeDeviation).toBeLessThan(2 ** -11);
  });

  it('a grid that does not fit the blocks (int8 as Q4_0; groups of 16 straddle nothing but carry 256 levels) is re-quantized', () => {
    const q = grid('int8', 32);
    const target = dequantize(q).data as Float32Array;
    const result = encodeGridForGguf(gridElements(q), target, 'Q4_0');
    expect(result.path).toBe('re-quantized');
    expect(result.refittedBlocks).toBe(result.blocks);
    // and is then exactly ggml's quantizer on the calibrated values
    expect([...result.bytes]).toEqual([...encodeGgmlTensor('Q4_0', target)]);
  });
});

describe('encodeGridForGguf: k-quants re-derive their sub-block scales from the grid', () => {
  for (const [format, size, type] of [
    ['int4', 32, 'Q4_K'],
    ['int4-asym', 32, 'Q4_K'],
    ['int4', 128, 'Q4_K'],
    ['int3', 32, 'Q4_K'],
    ['int5-asym', 32, 'Q5_K'],
    ['int4', 32, 'Q6_K'],
    ['int4', 64, 'Q6_K'],
  ] as [string, number, GgmlTypeName][]) {
    // Symmetric grids keep the min at a fixed multiple of the scale, so the 6-bit sub-scale rounding is all they lose
    // (well under half of a fresh fit); asymmetric grids also round a free min per sub-block to 6 bits.
    const ratio = format.endsWith('-asym') ? 1 : 0.5;
    it(`${format} g${size} as ${type}: closer to the calibrated weights than ggml's quantizer run on them (x${ratio}), most codes kept`, () => {
      const q = grid(format, size);
      const target = dequantize(q).data as Float32Array;
      const result = encodeGridForGguf(gridElements(q), target, type);
      expect(result.path).toBe('re-derived');
      const decoded = decodeGgmlTensor(type, result.bytes, target.length);
      const fresh = decodeGgmlTensor(type, encodeGgmlTensor(type, target), target.length);
      expect(result.relativeDeviation).toBeCloseTo(rel(decoded, target), 12);
      expect(rel(decoded, target)).toBeLessThan(ratio * rel(fresh, target));
      // Codes: the decoded value rounds back to the calibrated level in nearly every element.
      const g = gridElements(q);
      let kept = 0;
      for (let i = 0; i < target.length; i++) {
        const level = Math.round(decoded[i]! / g.steps[i]! - g.offsets[i]!);
        if (level === g.codes[i]) kept++;
      }
      expect(kept / target.length).toBeGreaterThan(0.97);
    });
  }

  it('int8 as Q4_K has more levels than Q4_K holds: re-quantized, and reported so', () => {
    const q = grid('int8', 32);
    const result = encodeGridForGguf(gridElements(q), dequantize(q).data as Float32Array, 'Q4_K');
    expect(result.path).toBe('re-quantized');
    expect(result.refittedBlocks).toBe(result.blocks);
  });
});

describe('reorderGridRows', () => {
  it('permuting the grid rows for RoPE and then encoding equals encoding the permuted calibrated weights', () => {
    const q = grid('int4', 32);
    const target = dequantize(q).data as Float32Array;
    const reorder = <T extends Float32Array | Int16Array | Int32Array>(d: T): T => permuteForGgmlRope(d, 2, 8, 512);
    const permuted = encodeGridForGguf(reorderGridRows(gridElements(q), reorder), reorder(target), 'Q4_0');
    expect(permuted.path).toBe('exact');
    expect([...decodeGgmlTensor('Q4_0', permuted.bytes, target.length)]).toEqual([...reorder(target)]);
  });
});
