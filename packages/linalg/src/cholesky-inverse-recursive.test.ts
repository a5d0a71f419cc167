import { describe, expect, it } from 'vitest';
import { choleskyInverseLowerInPlace, choleskyInverseLowerMixed } from './cholesky-inverse-recursive.js';
import { createBackend } from './select-backend.js';
import { randomSpd, relativeError } from './testing/fixtures.js';

const fail = (index: number, pivot: number): never => {
  throw new Error(`pivot ${index}: ${pivot}`);
};

describe('choleskyInverseLowerMixed (float32 levels worked inside the input buffer)', async () => {
  const backend = await createBackend('js');
  // 1026 = 2 x 513: the top level is float32 (above 512) and even, so it runs in the input's own buffer; 513 is odd
  // and at most 512 below, so the halves take the float64 path.
  for (const n of [1026, 1030]) {
    it(`n = ${n}: L^{-1} with a zero upper triangle, float32-close to the float64 recursion, the same bits at any byte offset`, async () => {
      const h = randomSpd(n, n + 16, 0.1);
      const exact = h.data.slice();
      await choleskyInverseLowerInPlace(n, exact, backend, fail);
      const mixed = h.data.slice();
      await choleskyInverseLowerMixed(n, mixed, backend, fail);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (mixed[i * n + j] !== 0) throw new Error(`upper (${i}, ${j}) = ${mixed[i * n + j]}`);
      const error = relativeError(mixed, exact);
      expect(error).toBeGreaterThan(0);
      expect(error).toBeLessThan(1e-5);
      // The same matrix inside a larger buffer (views at an odd float64 offset, so float32 views at 4-byte offsets).
      const big = new Float64Array(n * n + 3);
      big.fill(Number.NaN);
      const view = big.subarray(3, 3 + n * n);
      view.set(h.data);
      await choleskyInverseLowerMixed(n, view, backend, fail);
      expect(relativeError(view, mixed)).toBe(0);
      expect(Number.isNaN(big[0]!) && Number.isNaN(big[2]!)).toBe(true);
    });
  }
});
