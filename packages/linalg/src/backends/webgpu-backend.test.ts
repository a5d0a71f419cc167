import { afterAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../backend-unavailable-error.js';
import { createBackend } from '../select-backend.js';
import { naiveMatmul, randomArray, relativeError } from '../testing/fixtures.js';
import { createJsBackend } from './js-backend.js';
import { createWebgpuBackend, tryCreateWebgpuBackend, type WebgpuBackend } from './webgpu-backend.js';

// The shared suite (backend-kernels.test.ts) checks the contract on every backend, webgpu included; these tests check
// what only webgpu has: resident matrices, strided views, float16, the FWHT's global stages and Gram in chunks.
const { backend: gpu, reason } = await tryCreateWebgpuBackend({ minGpuWork: 0, threads: 1 });

describe.runIf(gpu === undefined)(`webgpu unavailable here (${reason.slice(0, 120)})`, () => {
  it('createBackend("webgpu") rejects with BackendUnavailableError that says why', async () => {
    const error = await createBackend('webgpu').catch((e: unknown) => e);
    expect(BackendUnavailableError.isInstance(error)).toBe(true);
    expect((error as BackendUnavailableError).backend).toBe('webgpu');
    expect((error as Error).message).toMatch(/webgpu/);
  });
});

describe.skipIf(gpu === undefined)(`webgpu backend on ${gpu?.adapter.description || gpu?.adapter.vendor || 'no adapter'}`, () => {
  const g = gpu!;
  afterAll(() => gpu?.dispose());

  it('resident GEMM chains without round trips: D = (A B^T) C', async () => {
    const [m, k, n, p] = [150, 70, 130, 90];
    const a = Float32Array.from(randomArray(m * k, 1));
    const b = Float32Array.from(randomArray(n * k, 2));
    const c = Float32Array.from(randomArray(n * p, 3));
    const ga = g.upload(a, m, k);
    const gb = g.upload(b, n, k);
    const gc = g.upload(c, n, p);
    const ab = g.zeros(m, n);
    const d = g.zeros(m, p);
    g.gemm({ a: ga, b: gb, c: ab, transB: true });
    g.gemm({ a: ab, b: gc, c: d, alpha: 2 });
    const result = await g.read(d);
    const ref = naiveMatmul(m, p, n, naiveMatmul(m, n, k, a, b, false, true), c);
    for (let i = 0; i < ref.length; i++) ref[i] = 2 * ref[i]!;
    expect(relativeError(result, ref)).toBeLessThan(1e-5);
    for (const x of [ga, gb, gc, ab, d]) g.release(x);
  });

  it('strided GEMM updates a sub-matrix in place and leaves the rest alone', async () => {
    const [rows, cols] = [200, 300];
    const w = Float32Array.from(randomArray(rows * cols, 4));
    const u = Float32Array.from(randomArray(64 * 256, 5));
    const e = Float32Array.from(randomArray(40 * cols, 6));
    const gw = g.upload(w, rows, cols);
    const gu = g.upload(u, 64, 256);
    const ge = g.upload(e, 40, cols);
    // W[100:200, :] -= U[10:50, 30:130]^T E
    g.gemmStrided({ a: gu, b: ge, c: gw, m: 100, n: cols, k: 40, lda: 256, ldb: cols, ldc: cols, aOffset: 10 * 256 + 30, cOffset: 100 * cols, transA: true, alpha: -1, beta: 1 });
    const result = await g.read(gw);
    expect(Array.from(result.subarray(0, 100 * cols))).toEqual(Array.from(w.subarray(0, 100 * cols)));
    const ref = new Float64Array(100 * cols);
    for (let i = 0; i < 100; i++) {
      for (let j = 0; j < cols; j++) {
        let s = 0;
        for (let q = 0; q < 40; q++) s += u[(10 + q) * 256 + 30 + i]! * e[q * cols + j]!;
        ref[i * cols + j] = w[(100 + i) * cols + j]! - s;
      }
    }
    expect(relativeError(result.subarray(100 * cols), ref)).toBeLessThan(1e-5);
    expect(() => g.gemmStrided({ a: gu, b: ge, c: gw, m: 101, n: cols, k: 40, lda: 256, ldb: cols, ldc: cols, cOffset: 100 * cols, transA: true })).toThrow(/past the end/);
    for (const x of [gw, gu, ge]) g.release(x);
  });

  it.runIf(g?.shaderF16)('float16 GEMM agrees with float32 to float16 precision', async () => {
    const [m, n, k] = [130, 140, 64];
    const a = Float32Array.from(randomArray(m * k, 7));
    const b = Float32Array.from(randomArray(k * n, 8));
    const c = g.zeros(m, n, 'float16');
    g.gemm({ a: g.upload(a, m, k, 'float16'), b: g.upload(b, k, n, 'float16'), c });
    const result = await g.read(c);
    expect(relativeError(result, naiveMatmul(m, n, k, a, b))).toBeLessThan(5e-3);
  });

  it('fwht beyond one workgroup segment (n = 16384, global stages) matches js', async () => {
    const n = 16384;
    const x = Float32Array.from(randomArray(3 * n, 9));
    const y = x.slice();
    await g.fwht({ rows: 3, n, data: x });
    await createJsBackend().fwht({ rows: 3, n, data: y });
    expect(relativeError(x, y)).toBeLessThan(1e-5);
  });

  it('gram in several row chunks equals one float64 product', async () => {
    const small = await createWebgpuBackend({ minGpuWork: 0, gramChunkRows: 100, threads: 1 });
    try {
      const [rows, columns] = [350, 260];
      const x = Float32Array.from(randomArray(rows * columns, 10));
      const h = new Float64Array(columns * columns);
      await small.gram({ rows, columns, x, h });
      const ref = naiveMatmul(columns, columns, rows, x, x, true, false);
      expect(relativeError(h, ref)).toBeLessThan((100 + 4) * 6e-8);
      for (let i = 0; i < columns; i++) for (let j = 0; j < i; j++) expect(h[i * columns + j]).toBe(h[j * columns + i]);
    } finally {
      await small.dispose();
    }
  });

  it('sends small calls to the CPU below minGpuWork and rejects use after dispose', async () => {
    const hybrid = await createWebgpuBackend({ minGpuWork: 1e9, threads: 1 });
    const a = Float32Array.of(1, 2, 3, 4);
    const c = new Float32Array(4);
    await hybrid.sgemm({ m: 2, n: 2, k: 2, a, b: a, c });
    expect(Array.from(c)).toEqual([7, 10, 15, 22]);
    await hybrid.dispose();
    await expect(hybrid.sgemm({ m: 2, n: 2, k: 2, a, b: a, c })).rejects.toThrow(/after dispose/);
  });
});
