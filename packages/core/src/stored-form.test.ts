import { describe, expect, it } from 'vitest';
import { StoredFormMismatchError } from './errors.js';
import { decodeStored, describeStored, storedBitsPerWeight, storedFormMismatch, storedGrid, storedShape, type StoredForm } from './stored-form.js';
import type { Matrix } from './tensor.js';

const m = (rows: number, columns: number, values: number[]): Matrix => ({ dtype: 'float32', shape: [rows, columns], data: Float32Array.from(values) });

// A 2 x 4 int2 symmetric grid per channel: codes are offsets from -2; scales 0.5 and 2 (exact in float16).
const grid: StoredForm = {
  kind: 'grid',
  tensor: {
    shape: [2, 4],
    format: { type: 'int', bits: 2, symmetric: true },
    granularity: { type: 'channel' },
    codes: Uint8Array.from([0, 1, 2, 3, 3, 2, 1, 0]),
    scales: Float32Array.from([0.5, 2]),
    scaleEncoding: 'float16',
  },
};

describe('stored forms (worked examples)', () => {
  it('grid decodes (code - 2) * scale and counts codes + fp16 scales', () => {
    expect(Array.from(decodeStored(grid).data)).toEqual([-1, -0.5, 0, 0.5, 2, 0, -2, -4]);
    expect(storedBitsPerWeight(grid)).toBe(2 + (2 * 16) / 8);
    expect(storedShape(grid)).toEqual([2, 4]);
    expect(storedGrid(grid)).toBe((grid as { tensor: unknown }).tensor);
  });

  it('lut looks codes up in their row’s table; bits are codes plus fp16 tables', () => {
    const lut: StoredForm = { kind: 'lut', tensor: { shape: [2, 3], bits: 1, codes: Uint8Array.from([0, 1, 1, 1, 0, 0]), lut: Float32Array.from([-1, 3, 0.25, 7]) } };
    expect(Array.from(decodeStored(lut).data)).toEqual([-1, 3, 3, 7, 0.25, 0.25]);
    expect(storedBitsPerWeight(lut)).toBe((6 * 1 + 4 * 16) / 6);
    expect(storedGrid(lut)).toBeUndefined();
  });

  it('codebook sums the stages’ vectors and scales rows; bits count codes, codebooks and row scales', () => {
    const codebook: StoredForm = {
      kind: 'codebook',
      tensor: {
        shape: [2, 4],
        dimension: 2,
        groupRows: 2,
        stages: [
          { codebookBits: 1, codes: Uint16Array.from([0, 1, 1, 1]), codebooks: Float32Array.from([1, 2, -3, 4]) },
          { codebookBits: 1, codes: Uint16Array.from([1, 0, 0, 0]), codebooks: Float32Array.from([0.5, 0.5, 0, 1]) },
        ],
        rowScales: Float32Array.from([1, 2]),
      },
    };
    // Row 0: [1,2]+[0,1], [-3,4]+[0.5,0.5]; row 1: 2 * ([-3,4]+[0.5,0.5]) twice.
    expect(Array.from(decodeStored(codebook).data)).toEqual([1, 3, -2.5, 4.5, -5, 9, -5, 9]);
    expect(storedBitsPerWeight(codebook)).toBe((2 * 16 + 2 * (4 * 1 + 4 * 16)) / 8);
  });

  it('low-rank adds A B to the base and its factor bits; sparse outliers replace values at their positions', () => {
    const lowRank: StoredForm = { kind: 'low-rank', base: grid, a: m(2, 1, [1, -2]), b: m(1, 4, [0.5, 0, 0, 1]), factorBits: 6 * 16 };
    expect(Array.from(decodeStored(lowRank).data)).toEqual([-0.5, -0.5, 0, 1.5, 1, 0, -2, -6]);
    expect(storedBitsPerWeight(lowRank)).toBe(2 + 32 / 8 + 96 / 8);
    const sparse: StoredForm = {
      kind: 'sparse-outliers',
      base: lowRank,
      sparse: { shape: [2, 4], rowPointers: Int32Array.from([0, 1, 2]), columnIndices: Int32Array.from([3, 0]), values: Float32Array.from([100, -50]) },
    };
    expect(Array.from(decodeStored(sparse).data)).toEqual([-0.5, -0.5, 0, 100, -50, 0, -2, -6]);
    // CSR: 2 values x (32 + 16) + 3 row pointers x 32.
    expect(storedBitsPerWeight(sparse)).toBe(storedBitsPerWeight(lowRank) + (2 * 48 + 3 * 32) / 8);
    expect(describeStored(sparse)).toBe('sparse-outliers(low-rank(grid))');
  });

  it('float is the weight itself at its storage width', () => {
    const w = m(1, 2, [0.1, -3]);
    const float: StoredForm = { kind: 'float', weight: w, storage: 'bfloat16' };
    expect(Array.from(decodeStored(float).data)).toEqual(Array.from(w.data));
    expect(decodeStored(float).data).not.toBe(w.data);
    expect(storedBitsPerWeight(float)).toBe(16);
  });

  it('storedFormMismatch walks a large plain grid in chunks of rows and names a mismatch in any chunk', () => {
    // 1100 x 1024 values: more than one chunk of 2^20 values.
    const rows = 1100;
    const columns = 1024;
    const codes = Uint8Array.from({ length: rows * columns }, (_, i) => (i * 7) % 16);
    const scales = Float32Array.from({ length: rows * 8 }, (_, g) => 0.01 + (g % 13) / 64);
    const zeroPoints = new Float32Array(rows * 8).fill(8);
    const tensor = { shape: [rows, columns] as [number, number], format: { type: 'int' as const, bits: 4, symmetric: false }, granularity: { type: 'group' as const, size: 128 }, codes, scales, zeroPoints, scaleEncoding: 'float32' as const };
    const form: StoredForm = { kind: 'grid', tensor };
    const weight = decodeStored(form);
    expect(storedFormMismatch(form, weight)).toBeUndefined();
    for (const at of [5, rows * columns - 3]) {
      const data = Float32Array.from(weight.data);
      data[at] = data[at]! + 1;
      expect(storedFormMismatch(form, { ...weight, data })).toMatch(new RegExp(`^element ${at} \\(row ${Math.floor(at / columns)}, column ${at % columns}\\) decodes to`));
    }
  });

  it('storedFormMismatch accepts float32 rounding and names the first element that differs beyond it', () => {
    const w = decodeStored(grid);
    expect(storedFormMismatch(grid, w)).toBeUndefined();
    const nudged = Float32Array.from(w.data);
    nudged[3] = Math.fround(0.5 + 2 ** -23); // one ulp of 0.5 away: rounding
    expect(storedFormMismatch(grid, { ...w, data: nudged })).toBeUndefined();
    nudged[5] = 0.25;
    expect(storedFormMismatch(grid, { ...w, data: nudged })).toMatch(/element 5 \(row 1, column 1\) decodes to 0, the weight is 0\.25/);
    expect(storedFormMismatch(grid, m(4, 2, Array.from(w.data)))).toMatch(/shape \[2, 4\]/);
    const error = new StoredFormMismatchError('svdquant', 'fc', 'x');
    expect(StoredFormMismatchError.isInstance(error)).toBe(true);
    expect(error.message).toBe("step 'svdquant', layer 'fc': x");
  });
});

