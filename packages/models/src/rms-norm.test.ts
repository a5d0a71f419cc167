import { describe, expect, it } from 'vitest';
import { addRmsNorm, rmsNorm } from './rms-norm.js';

describe('rmsNorm', () => {
  it('matches the closed form x / sqrt(mean(x^2) + eps) * w', () => {
    const x = Float32Array.from([3, 4, 0, -12, 1, 2, 2, 1]);
    const w = Float32Array.from([1, 0.5, 2, -1]);
    const y = rmsNorm(x, 2, 4, w, 1e-6);
    // Row 0: mean of squares (9 + 16 + 0 + 144) / 4 = 42.25, rms 6.5.
    const r0 = Math.sqrt(42.25 + 1e-6);
    // Row 1: (1 + 4 + 4 + 1) / 4 = 2.5.
    const r1 = Math.sqrt(2.5 + 1e-6);
    const expected = [3 / r0, (4 / r0) * 0.5, 0, 12 / r0, 1 / r1, (2 / r1) * 0.5, (2 / r1) * 2, -1 / r1];
    expected.forEach((e, i) => expect(y[i]).toBeCloseTo(e, 6));
  });
  it('works in place', () => {
    const x = Float32Array.from([1, 1, 1, 1]);
    rmsNorm(x, 1, 4, Float32Array.from([2, 2, 2, 2]), 0, x);
    expect([...x]).toEqual([2, 2, 2, 2]);
  });
});

describe('rmsNorm, four rows at a time', () => {
  it('gives the bits of the one-row loop (left-to-right float64 sums) for any row count, in place too', () => {
    const oneRow = (x: Float32Array, rows: number, columns: number, w: Float32Array, eps: number): Float32Array => {
      const out = new Float32Array(rows * columns);
      for (let r = 0; r < rows; r++) {
        let sum = 0;
        for (let j = 0; j < columns; j++) sum += x[r * columns + j]! * x[r * columns + j]!;
        const scale = 1 / Math.sqrt(sum / columns + eps);
        for (let j = 0; j < columns; j++) out[r * columns + j] = Math.fround(x[r * columns + j]! * scale) * w[j]!;
      }
      return out;
    };
    let seed = 3;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 40;
    for (const rows of [1, 3, 4, 5, 9, 17]) {
      const columns = 37;
      const x = Float32Array.from({ length: rows * columns }, rnd);
      const w = Float32Array.from({ length: columns }, rnd);
      const want = oneRow(x, rows, columns, w, 1e-6);
      expect(Array.from(rmsNorm(x, rows, columns, w, 1e-6))).toEqual(Array.from(want));
      const inPlace = x.slice();
      rmsNorm(inPlace, rows, columns, w, 1e-6, inPlace);
      expect(Array.from(inPlace)).toEqual(Array.from(want));
    }
  });
});

describe('addRmsNorm', () => {
  it('gives the bits of the float32 add loop followed by rmsNorm, and leaves the sum in h', () => {
    let seed = 11;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 60;
    for (const rows of [1, 2, 4, 7, 13]) {
      const columns = 41;
      const h = Float32Array.from({ length: rows * columns }, rnd);
      const x = Float32Array.from({ length: rows * columns }, rnd);
      const w = Float32Array.from({ length: columns }, rnd);
      const sum = h.slice();
      for (let i = 0; i < sum.length; i++) sum[i]! += x[i]!;
      const want = rmsNorm(sum, rows, columns, w, 1e-5);
      const got = h.slice();
      const out = new Float32Array(rows * columns);
      expect(addRmsNorm(got, x, rows, columns, w, 1e-5, out)).toBe(out);
      expect(Array.from(got)).toEqual(Array.from(sum));
      expect(Array.from(out)).toEqual(Array.from(want));
    }
  });
});
