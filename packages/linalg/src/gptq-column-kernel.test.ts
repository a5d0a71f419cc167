import { describe, expect, it } from 'vitest';
import { createGptqColumnKernel } from './gptq-column-kernel.js';
import { createRandom } from './prng.js';

/** GPTQ's column loop written out plainly (float64 arithmetic, float32 storage), the kernel's oracle. */
function columnLoop(
  rows: number,
  k: number,
  columns: Float32Array,
  u: Float64Array,
  n: number,
  start: number,
  scale: Float64Array,
  zero: Float64Array,
  spare: Float64Array,
  low: number,
  high: number,
  shift: number,
): { errors: Float32Array; codes: Uint8Array } {
  const w = Float32Array.from(columns);
  const errors = new Float32Array(k * rows);
  const codes = new Uint8Array(k * rows);
  for (let i = 0; i < k; i++) {
    const d = u[(start + i) * n + start + i]!;
    for (let r = 0; r < rows; r++) {
      const x = w[i * rows + r]!;
      const s = scale[r]!;
      let code: number;
      if (s > 0) {
        const v = x / s + zero[r]!;
        // Round half to even, written without any shared helper.
        const f = Math.floor(v);
        let rounded = v - f > 0.5 ? f + 1 : v - f < 0.5 ? f : f % 2 === 0 ? f : f + 1;
        rounded = Math.min(Math.max(rounded, low), high);
        code = rounded + shift;
      } else {
        code = spare[r]!;
      }
      codes[i * rows + r] = code;
      const q = (code - shift - zero[r]!) * s;
      errors[i * rows + r] = (x - q) / d;
    }
    for (let j = i + 1; j < k; j++) {
      const h = u[(start + i) * n + start + j]!;
      for (let r = 0; r < rows; r++) w[j * rows + r] = w[j * rows + r]! - h * errors[i * rows + r]!;
    }
  }
  return { errors, codes };
}

describe('createGptqColumnKernel', () => {
  const cases = [
    { name: 'int4 symmetric, even rows', rows: 64, k: 16, low: -8, high: 7, shift: 8, asym: false },
    { name: 'int4 asymmetric, odd rows (scalar tail)', rows: 37, k: 9, low: 0, high: 15, shift: 0, asym: true },
    { name: 'int2 symmetric, one row', rows: 1, k: 5, low: -2, high: 1, shift: 2, asym: false },
    { name: 'int8 asymmetric', rows: 130, k: 16, low: 0, high: 255, shift: 0, asym: true },
  ];
  for (const c of cases) {
    it(`equals the plain column loop bit for bit: ${c.name}`, async () => {
      const random = createRandom(c.rows * 31 + c.k);
      const n = c.k + 11;
      const start = 7;
      // An upper factor with positive diagonal, some exact zeros above it.
      const u = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        u[i * n + i] = 0.5 + random.uniform();
        for (let j = i + 1; j < n; j++) u[i * n + j] = random.uniform() < 0.2 ? 0 : random.uniform() - 0.5;
      }
      const columns = new Float32Array(c.k * c.rows);
      for (let i = 0; i < columns.length; i++) columns[i] = (random.uniform() - 0.5) * 3;
      // Halfway values hit the ties of the rounding.
      columns[0] = 0.5;
      if (columns.length > 3) columns[3] = -1.5;
      const scale = new Float64Array(c.rows);
      const zero = new Float64Array(c.rows);
      const spare = new Float64Array(c.rows);
      for (let r = 0; r < c.rows; r++) {
        scale[r] = r % 11 === 3 ? 0 : r === 0 ? 1 : 0.05 + random.uniform() * 0.4;
        zero[r] = c.asym ? Math.round(random.uniform() * c.high) : 0;
        spare[r] = c.asym ? zero[r]! : c.shift;
      }
      const expected = columnLoop(c.rows, c.k, columns, u, n, start, scale, zero, spare, c.low, c.high, c.shift);
      const kernel = await createGptqColumnKernel();
      const errors = new Float32Array(c.k * c.rows);
      const codes = new Uint8Array(c.k * c.rows);
      const before = Float32Array.from(columns);
      kernel.quantizeColumns({ rows: c.rows, count: c.k, columns, factor: u, size: n, start, scale, zero, spare, low: c.low, high: c.high, shift: c.shift, errors, codes });
      expect(Array.from(codes)).toEqual(Array.from(expected.codes));
      expect(Array.from(errors)).toEqual(Array.from(expected.errors));
      expect(columns).toEqual(before);
      // Every code is on the grid, and ties went to even.
      for (const code of codes) expect(code - c.shift).toBeGreaterThanOrEqual(c.low);
      if (!c.asym && c.rows > 1) expect(codes[0]).toBe(c.shift); // 0.5 / 1 rounds to 0
    });
  }

  it('grows its memory for large calls and rejects arguments that do not fit', async () => {
    const kernel = await createGptqColumnKernel();
    const rows = 4096;
    const k = 128;
    const u = new Float64Array(k * k);
    for (let i = 0; i < k; i++) u[i * k + i] = 1;
    const columns = new Float32Array(k * rows).fill(0.26);
    const errors = new Float32Array(k * rows);
    const codes = new Uint8Array(k * rows);
    const scale = new Float64Array(rows).fill(0.5);
    kernel.quantizeColumns({ rows, count: k, columns, factor: u, size: k, start: 0, scale, zero: new Float64Array(rows), spare: new Float64Array(rows), low: -8, high: 7, shift: 8, errors, codes });
    // 0.26 / 0.5 = 0.52 rounds to 1: q = 0.5, error -0.24 (identity factor: no updates).
    expect(codes.every((x) => x === 9)).toBe(true);
    expect(errors[k * rows - 1]).toBeCloseTo(-0.24, 6);
    expect(() => kernel.quantizeColumns({ rows, count: k, columns, factor: u, size: k, start: 1, scale, zero: scale, spare: scale, low: -8, high: 7, shift: 8, errors, codes })).toThrow(/start/);
    expect(() => kernel.quantizeColumns({ rows, count: k, columns: columns.subarray(1), factor: u, size: k, start: 0, scale, zero: scale, spare: scale, low: -8, high: 7, shift: 8, errors, codes })).toThrow(/columns/);
  });
});
