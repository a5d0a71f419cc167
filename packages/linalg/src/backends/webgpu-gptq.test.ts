import { afterAll, describe, expect, it } from 'vitest';
import { matrix } from '@bitsmith/core';
import { choleskyInverseUpper } from '../cholesky-inverse-upper.js';
import { randomArray } from '../testing/fixtures.js';
import { createJsBackend } from './js-backend.js';
import { createWebgpuBackend, type WebgpuBackend } from './webgpu-backend.js';
import { webgpuCholeskyInverseUpper } from './webgpu-cholesky.js';
import { webgpuGptqSolve } from './webgpu-gptq.js';

let gpu: WebgpuBackend | undefined;
let reason = '';
try {
  gpu = await createWebgpuBackend({ minGpuWork: 0, threads: 1 });
} catch (error) {
  reason = (error as Error).message;
}
if (!gpu) console.warn(`[bitsmith] skipping webgpu GPTQ tests: ${reason}`);

/** Asymmetric 4-bit min-max scales of a group, per row, from the group's current weights (width x rows). */
function minMaxScales(current: Float32Array, width: number, rows: number): { scale: Float32Array; zero: Float32Array } {
  const scale = new Float32Array(rows);
  const zero = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let lo = 0;
    let hi = 0;
    for (let j = 0; j < width; j++) {
      const x = current[j * rows + r]!;
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    const s = (hi - lo) / 15;
    scale[r] = s;
    zero[r] = s > 0 ? Math.round(-lo / s) : 0;
  }
  return { scale, zero };
}

/**
 * GPTQ as the paper's Algorithm 1 states it (arXiv:2210.17323), unbatched and in float64: for each column, quantize,
 * e = (w - q) / U_ii, then every later column w_j -= U_ij e. Group scales from the current weights at each group start.
 */
function referenceGptq(w: Float64Array, rows: number, n: number, u: Float64Array, groupSize: number): { codes: Uint32Array; q: Float64Array } {
  const wt = new Float64Array(n * rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) wt[c * rows + r] = w[r * n + c]!;
  const codes = new Uint32Array(n * rows);
  const q = new Float64Array(rows * n);
  let s: Float32Array = new Float32Array(rows);
  let z: Float32Array = new Float32Array(rows);
  for (let i = 0; i < n; i++) {
    if (i % groupSize === 0) ({ scale: s, zero: z } = minMaxScales(Float32Array.from(wt.subarray(i * rows, Math.min(n, i + groupSize) * rows)), Math.min(groupSize, n - i), rows));
    for (let r = 0; r < rows; r++) {
      const x = wt[i * rows + r]!;
      const v = s[r]! > 0 ? x / s[r]! + z[r]! : z[r]!;
      const code = Math.min(15, Math.max(0, Math.round(v)));
      const deq = (code - z[r]!) * s[r]!;
      codes[i * rows + r] = code;
      q[r * n + i] = deq;
      const e = (x - deq) / u[i * n + i]!;
      for (let j = i + 1; j < n; j++) wt[j * rows + r] -= u[i * n + j]! * e;
    }
  }
  return { codes, q };
}

function objective(w: Float64Array, q: ArrayLike<number>, h: Float64Array, rows: number, n: number): number {
  let total = 0;
  const d = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < n; c++) d[c] = w[r * n + c]! - q[r * n + c]!;
    for (let a = 0; a < n; a++) {
      let t = 0;
      for (let b = 0; b < n; b++) t += h[a * n + b]! * d[b]!;
      total += d[a]! * t;
    }
  }
  return total;
}

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
      const { codesT } = await webgpuGptqSolve(gpu!, {
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
      const ref = referenceGptq(w, rows, n, u, groupSize);
      let same = 0;
      for (let i = 0; i < codesT.length; i++) if (codesT[i] === ref.codes[i]) same++;
      // float32 on the GPU against float64 here: a code may differ where a value lies within rounding of a midpoint.
      expect(same / codesT.length).toBeGreaterThan(0.995);
      const q = new Float64Array(rows * n);
      for (let c = 0; c < n; c++) {
        const { scale, zero } = groupOf.get(Math.floor(c / groupSize) * groupSize)!;
        for (let r = 0; r < rows; r++) q[r * n + c] = (codesT[c * rows + r]! - zero[r]!) * scale[r]!;
      }
      const rtn = new Float64Array(rows * n);
      for (let g0 = 0; g0 < n; g0 += groupSize) {
        const width = Math.min(groupSize, n - g0);
        const { scale, zero } = minMaxScales(weightT.subarray(g0 * rows, (g0 + width) * rows), width, rows);
        for (let c = g0; c < g0 + width; c++) for (let r = 0; r < rows; r++) {
          const code = Math.min(15, Math.max(0, Math.round(w[r * n + c]! / scale[r]! + zero[r]!)));
          rtn[r * n + c] = (code - zero[r]!) * scale[r]!;
        }
      }
      const gpuObjective = objective(w, q, h, rows, n);
      expect(Math.abs(gpuObjective - objective(w, ref.q, h, rows, n)) / gpuObjective).toBeLessThan(2e-3);
      expect(gpuObjective).toBeLessThan(0.8 * objective(w, rtn, h, rows, n));
    });
  }

  it('the inverse Hessian factor on the GPU (float32) matches the float64 CPU factor', async () => {
    const n = 300; // three blocks of 128, the last one partial
    const tokens = 2 * n;
    const z = randomArray(tokens * n, 41);
    const h = new Float64Array(n * n);
    for (let t = 0; t < tokens; t++) {
      for (let c = 1; c < n; c++) z[t * n + c] += 0.6 * z[t * n + c - 1]!;
      for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) h[a * n + b] += z[t * n + a]! * z[t * n + b]!;
    }
    let mean = 0;
    for (let i = 0; i < n; i++) mean += h[i * n + i]! / n;
    for (let i = 0; i < n; i++) h[i * n + i] += 0.01 * mean;
    const cpu = (await choleskyInverseUpper(matrix<'float64'>(h.slice(), n, n), { backend: createJsBackend() })).data;
    const resident = await webgpuCholeskyInverseUpper(gpu!, h, n);
    const u = await gpu!.read(resident);
    gpu!.release(resident);
    let num = 0;
    let den = 0;
    for (let i = 0; i < n * n; i++) {
      num += (u[i]! - cpu[i]!) ** 2;
      den += cpu[i]! ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(1e-4);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
  });
});
