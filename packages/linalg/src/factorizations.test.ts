import { expect, it } from 'vitest';
import { NumericalError, matrix } from '@bitsmith/core';
import { det, inv } from 'mathjs';
import { cholesky } from './cholesky.js';
import { choleskyInverseUpper } from './cholesky-inverse-upper.js';
import { choleskyInverseLowerInPlace, choleskyInverseLowerMixed, inverseFactorResidual } from './cholesky-inverse-recursive.js';
import { invertSpd } from './inverse-spd.js';
import { invertTriangular, solveTriangular } from './triangular.js';
import { describeWithBackends } from './testing/describe-with-backends.js';
import { hilbert, identity, naiveMatmul, randomArray, randomMatrix, randomSpd, relativeError, toNested } from './testing/fixtures.js';

await describeWithBackends('factorizations', (backend) => {
  for (const n of [1, 3, 7, 33, 130, 257]) {
    it(`cholesky n=${n}: L lower with positive diagonal and L L^T = A (blocks of 32 and default)`, async () => {
      const a = randomSpd(n, n);
      for (const blockSize of [32, 128]) {
        const l = await cholesky(a, { backend, blockSize });
        for (let i = 0; i < n; i++) {
          expect(l.data[i * n + i]).toBeGreaterThan(0);
          for (let j = i + 1; j < n; j++) expect(l.data[i * n + j]).toBe(0);
        }
        expect(relativeError(naiveMatmul(n, n, n, l.data, l.data, false, true), a.data)).toBeLessThan(1e-13);
      }
    });
  }

  it('cholesky of a 2x2 closed form and in place', async () => {
    const a = matrix<'float64'>(Float64Array.of(4, 2, 2, 3), 2, 2);
    const l = await cholesky(a, { backend, inPlace: true });
    expect(l).toBe(a);
    expect(Array.from(a.data)).toEqual([2, 0, 1, Math.SQRT2]);
  });

  it('cholesky of the Hilbert matrix (cond ~1.5e10) reconstructs to rounding', async () => {
    const a = hilbert(8);
    const l = await cholesky(a, { backend, blockSize: 3 });
    expect(relativeError(naiveMatmul(8, 8, 8, l.data, l.data, false, true), a.data)).toBeLessThan(1e-15);
  });

  it('cholesky of an indefinite matrix throws NumericalError naming the pivot and a dampening', async () => {
    // Positive definite except for one negative direction at index 40 (in the second block of 32).
    const n = 50;
    const a = randomSpd(n, 3);
    a.data[40 * n + 40] = -5;
    let error: unknown;
    try {
      await cholesky(a, { backend, blockSize: 32 });
    } catch (e) {
      error = e;
    }
    expect(NumericalError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/pivot 40\b/);
    expect((error as NumericalError).suggestion).toMatch(/dampening/);
  });

  it('cholesky rejects a semidefinite (singular) matrix', async () => {
    const x = randomArray(3 * 6, 4); // rank 3 Gram of order 6
    const g = naiveMatmul(6, 6, 3, x, x, true, false);
    await expect(cholesky(matrix<'float64'>(g, 6, 6), { backend })).rejects.toSatisfy((e) => NumericalError.isInstance(e));
  });

  for (const lower of [true, false]) {
    for (const transpose of [false, true]) {
      for (const side of ['left', 'right'] as const) {
        it(`solveTriangular lower=${lower} transpose=${transpose} side=${side}: residual of op(A) X = B`, async () => {
          const n = 37;
          const r = 5;
          const t = randomMatrix(n, n, 9);
          for (let i = 0; i < n; i++) t.data[i * n + i] = 2 + Math.abs(t.data[i * n + i]!); // well conditioned
          const b = side === 'left' ? randomMatrix(n, r, 10) : randomMatrix(r, n, 10);
          const x = await solveTriangular(t, b, { backend, lower, transpose, side, blockSize: 8 });
          // Build op(A) explicitly from the named triangle only.
          const tri = new Float64Array(n * n);
          for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (lower ? j <= i : j >= i) tri[i * n + j] = t.data[i * n + j]!;
          const product =
            side === 'left' ? naiveMatmul(n, r, n, tri, x.data, transpose, false) : naiveMatmul(r, n, n, x.data, tri, false, transpose);
          expect(relativeError(product, b.data)).toBeLessThan(1e-13);
        });
      }
    }
  }

  it('solveTriangular with a unit diagonal ignores the stored diagonal', async () => {
    const a = matrix<'float64'>(Float64Array.of(9, 0, 2, 9), 2, 2);
    const x = await solveTriangular(a, matrix<'float64'>(Float64Array.of(1, 4), 2, 1), { backend, unitDiagonal: true });
    expect(Array.from(x.data)).toEqual([1, 2]);
  });

  it('solveTriangular throws on a zero diagonal', async () => {
    const a = matrix<'float64'>(Float64Array.of(1, 0, 2, 0), 2, 2);
    await expect(solveTriangular(a, matrix<'float64'>(Float64Array.of(1, 1), 2, 1), { backend })).rejects.toSatisfy((e) => NumericalError.isInstance(e));
  });

  for (const n of [1, 7, 130]) {
    it(`invertTriangular n=${n}, lower and upper: A A^-1 = I`, async () => {
      const l = await cholesky(randomSpd(n, 20 + n), { backend });
      const x = await invertTriangular(l, { backend, blockSize: 16 });
      expect(relativeError(naiveMatmul(n, n, n, l.data, x.data), identity(n))).toBeLessThan(1e-12);
      const u = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) u[i * n + j] = l.data[j * n + i]!;
      const y = await invertTriangular(matrix<'float64'>(u, n, n), { backend, lower: false, blockSize: 16 });
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(y.data[i * n + j]).toBe(0);
      expect(relativeError(naiveMatmul(n, n, n, u, y.data), identity(n))).toBeLessThan(1e-12);
    });
  }

  it('invertSpd matches mathjs inv on a 6x6 and its determinant matches prod(diag L)^2', async () => {
    const a = randomSpd(6, 5);
    const x = await invertSpd(a, { backend, blockSize: 4 });
    const expected = (inv(toNested(6, 6, a.data)) as number[][]).flat();
    expect(relativeError(x.data, expected)).toBeLessThan(1e-12);
    const l = await cholesky(a, { backend });
    let product = 1;
    for (let i = 0; i < 6; i++) product *= l.data[i * 6 + i]! ** 2;
    expect(product / (det(toNested(6, 6, a.data)) as number)).toBeCloseTo(1, 12);
  });

  for (const n of [1, 33, 257]) {
    it(`invertSpd n=${n}: A A^-1 = I and the result is exactly symmetric`, async () => {
      const a = randomSpd(n, 40 + n);
      const x = await invertSpd(a, { backend, blockSize: 64 });
      expect(relativeError(naiveMatmul(n, n, n, a.data, x.data), identity(n))).toBeLessThan(1e-11);
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(x.data[i * n + j]).toBe(x.data[j * n + i]);
    });
  }

  for (const n of [1, 2, 7, 130, 401]) {
    it(`choleskyInverseUpper n=${n}: U upper, positive diagonal, U^T U = H^-1 (GPTQ's factor)`, async () => {
      const h = randomSpd(n, 60 + n, 0.1);
      const u = await choleskyInverseUpper(h, { backend, blockSize: 32 });
      for (let i = 0; i < n; i++) {
        expect(u.data[i * n + i]).toBeGreaterThan(0);
        for (let j = 0; j < i; j++) expect(u.data[i * n + j]).toBe(0);
      }
      // U^T U H = I
      const utu = naiveMatmul(n, n, n, u.data, u.data, true, false);
      expect(relativeError(naiveMatmul(n, n, n, utu, h.data), identity(n))).toBeLessThan(1e-11);
      // The same as the textbook route: upper Cholesky of the explicit inverse (torch.linalg.cholesky(Hinv, upper=True)).
      const hInverse = await invertSpd(h, { backend });
      const l2 = await cholesky(hInverse, { backend });
      const upper = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) upper[i * n + j] = l2.data[j * n + i]!;
      expect(relativeError(u.data, upper)).toBeLessThan(1e-11);
    });
  }

  for (const n of [129, 520]) {
    it(`the fused recursive Cholesky-inverse (choleskyInverseUpper above n = 2048) n=${n}: L^-1 A L^-T = I, equal to cholesky then invertTriangular`, async () => {
      const a = randomSpd(n, 40 + n, 0.1);
      const w = a.data.slice();
      await choleskyInverseLowerInPlace(n, w, backend, (index, pivot) => {
        throw new Error(`pivot ${index} = ${pivot}`);
      });
      for (let i = 0; i < n; i++) {
        expect(w[i * n + i]).toBeGreaterThan(0);
        for (let j = i + 1; j < n; j++) expect(w[i * n + j]).toBe(0);
      }
      const ma = naiveMatmul(n, n, n, w, a.data);
      expect(relativeError(naiveMatmul(n, n, n, ma, w, false, true), identity(n))).toBeLessThan(1e-11);
      const reference = await invertTriangular(await cholesky(a, { backend }), { lower: true, backend });
      expect(relativeError(w, reference.data)).toBeLessThan(1e-12);
    });
  }

  it('the fused recursive Cholesky-inverse names the first non-positive pivot by its global index', async () => {
    const n = 300;
    const a = randomSpd(n, n + 40, 0.1);
    a.data[250 * n + 250] = -1;
    let seen = -1;
    await expect(
      choleskyInverseLowerInPlace(n, a.data.slice(), backend, (index) => {
        seen = index;
        throw new NumericalError(`pivot ${index}`);
      }),
    ).rejects.toThrow(NumericalError);
    expect(seen).toBe(250);
  });

  it('choleskyInverseUpper in place returns the input holding U (the same U as a copy gives)', async () => {
    const h = randomSpd(70, 90, 0.1);
    const copy = await choleskyInverseUpper(h, { backend });
    const inPlace = await choleskyInverseUpper({ ...h, data: h.data.slice() }, { backend, inPlace: true });
    expect(Array.from(inPlace.data)).toEqual(Array.from(copy.data));
    const given = { ...h, data: h.data.slice() };
    expect(await choleskyInverseUpper(given, { backend, inPlace: true })).toBe(given);
  });

  it('the mixed-precision recursion (float32 products above 512) stays within float32 accuracy of the float64 one', async () => {
    const n = 520;
    const a = randomSpd(n, n + 60, 0.1);
    const exact = a.data.slice();
    const fail = (index: number, pivot: number): never => {
      throw new Error(`pivot ${index} = ${pivot}`);
    };
    await choleskyInverseLowerInPlace(n, exact, backend, fail);
    const mixed = a.data.slice();
    await choleskyInverseLowerMixed(n, mixed, backend, fail);
    const error = relativeError(mixed, exact);
    expect(error).toBeLessThan(1e-5);
    expect(error).toBeGreaterThan(0); // float32 products: not the float64 result
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(mixed[i * n + j]).toBe(0);
  });

  it('inverseFactorResidual is tiny for the exact factor and large for a perturbed one', async () => {
    const n = 90;
    const h = randomSpd(n, 150, 0.1);
    const u = await choleskyInverseUpper(h, { backend });
    expect(await inverseFactorResidual(n, u.data, h.data, backend)).toBeLessThan(1e-12);
    // With a shift the probe checks the factor of H + shift I.
    const us = await choleskyInverseUpper(h, { backend, shift: 0.5 });
    expect(await inverseFactorResidual(n, us.data, h.data, backend, 0.5)).toBeLessThan(1e-12);
    expect(await inverseFactorResidual(n, us.data, h.data, backend)).toBeGreaterThan(1e-4);
    const wrong = u.data.slice();
    wrong[5 * n + 7] += 0.01 * Math.abs(wrong[5 * n + 5]!);
    expect(await inverseFactorResidual(n, wrong, h.data, backend)).toBeGreaterThan(1e-4);
  });

  it('choleskyInverseUpper with a shift equals the factor of the explicitly shifted matrix bit for bit, the input untouched', async () => {
    const n = 150;
    const h = randomSpd(n, 77, 0.1);
    const shifted = h.data.slice();
    for (let i = 0; i < n; i++) shifted[i * n + i] += 0.37;
    const expected = await choleskyInverseUpper({ ...h, data: shifted }, { backend });
    const before = h.data.slice();
    const u = await choleskyInverseUpper(h, { backend, shift: 0.37 });
    expect(Array.from(u.data)).toEqual(Array.from(expected.data));
    expect(h.data).toEqual(before);
    await expect(choleskyInverseUpper(h, { backend, shift: Number.NaN })).rejects.toThrow(/shift/);
  });

  it('choleskyInverseUpper of a 2x2 closed form', async () => {
    // H = [[2, 1], [1, 2]], H^-1 = [[2, -1], [-1, 2]] / 3 = U^T U with U = [[sqrt(2)/sqrt(3) ... ]]
    const u = await choleskyInverseUpper(matrix<'float64'>(Float64Array.of(2, 1, 1, 2), 2, 2), { backend });
    // Upper Cholesky of [[2/3, -1/3], [-1/3, 2/3]]: u00 = sqrt(2/3), u01 = -1/3 / u00, u11 = sqrt(2/3 - u01^2).
    const u00 = Math.sqrt(2 / 3);
    const u01 = -1 / 3 / u00;
    expect(u.data[0]).toBeCloseTo(u00, 14);
    expect(u.data[1]).toBeCloseTo(u01, 14);
    expect(u.data[2]).toBe(0);
    expect(u.data[3]).toBeCloseTo(Math.sqrt(2 / 3 - u01 * u01), 14);
  });
});
