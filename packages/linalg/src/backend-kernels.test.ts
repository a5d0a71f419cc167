import { describe, expect, it } from 'vitest';
import { ShapeMismatchError, InvalidArgumentError } from '@bitsmith/core';
import { describeWithBackends } from './testing/describe-with-backends.js';
import { naiveMatmul, randomArray, relativeError } from './testing/fixtures.js';
import { createJsBackend } from './backends/js-backend.js';

const SIZES: [number, number, number][] = [
  [1, 1, 1],
  [3, 7, 5],
  [7, 3, 9],
  [33, 17, 65],
  [130, 257, 33],
  [257, 130, 129],
];

await describeWithBackends('backend kernels', (backend) => {
  for (const [m, n, k] of SIZES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        it(`dgemm ${m}x${n}x${k} transA=${transA} transB=${transB} with alpha and beta`, async () => {
          const a = randomArray(m * k, 1);
          const b = randomArray(k * n, 2);
          const c0 = randomArray(m * n, 3);
          const c = c0.slice();
          await backend.dgemm({ m, n, k, a, b, c, transA, transB, alpha: -0.75, beta: 0.5 });
          const ref = naiveMatmul(m, n, k, a, b, transA, transB);
          for (let i = 0; i < m * n; i++) ref[i] = -0.75 * ref[i]! + 0.5 * c0[i]!;
          expect(relativeError(c, ref)).toBeLessThan(1e-13 * Math.max(1, k));
        });
        it(`sgemm ${m}x${n}x${k} transA=${transA} transB=${transB}`, async () => {
          const a = Float32Array.from(randomArray(m * k, 4));
          const b = Float32Array.from(randomArray(k * n, 5));
          const c = new Float32Array(m * n).fill(Number.NaN); // beta = 0 must ignore C
          await backend.sgemm({ m, n, k, a, b, c, transA, transB });
          const ref = naiveMatmul(m, n, k, a, b, transA, transB);
          expect(relativeError(c, ref)).toBeLessThan(2e-6 * Math.sqrt(k) + 1e-6);
        });
      }
    }
  }

  it('dgemm with beta = 1 accumulates and k = 0 only scales C', async () => {
    const c = Float64Array.of(1, 2, 3, 4);
    await backend.dgemm({ m: 2, n: 2, k: 2, a: Float64Array.of(1, 2, 3, 4), b: Float64Array.of(1, 0, 0, 1), c, beta: 1 });
    expect(Array.from(c)).toEqual([2, 4, 6, 8]);
    await backend.dgemm({ m: 2, n: 2, k: 0, a: new Float64Array(0), b: new Float64Array(0), c, beta: 0.5 });
    expect(Array.from(c)).toEqual([1, 2, 3, 4]);
  });

  it('rejects arrays shorter than their shapes', async () => {
    await expect(backend.dgemm({ m: 3, n: 3, k: 3, a: new Float64Array(8), b: new Float64Array(9), c: new Float64Array(9) })).rejects.toSatisfy((e) =>
      ShapeMismatchError.isInstance(e),
    );
  });

  for (const [rows, columns] of [
    [1, 1],
    [5, 3],
    [33, 7],
    [300, 130],
    [129, 257],
  ] as const) {
    it(`gram ${rows}x${columns} matches a naive double loop, with alpha and beta`, async () => {
      const x = Float32Array.from(randomArray(rows * columns, 7));
      const h0 = new Float64Array(columns * columns);
      for (let i = 0; i < columns; i++) for (let j = 0; j <= i; j++) h0[i * columns + j] = h0[j * columns + i] = (i + 1) * 0.01 + j * 0.001;
      const h = h0.slice();
      await backend.gram({ rows, columns, x, h, alpha: 0.5, beta: 2 });
      const ref = new Float64Array(columns * columns);
      for (let i = 0; i < columns; i++) {
        for (let j = 0; j < columns; j++) {
          let s = 0;
          for (let r = 0; r < rows; r++) s += x[r * columns + i]! * x[r * columns + j]!;
          ref[i * columns + j] = 2 * h0[i * columns + j]! + 0.5 * s;
        }
      }
      // js accumulates in float64; fast backends may form X^T X with float32 GEMM (DESIGN.md's measured engines),
      // so they are held to the float32 rounding bound (rows + 4) * 2^-24.
      const tolerance = backend.name === 'js' ? 1e-12 * rows : (rows + 4) * 6e-8;
      expect(relativeError(h, ref)).toBeLessThan(tolerance);
      for (let i = 0; i < columns; i++) for (let j = 0; j < i; j++) expect(h[i * columns + j]).toBe(h[j * columns + i]);
    });
  }

  it('gram with lower: the lower triangle (and diagonal) equals the full gram\'s, bit for bit, over accumulated chunks', async () => {
    const columns = 300;
    const x = Float32Array.from(randomArray(200 * columns, 11));
    const full = new Float64Array(columns * columns);
    const lower = new Float64Array(columns * columns);
    for (const [r0, r1] of [[0, 120], [120, 200]] as const) {
      const chunk = x.subarray(r0 * columns, r1 * columns);
      await backend.gram({ rows: r1 - r0, columns, x: chunk, h: full });
      await backend.gram({ rows: r1 - r0, columns, x: chunk, h: lower, lower: true });
    }
    for (let i = 0; i < columns; i++) for (let j = 0; j <= i; j++) expect(lower[i * columns + j]).toBe(full[i * columns + j]);
  });

  it('gram defaults to accumulating (beta = 1)', async () => {
    const x = Float32Array.of(1, 2, 3, 4);
    const h = new Float64Array(4);
    await backend.gram({ rows: 2, columns: 2, x, h });
    await backend.gram({ rows: 2, columns: 2, x, h });
    expect(Array.from(h)).toEqual([20, 28, 28, 40]);
  });

  for (const n of [1, 2, 4, 8, 64, 1024]) {
    it(`fwht n=${n}: H H^T = n I, transform twice is n I unnormalized and I normalized`, async () => {
      // Rows of the identity transform into the rows of H (Sylvester order): H[i, j] = (-1)^popcount(i & j).
      const data = new Float32Array(n * n);
      for (let i = 0; i < n; i++) data[i * n + i] = 1;
      if (n <= 64) {
        await backend.fwht({ rows: n, n, data, normalize: false });
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            let bits = i & j;
            let parity = 0;
            while (bits) {
              parity ^= bits & 1;
              bits >>= 1;
            }
            expect(data[i * n + j]).toBe(parity ? -1 : 1);
          }
        }
        const hht = naiveMatmul(n, n, n, data, data, false, true);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) expect(hht[i * n + j]).toBe(i === j ? n : 0);
      }
      const rows = 3;
      const x = Float32Array.from(randomArray(rows * n, 11));
      const y = x.slice();
      await backend.fwht({ rows, n, data: y, normalize: false });
      await backend.fwht({ rows, n, data: y, normalize: false });
      for (let i = 0; i < rows * n; i++) expect(y[i]).toBeCloseTo(n * x[i]!, 3);
      const z = x.slice();
      await backend.fwht({ rows, n, data: z });
      await backend.fwht({ rows, n, data: z });
      expect(relativeError(z, x)).toBeLessThan(1e-5);
      // Matches the js reference.
      const w = x.slice();
      const u = x.slice();
      await backend.fwht({ rows, n, data: w });
      const reference = createJsBackend();
      await reference.fwht({ rows, n, data: u });
      expect(relativeError(w, u)).toBeLessThan(1e-5);
    });
  }

  it('fwht rejects a length that is not a power of two', async () => {
    await expect(backend.fwht({ rows: 1, n: 6, data: new Float32Array(6) })).rejects.toSatisfy((e) => InvalidArgumentError.isInstance(e));
  });
});

describe('js backend identity', () => {
  it('reports its name and one thread', () => {
    const backend = createJsBackend();
    expect(backend.name).toBe('js');
    expect(backend.threads).toBe(1);
  });
});