describe('storedFormMismatch on float32 weights (monomorphic path) against the same weights in float64 (generic path)', () => {
  // A 3 x 256 int4 grid in groups of 128 with zero points: the float64 copy takes the generic comparison.
  const rows = 3;
  const columns = 256;
  const codes = Uint8Array.from({ length: rows * columns }, (_, i) => (i * 7) % 16);
  const tensor = { shape: [rows, columns] as [number, number], format: { type: 'int' as const, bits: 4, symmetric: false }, granularity: { type: 'group' as const, size: 128 }, codes, scales: Float32Array.from([0.5, 0.25, 1, 2, 0.125, 4]), zeroPoints: Float32Array.from([8, 7, 8, 9, 8, 8]), scaleEncoding: 'float32' as const };
  const form: StoredForm = { kind: 'grid', tensor };
  const decoded = decodeStored(form).data as Float32Array;
  const both = (data: Float32Array): [string | undefined, string | undefined] => [
    storedFormMismatch(form, { dtype: 'float32', shape: [rows, columns], data }),
    storedFormMismatch(form, { dtype: 'float64', shape: [rows, columns], data: Float64Array.from(data) } as unknown as Matrix),
  ];

  it('agrees: exact weights pass, a weight moved beyond the tolerance is named, a NaN weight is named', () => {
    expect(both(decoded.slice())).toEqual([undefined, undefined]);
    const moved = decoded.slice();
    moved[300] = moved[300]! + 0.01;
    const [fast, generic] = both(moved);
    expect(fast).toMatch(/^element 300 \(row 1, column 44\)/);
    expect(fast).toBe(generic);
    const tiny = decoded.slice();
    tiny[5] = tiny[5]! * (1 + 2 ** -23); // within 2^-20 (|w| + max |W|)
    expect(both(tiny)).toEqual([undefined, undefined]);
    const nan = decoded.slice();
    nan[700] = Number.NaN; // max |W| is NaN: the first element already fails, as in the generic fold
    const [fastNan, genericNan] = both(nan);
    expect(fastNan).toMatch(/^element 0 /);
    expect(fastNan).toBe(genericNan);
  });
});
