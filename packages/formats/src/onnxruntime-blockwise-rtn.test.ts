import { dequantize, parseFormat, quantize, type Matrix } from '@bitsmith/core';
import { describe, expect, it } from 'vitest';
import { packMatMulNBits } from './onnx-matmul-nbits.js';
import { onnxruntimeBlockwiseRtn } from './onnxruntime-blockwise-rtn.js';

const m = (rows: number, columns: number, values: number[]): Matrix => ({ dtype: 'float32', shape: [rows, columns], data: Float32Array.from(values) });

describe('onnxruntimeBlockwiseRtn (onnxruntime MatMulNBitsQuantizer, RTN)', () => {
  it('symmetric: worked example of a block whose extreme is negative (scale -2/-8 = 0.25, ties away from zero)', () => {
    // 1 -> 1/0.25 + 8 = 12; -2 -> 0; 0.5 -> 10; 0.625 -> 10.5 -> 11 (half-even would give 10); 1.9 -> 15.6 -> 16 -> 15 (clamped).
    const q = onnxruntimeBlockwiseRtn(m(1, 16, [1, -2, 0.5, 0.625, 1.9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), { blockSize: 16 });
    expect(Array.from(q.scales)).toEqual([0.25]);
    expect(Array.from(q.codes.subarray(0, 6))).toEqual([12, 0, 10, 11, 15, 8]);
    expect(Array.from(dequantize(q).data.subarray(0, 5))).toEqual([1, -2, 0.5, 0.75, 1.75]);
  });

  it('symmetric: a positive extreme gives a negative scale, so the extreme is exact and the other side reaches 7|scale|', () => {
    const q = onnxruntimeBlockwiseRtn(m(1, 16, [3, -1, -2.5, 2.8125, ...new Array(12).fill(0)]), { blockSize: 16 });
    expect(q.scales[0]).toBe(-0.375);
    // 3 -> code 0 -> (0 - 8) * -0.375 = 3; -1 -> 10.667 -> 11 -> -1.125; -2.5 -> 14.667 -> 15 -> -2.625; 2.8125 -> 0.5 -> 1 (away from zero).
    expect(Array.from(q.codes.subarray(0, 4))).toEqual([0, 11, 15, 1]);
    expect(Array.from(dequantize(q).data.subarray(0, 3))).toEqual([3, -1.125, -2.625]);
  });

  it('asymmetric: scale (max - min) / 15 with 0 inside the range, zero point roundf(-min / scale)', () => {
    const q = onnxruntimeBlockwiseRtn(m(1, 16, [1.5, 0.5, 1, 0.75, ...new Array(12).fill(1)]), { blockSize: 16, symmetric: false });
    expect(q.scales[0]).toBe(Math.fround(1.5 / 15));
    expect(q.zeroPoints![0]).toBe(0);
    expect(q.codes[0]).toBe(15);
    const neg = onnxruntimeBlockwiseRtn(m(1, 16, [-1.5, 0, 3, ...new Array(13).fill(0)]), { blockSize: 16, symmetric: false });
    expect(neg.scales[0]).toBe(Math.fround(4.5 / 15));
    expect(neg.zeroPoints![0]).toBe(5);
    expect(Array.from(neg.codes.subarray(0, 3))).toEqual([0, 5, 15]);
  });

  it('packs into MatMulNBits as is; on a random matrix its error differs from bitsmith RTN (absmax / 7.5) but both stay within half a step', () => {
    let s = 7;
    const values = Array.from({ length: 8 * 64 }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5));
    const w = m(8, 64, values);
    const q = onnxruntimeBlockwiseRtn(w);
    const packed = packMatMulNBits(q);
    expect(packed.zeroPoints).toBeUndefined();
    expect(packed.blockSize).toBe(32);
    const ours = dequantize(quantize(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 32 } })).data;
    const theirs = dequantize(q).data;
    let differs = false;
    for (let i = 0; i < values.length; i++) {
      const scale = Math.abs(q.scales[Math.floor(i / 32)]!);
      if (Math.abs(theirs[i]! - w.data[i]!) > scale / 2 + 1e-7 && Math.abs(w.data[i]!) <= 7 * scale) throw new Error(`element ${i} off by more than half a step`);
      if (theirs[i] !== ours[i]) differs = true;
    }
    expect(differs).toBe(true);
  });
});
