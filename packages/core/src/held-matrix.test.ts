import { describe, expect, it } from 'vitest';
import { copyMatrix, heldMatrix, heldMatrixAccess, isHeldOnly, sameMatrix } from './held-matrix.js';

const values = Float32Array.from({ length: 12 }, (_, i) => i + 0.5);

function counted(): { matrix: ReturnType<typeof heldMatrix>; decoded: () => number } {
  let rows = 0;
  const matrix = heldMatrix(4, 3, (start, end, out) => {
    rows += end - start;
    out.set(values.subarray(start * 3, end * 3));
  });
  return { matrix, decoded: () => rows };
}

describe('heldMatrix', () => {
  it('decodes rows on request without keeping them, keeps the whole copy once data is read, and drops it on release', () => {
    const { matrix, decoded } = counted();
    const access = heldMatrixAccess(matrix)!;
    expect(matrix.shape).toEqual([4, 3]);
    expect(Array.from(access.rows(1, 3))).toEqual([3.5, 4.5, 5.5, 6.5, 7.5, 8.5]);
    const out = new Float32Array(5).fill(-1);
    expect(access.rows(3, 4, out)).toEqual(out.subarray(0, 3));
    expect(Array.from(out)).toEqual([9.5, 10.5, 11.5, -1, -1]);
    expect(access.resident).toBe(false);
    expect(isHeldOnly(matrix)).toBe(true);
    expect(() => access.rows(0, 2, new Float32Array(5))).toThrow(/holds 5 floats/);
    expect(decoded()).toBe(3);
    const data = matrix.data;
    expect(Array.from(data)).toEqual(Array.from(values));
    expect(matrix.data).toBe(data);
    expect(access.rows(0, 1).buffer).toBe(data.buffer); // a view of the resident copy
    expect(decoded()).toBe(7);
    expect(access.release()).toBe(true);
    expect(access.release()).toBe(false);
    expect(matrix.data).not.toBe(data);
    expect(() => access.rows(2, 5)).toThrow(/not a range of rows/);
  });

  it('compares by identity, and by array only when both are in memory; copies without decoding', () => {
    const { matrix, decoded } = counted();
    const plain = { dtype: 'float32' as const, shape: [4, 3] as [number, number], data: values };
    expect(sameMatrix(matrix, matrix)).toBe(true);
    expect(sameMatrix(matrix, plain)).toBe(false);
    expect(decoded()).toBe(0);
    const copy = copyMatrix(matrix);
    expect(isHeldOnly(copy)).toBe(true);
    expect(decoded()).toBe(0);
    expect(Array.from(copy.data)).toEqual(Array.from(values));
    expect(copy.data).not.toBe(matrix.data);
    expect(sameMatrix(matrix, { ...plain, data: matrix.data })).toBe(true);
    const plainCopy = copyMatrix(plain);
    expect(plainCopy.data).not.toBe(values);
    expect(Array.from(plainCopy.data)).toEqual(Array.from(values));
    expect(heldMatrixAccess(plain)).toBeUndefined();
  });
});
