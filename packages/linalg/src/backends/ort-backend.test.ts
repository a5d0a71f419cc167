import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend.js';
import { BackendUnavailableError } from '../backend-unavailable-error.js';
import { GEMM_SIZES, gemmError, maxRelativeError, seededRandom } from './backend-oracle.js';
import { createJsBackend } from './js-backend.js';
import { createOrtBackend } from './ort-backend.js';
import { ATTENTION_CHUNK, attentionWithSgemm } from './attention-sgemm.js';
import { gatedActivationLoop } from './gated-activation-loop.js';

let backend: Backend | undefined;
let reason = '';
try {
  backend = await createOrtBackend({ threads: 2 });
} catch (error) {
  reason = (error as Error).message;
}
if (!backend) console.warn(`ort backend tests skipped: ${reason}`);

afterAll(async () => {
  await backend?.dispose();
});

describe.skipIf(!backend)('ort backend', () => {
  const be = () => backend!;

  it('reports its name and threads', () => {
    expect(be().name).toBe('ort');
    expect(be().threads).toBe(2);
  });

  for (const [m, n, k] of GEMM_SIZES) {
    it(`sgemm and dgemm match a triple loop for ${m}x${n}x${k}, all transposes`, async () => {
      for (const transA of [false, true])
        for (const transB of [false, true]) {
          expect(await gemmError(be(), Float32Array, m, n, k, transA, transB, 1, 0)).toBeLessThan(1e-5);
          expect(await gemmError(be(), Float64Array, m, n, k, transA, transB, 1, 0)).toBeLessThan(1e-12);
        }
    });
  }

  it('applies alpha and beta (including ones float32 cannot hold) and ignores NaN in C when beta = 0', async () => {
    for (const [alpha, beta] of [
      [1, 1],
      [-1, 1],
      [0.5, -2],
      [2, 0],
      [1 / 3, 0.1],
      [0, 0.75],
      [0, 0],
    ] as const) {
      for (const [m, n, k] of [
        [33, 7, 130],
        [1, 257, 3],
      ] as const) {
        expect(await gemmError(be(), Float32Array, m, n, k, true, false, alpha, beta)).toBeLessThan(1e-5);
        expect(await gemmError(be(), Float64Array, m, n, k, false, true, alpha, beta)).toBeLessThan(1e-12);
      }
    }
  });

  it('handles k = 0 and empty outputs', async () => {
    const c = Float32Array.of(Number.NaN, 2);
    await be().sgemm({ m: 1, n: 2, k: 0, a: new Float32Array(0), b: new Float32Array(0), c });
    expect([...c]).toEqual([0, 0]);
    const d = Float64Array.of(1, 2);
    await be().dgemm({ m: 2, n: 1, k: 0, a: new Float64Array(0), b: new Float64Array(0), c: d, beta: 3 });
    expect([...d]).toEqual([3, 6]);
    await be().sgemm({ m: 0, n: 3, k: 3, a: new Float32Array(0), b: new Float32Array(9), c: new Float32Array(0) });
  });

  it('accepts arrays longer than needed and on a SharedArrayBuffer', async () => {
    const rnd = seededRandom(3);
    const m = 5;
    const n = 6;
    const k = 7;
    const a = new Float32Array(new SharedArrayBuffer(4 * (m * k + 3)));
    const b = new Float32Array(new SharedArrayBuffer(4 * k * n));
    const c = new Float32Array(new SharedArrayBuffer(4 * (m * n + 2)));
    for (let i = 0; i < a.length; i++) a[i] = rnd();
    for (let i = 0; i < b.length; i++) b[i] = rnd();
    c.fill(1);
    await be().sgemm({ m, n, k, a, b, c, beta: 1 });
    const ref = new Float32Array(m * n + 2).fill(1);
    await createJsBackend().sgemm({ m, n, k, a: a.slice(), b: b.slice(), c: ref, beta: 1 });
    expect(maxRelativeError(c, ref)).toBeLessThan(1e-5);
    expect(c[m * n]).toBe(1);
  });

  it('gram matches the js backend (alpha, beta, several chunks and column blocks)', async () => {
    const js = createJsBackend();
    for (const [rows, columns, alpha, beta] of [
      [1, 1, 1, 1],
      [7, 3, 2, 0],
      [257, 33, 1, 1],
      [4100, 130, 0.5, -1],
      [300, 600, 1, 0],
      [4500, 530, 1, 1],
    ] as const) {
      const rnd = seededRandom(rows + columns);
      const x = Float32Array.from({ length: rows * columns }, rnd);
      const h0 = new Float64Array(columns * columns);
      for (let i = 0; i < columns; i++) for (let j = 0; j <= i; j++) h0[i * columns + j] = h0[j * columns + i] = rnd();
      if (beta === 0) h0.fill(Number.NaN);
      const h = h0.slice();
      const ref = h0.slice();
      await be().gram({ rows, columns, x, h, alpha, beta });
      await js.gram({ rows, columns, x, h: ref, alpha, beta });
      expect(maxRelativeError(h, ref)).toBeLessThan(1e-5 * Math.sqrt(rows));
      for (let i = 0; i < columns; i++) for (let j = 0; j < i; j++) expect(h[i * columns + j]).toBe(h[j * columns + i]);
    }
  });

  it('runs GEMMs below smallGemmWork on the one-thread session and the rest on the pool, both matching the js backend', async () => {
    const js = createJsBackend();
    const pooled = await createOrtBackend({ threads: 2, smallGemmWork: 0 });
    const split = await createOrtBackend({ threads: 2, smallGemmWork: 40 * 30 * 20 });
    try {
      for (const [m, n, k] of [
        [40, 30, 20],
        [40, 30, 21],
        [130, 70, 90],
      ] as const) {
        const rnd = seededRandom(m + n + k);
        const a = Float32Array.from({ length: m * k }, rnd);
        const b = Float32Array.from({ length: n * k }, rnd);
        const ref = new Float32Array(m * n);
        await js.sgemm({ m, n, k, a, b, c: ref, transB: true, alpha: 0.5 });
        for (const be of [pooled, split]) {
          const c = new Float32Array(m * n);
          await be.sgemm({ m, n, k, a, b, c, transB: true, alpha: 0.5 });
          expect(maxRelativeError(c, ref)).toBeLessThan(1e-5);
        }
      }
    } finally {
      await pooled.dispose();
      await split.dispose();
    }
  });

  it('constantB: a packed weight follows in-place changes, serves an array with equal contents, and beyond the budget the plain session runs; all match the js backend', async () => {
    const js = createJsBackend();
    const [m, n, k] = [70, 48, 33];
    const rnd = seededRandom(11);
    const a = Float32Array.from({ length: m * Math.max(n, k) }, rnd); // long enough for m x k and m x n
    const weight = Float32Array.from({ length: n * k }, rnd);
    const other = Float32Array.from({ length: 2 * n * k }, rnd);
    const check = async (be: Backend, b: Float32Array, rows: number, cols: number, transB: boolean): Promise<void> => {
      const ref = new Float32Array(m * rows);
      await js.sgemm({ m, n: rows, k: cols, a, b, c: ref, transB });
      const c = new Float32Array(m * rows).fill(Number.NaN);
      await be.sgemm({ m, n: rows, k: cols, a, b, c, transB, constantB: true });
      expect(maxRelativeError(c, ref)).toBeLessThan(1e-5);
    };
    // Room for one weight of n x k only: `other` (twice as large) always takes the plain session.
    const packed = await createOrtBackend({ threads: 2, constantWeightMinRows: 1, constantWeightBytes: 4 * n * k + 4 });
    try {
      await check(packed, weight, n, k, true);
      await check(packed, weight, n, k, true);
      weight[5] = weight[5]! + 0.75; // in place: must be packed again, not served from the old copy
      await check(packed, weight, n, k, true);
      weight.fill(0.25, 100, 400);
      await check(packed, weight, n, k, true);
      await check(packed, weight.slice(), n, k, true); // a new array with the same contents
      await check(packed, weight, k, n, false); // the same array read as k x n without the transpose
      await check(packed, other, 2 * n, k, true);
      await check(packed, other, 2 * n, k, true);
      const shared = new Float32Array(new SharedArrayBuffer(4 * n * k));
      shared.set(weight);
      shared[0] = -3;
      await check(packed, shared, n, k, true);
    } finally {
      await packed.dispose();
    }
  });

  it('gram with small chunks (partial transposes, several chunks, X on a SharedArrayBuffer) matches the js backend', async () => {
    const js = createJsBackend();
    const small = await createOrtBackend({ threads: 2, gramChunkRows: 1100, gramBlocks: 3 });
    try {
      for (const [rows, columns] of [
        [2500, 400],
        [1100, 300],
        [513, 100],
      ] as const) {
        const rnd = seededRandom(rows * 7 + columns);
        const x = new Float32Array(new SharedArrayBuffer(4 * rows * columns));
        for (let i = 0; i < x.length; i++) x[i] = rnd();
        const h = new Float64Array(columns * columns).fill(0.25);
        const ref = h.slice();
        await small.gram({ rows, columns, x, h, alpha: 1.5 });
        await js.gram({ rows, columns, x: x.slice(), h: ref, alpha: 1.5 });
        expect(maxRelativeError(h, ref)).toBeLessThan(1e-5 * Math.sqrt(rows));
        for (let i = 0; i < columns; i++) for (let j = 0; j < i; j++) expect(h[i * columns + j]).toBe(h[j * columns + i]);
      }
    } finally {
      await small.dispose();
    }
  });

  it('fwht matches the js backend for every power of two up to 2^12', async () => {
    const js = createJsBackend();
    for (let n = 1; n <= 4096; n *= 2) {
      for (const normalize of [true, false]) {
        const rows = 3;
        const rnd = seededRandom(n);
        const data = Float32Array.from({ length: rows * n }, rnd);
        const ref = data.slice();
        await be().fwht({ rows, n, data, normalize });
        await js.fwht({ rows, n, data: ref, normalize });
        expect(maxRelativeError(data, ref)).toBeLessThan(1e-5 * (normalize ? 1 : Math.sqrt(n)));
      }
    }
  });

  it('fwht twice with normalisation is the identity', async () => {
    const data = Float32Array.from({ length: 2 * 512 }, seededRandom(9));
    const copy = data.slice();
    await be().fwht({ rows: 2, n: 512, data });
    await be().fwht({ rows: 2, n: 512, data });
    expect(maxRelativeError(data, copy)).toBeLessThan(1e-6);
  });

  it('reference attention and activation are attentionWithSgemm on its sgemm and gatedActivationLoop, bit for bit; the native graph agrees to float32 rounding', async () => {
    const random = seededRandom(21);
    const lengths = [300, 300, 17];
    const tokens = lengths.reduce((a, b) => a + b, 0);
    const [numHeads, numKvHeads, headDim] = [4, 2, 16];
    const fill = (n: number, s: number) => Float32Array.from({ length: n }, () => s * (random() - 0.5));
    const q = fill(tokens * numHeads * headDim, 6);
    const k = fill(tokens * numKvHeads * headDim, 6);
    const v = fill(tokens * numKvHeads * headDim, 1);
    const args = { q, k, v, lengths, numHeads, numKvHeads, headDim };
    const want = new Float32Array(q.length);
    await attentionWithSgemm((g) => be().sgemm(g), { ...args, out: want }, ATTENTION_CHUNK, null);
    const got = new Float32Array(q.length);
    await be().attention({ ...args, out: got, reference: true });
    expect(got.every((x, i) => Object.is(x, want[i]))).toBe(true);
    const native = new Float32Array(q.length);
    await be().attention({ ...args, out: native });
    expect(maxRelativeError(native, want)).toBeLessThan(1e-5);
    const gate = fill(10001, 12);
    const up = fill(10001, 2);
    const loop = new Float32Array(gate.length);
    gatedActivationLoop({ gate, up, out: loop, activation: 'silu' });
    const reference = gate.slice();
    await be().gatedActivation({ gate: reference, up, out: reference, activation: 'silu', reference: true });
    expect(reference.every((x, i) => Object.is(x, loop[i]))).toBe(true);
  });

  it('runs large outputs in row blocks (outputChunkBytes) with the same bits as one run: sgemm, dgemm, beta, constantB, transA', async () => {
    const blocked = await createOrtBackend({ threads: 2, outputChunkBytes: 3000, constantWeightMinRows: 1 });
    const whole = await createOrtBackend({ threads: 2, outputChunkBytes: 1 << 30, constantWeightMinRows: 1 });
    try {
      const random = seededRandom(5);
      const [m, n, k] = [257, 33, 600];
      for (const [Arr, transA, beta, constantB] of [
        [Float32Array, false, 0, false],
        [Float32Array, false, 0.5, false],
        [Float32Array, true, 0, false],
        [Float64Array, false, 1, false],
        [Float32Array, false, 0, true],
      ] as const) {
        const fill = (length: number, f: () => number) => {
          const x = new Arr(length);
          for (let i = 0; i < length; i++) x[i] = f();
          return x;
        };
        const a = fill(m * k, () => random() - 0.5);
        const b = fill(n * k, () => random() - 0.5);
        const c0 = fill(m * n, () => random());
        const run = async (be: Backend) => {
          const c = c0.slice();
          const args = { m, n, k, a, b, c, transA, transB: true, beta, constantB } as never;
          await (Arr === Float32Array ? be.sgemm(args) : be.dgemm(args));
          return c;
        };
        const x = await run(blocked);
        const y = await run(whole);
        expect(x.every((v, i) => Object.is(v, y[i]))).toBe(true);
        expect(maxRelativeError(x, y)).toBe(0);
      }
    } finally {
      await blocked.dispose();
      await whole.dispose();
    }
  });

  it('rejects bad arguments and calls after dispose', async () => {
    await expect(be().sgemm({ m: 2, n: 2, k: 2, a: new Float32Array(3), b: new Float32Array(4), c: new Float32Array(4) })).rejects.toThrow(/sgemm.a/);
    const other = await createOrtBackend({ threads: 1 });
    expect(other.threads).toBe(1);
    await other.dispose();
    await expect(other.sgemm({ m: 1, n: 1, k: 1, a: new Float32Array(1), b: new Float32Array(1), c: new Float32Array(1) })).rejects.toThrow(/dispose/);
  });
});

describe('ort backend availability', () => {
  it('throws BackendUnavailableError, not a raw import error, when it cannot start', async () => {
    if (backend) return; // Loaded here: the failure path is exercised on machines without onnxruntime-node.
    await expect(createOrtBackend()).rejects.toSatisfy((e: unknown) => BackendUnavailableError.isInstance(e));
  });
});
