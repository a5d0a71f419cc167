import { afterAll, describe, expect, it } from 'vitest';
import { matrix } from '@bitsmith/core';
import { choleskyInverseUpper } from '../cholesky-inverse-upper.js';
import { randomArray } from '../testing/fixtures.js';
import { createJsBackend } from './js-backend.js';
import { tryCreateWebgpuBackend, type WebgpuBackend } from './webgpu-backend.js';
import { webgpuCholeskyInverseUpper } from './webgpu-cholesky.js';
import { webgpuGptqSolve } from './webgpu-gptq.js';
import { minMaxScales, objective, referenceGptq } from './webgpu-gptq.test-support.js';

const { backend: gpu, reason } = await tryCreateWebgpuBackend({ minGpuWork: 0, threads: 1 });
if (!gpu) console.warn(`[bitsmith] skipping webgpu GPTQ tests: ${reason}`);

describe.skipIf(gpu === undefined)('webgpu GPTQ column solve', () => {
  afterAll(() => gpu?.dispose());
  for (const [rows, n, groupSize, blockSize] of [
    [96, 200, 64, 128],
    [70, 160, 32, 64],
    [33, 130, 130, 128],
  ] as const) {
    it(`${rows} x ${n}, groups of ${groupSize}, batches of ${blockSize}: the codes of Algorithm 1 and a lower objective than RTN`, async () => {
      // Correlated inputs so that error feedback matters: X = Z M with a random mixing M.
      const tokens = 3 * n;
      const zx = randomArray(tokens * n, 21);
      const mix = randomArray(n * n, 22);
      const x = new Float64Array(tokens * n);
      for (let t = 0; t < tokens; t++) for (let c = 0; c < n; c++) {
        let s = zx[t * n + c]!;
        for (let k = Math.max(0, c - 3); k < c; k++) s += mix[k * n + c]! * zx[t * n + k]!;
        x[t * n + c] = s;
      }
      const h = new Float64Array(n * n);
      for (let t = 0; t < tokens; t++) for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) h[a * n + b] += x[t * n + a]! * x[t * n + b]!;
      let mean = 0;
      for (let i = 0; i < n; i++) mean += h[i * n + i]! / n;
      const damped = h.slice();
      for (let i = 0; i < n; i++) damped[i * n + i] += 0.01 * mean;
      const u = (await choleskyInverseUpper(matrix<'float64'>(damped, n, n), { backend: createJsBackend() })).data;
      const w = Float64Array.from(randomArray(rows * n, 23));
      const weightT = new Float32Array(n * rows);
      for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) weightT[c * rows + r] = w[r * n + c]!;
      const levels = Float32Array.from({ length: 16 }, (_, i) => i);
      const groupStarts: number[] = [];
      const groupOf = new Map<number, { scale: Float32Array; zero: Float32Array }>();
      const { codesT, scales: returnedScales } = await webgpuGptqSolve(gpu!, {
        rows,
        columns: n,
        weightT,
        factor: u,
        levels,
        groupSize,
        blockSize,
        groupScales: (start, width, current) => {
          groupStarts.push(start);
          const s = minMaxScales(current, width, rows);
          groupOf.set(start, s);
          return s;
        },
      });
      expect(groupStarts).toEqual(Array.from({ length: Math.ceil(n / groupSize) }, (_, g) => g * groupSize));
      for (const [start, { scale }] of groupOf) expect(returnedScales.subarray((start / groupSize) * rows, (start / groupSize + 1) * rows)).toEqual(scale);
      // The same layer with the weight row-major (transposed on the GPU) and the min-max rule computed on the GPU.
      const dequantized = gpu!.zeros(rows, n);
      const onGpu = await webgpuGptqSolve(gpu!, { rows, columns: n, weight: Float32Array.from(w), factor: u, levels, groupSize, blockSize, groupScales: { kind: 'min-max', maxCode: 15 }, dequantized });
      // The dequantized weight left on the GPU is (level - zero) * scale of the codes and scales that came back.
      const deq = await gpu!.read(dequantized);
      gpu!.release(dequantized);
      let deqError = 0;
      for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) {
        const g = Math.floor(c / groupSize) * rows + r;
        deqError = Math.max(deqError, Math.abs(deq[r * n + c]! - (onGpu.codesT[c * rows + r]! - onGpu.zeros[g]!) * onGpu.scales[g]!));
      }
      expect(deqError).toBeLessThan(1e-6);
      const ref = referenceGptq(w, rows, n, u, groupSize);
      const rtn = new Float64Array(rows * n);
      for (let g0 = 0; g0 < n; g0 += groupSize) {
        const width = Math.min(groupSize, n - g0);
        const { scale, zero } = minMaxScales(weightT.subarray(g0 * rows, (g0 + width) * rows), width, rows);
        for (let c = g0; c < g0 + width; c++) for (let r = 0; r < rows; r++) {
          const code = Math.min(15, Math.max(0, Math.round(w[r * n + c]! / scale[r]! + zero[r]!)));
          rtn[r * n + c] = (code - zero[r]!) * scale[r]!;
        }
      }
      const rtnObjective = objective(w, rtn, h, rows, n);
      const refObjective = objective(w, ref.q, h, rows, n);
      for (const [codes, scales, zeros] of [
        [codesT, returnedScales, undefined],
        [onGpu.codesT, onGpu.scales, onGpu.zeros],
      ] as const) {
        let same = 0;
        for (let i = 0; i < codes.length; i++) if (codes[i] === ref.codes[i]) same++;
        // float32 on the GPU against float64 here: a code may differ where a value lies within rounding of a midpoint.
        expect(same / codes.length).toBeGreaterThan(0.995);
        const q = new Float64Array(rows * n);
        for (let c = 0; c < n; c++) {
          const g = Math.floor(c / groupSize);
          const zero = zeros ? zeros.subarray(g * rows) : groupOf.get(g * groupSize)!.zero;
          for (let r = 0; r < rows; r++) q[r * n + c] = (codes[c * rows + r]! - zero[r]!) * scales[g * rows + r]!;
        }
        const gpuObjective = objective(w, q, h, rows, n);
        expect(Math.abs(gpuObjective - refObjective) / gpuObjective).toBeLessThan(2e-3);
        expect(gpuObjective).toBeLessThan(0.8 * rtnObjective);
      }
      // The GPU rule's scales are the callback's up to float32 rounding: exactly so for the first group (the same
      // input weights); later groups start from current weights that a code flipped at a midpoint may have moved.
      const relative = (i: number): number => Math.abs(onGpu.scales[i]! - returnedScales[i]!) / Math.max(1e-30, Math.abs(returnedScales[i]!));
      for (let r = 0; r < rows; r++) expect(relative(r)).toBeLessThan(1e-6);
      let close = 0;
      for (let i = 0; i < returnedScales.length; i++) if (relative(i) < 1e-5) close++;
      expect(close / returnedScales.length).toBeGreaterThan(0.95);
    });
  }

  /** A correlated SPD Hessian (float64, undamped) and its mean diagonal. */
  function correlated(n: number, seed: number): { h: Float64Array; mean: number } {
    const tokens = 2 * n;
    const z = randomArray(tokens * n, seed);
    const h = new Float64Array(n * n);
    for (let t = 0; t < tokens; t++) {
      for (let c = 1; c < n; c++) z[t * n + c] += 0.6 * z[t * n + c - 1]!;
      for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) h[a * n + b] += z[t * n + a]! * z[t * n + b]!;
    }
    let mean = 0;
    for (let i = 0; i < n; i++) mean += h[i * n + i]! / n;
    return { h, mean };
  }

  function relativeError(u: Float32Array, cpu: Float64Array): number {
    let num = 0;
    let den = 0;
    for (let i = 0; i < cpu.length; i++) {
      num += (u[i]! - cpu[i]!) ** 2;
      den += cpu[i]! ** 2;
    }
    return Math.sqrt(num / den);
  }

  for (const [n, options] of [
    [300, { diagonalBlocks: 'gpu' }],
    [300, { diagonalBlocks: 'cpu' }],
    [200, { diagonalBlocks: 'gpu', blockSize: 64 }],
  ] as const) {
    it(`the inverse Hessian factor on the GPU (float32, diagonal blocks on the ${options.diagonalBlocks}, ${JSON.stringify(options)}) matches the float64 CPU factor, from a host H and from a resident upper triangle`, async () => {
      const { h, mean } = correlated(n, 41);
      const damped = h.slice();
      for (let i = 0; i < n; i++) damped[i * n + i] += 0.01 * mean;
      const cpu = (await choleskyInverseUpper(matrix<'float64'>(damped.slice(), n, n), { backend: createJsBackend() })).data;
      // Host float64 H, dampened by the caller.
      const fromHost = await webgpuCholeskyInverseUpper(gpu!, damped, n, options);
      const u = await gpu!.read(fromHost);
      gpu!.release(fromHost);
      expect(relativeError(u, cpu)).toBeLessThan(1e-4);
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
      // Resident float32 H holding NaN below the diagonal (only the upper triangle may be read), dampened on the GPU.
      const upper = new Float32Array(n * n).fill(Number.NaN);
      for (let i = 0; i < n; i++) for (let j = i; j < n; j++) upper[i * n + j] = h[i * n + j]!;
      const resident = gpu!.upload(upper, n, n);
      const fromResident = await webgpuCholeskyInverseUpper(gpu!, resident, n, { ...options, dampening: 0.01 });
      const v = await gpu!.read(fromResident);
      gpu!.release(fromResident);
      expect(await gpu!.read(resident)).toEqual(upper); // not modified
      gpu!.release(resident);
      expect(relativeError(v, cpu)).toBeLessThan(1e-4);
    });
  }

  it('gemm with upper: X^T X on and above the diagonal equals the float64 product; its factor matches the CPU one', async () => {
    const [tokens, n] = [500, 260];
    const xs = randomArray(tokens * n, 51);
    for (let t = 0; t < tokens; t++) for (let c = 1; c < n; c++) xs[t * n + c] += 0.5 * xs[t * n + c - 1]!;
    const x = Float32Array.from(xs);
    const h = new Float64Array(n * n);
    for (let t = 0; t < tokens; t++) for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) h[a * n + b] += x[t * n + a]! * x[t * n + b]!;
    const gx = gpu!.upload(x, tokens, n);
    const gh = gpu!.zeros(n, n);
    gpu!.gemm({ a: gx, b: gx, c: gh, transA: true, upper: true });
    const got = await gpu!.read(gh);
    let worst = 0;
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) worst = Math.max(worst, Math.abs(got[i * n + j]! - h[i * n + j]!) / Math.sqrt(h[i * n + i]! * h[j * n + j]!));
    expect(worst).toBeLessThan(1e-5);
    let mean = 0;
    for (let i = 0; i < n; i++) mean += h[i * n + i]! / n;
    for (let i = 0; i < n; i++) h[i * n + i] += 0.01 * mean;
    const cpu = (await choleskyInverseUpper(matrix<'float64'>(h, n, n), { backend: createJsBackend() })).data;
    const u = await webgpuCholeskyInverseUpper(gpu!, gh, n, { dampening: 0.01 });
    expect(relativeError(await gpu!.read(u), cpu)).toBeLessThan(3e-4);
    const narrow = gpu!.zeros(tokens, 3);
    const c = gpu!.zeros(n, 3);
    expect(() => gpu!.gemm({ a: gx, b: narrow, c, transA: true, upper: true })).toThrow(/square/);
    for (const m of [gx, gh, u, narrow, c]) gpu!.release(m);
  });

  it('a Hessian that is not positive definite: NumericalError naming a pivot, from the GPU diagonal blocks', async () => {
    const n = 150;
    const h = new Float32Array(n * n);
    for (let i = 0; i < n; i++) h[i * n + i] = i === 20 ? -1 : 1;
    const resident = gpu!.upload(h, n, n);
    await expect(webgpuCholeskyInverseUpper(gpu!, resident, n, { diagonalBlocks: 'gpu' })).rejects.toThrow(/pivot 20 /);
    gpu!.release(resident);
  });
});
