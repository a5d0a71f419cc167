/**
 * The page that `webgpu-browser.test.ts` bundles and opens in headless Chromium: GPTQ of a small layer all on the GPU
 * through `navigator.gpu` (the Hessian as an upper-tile GEMM, the factor with diagonal blocks on the GPU, the column
 * loop with the min-max rule), checked in the page against the float64 CPU factor and Algorithm 1, and attention
 * against the js backend. Posts `{ adapter, same, objectiveRatio, rtnRatio, attentionError }` (or `{ error }`) to
 * `/result` of the server that served it.
 */
import { matrix } from '@bitsmith/core';
import { choleskyInverseUpper } from '../cholesky-inverse-upper.js';
import { randomArray } from '../testing/fixtures.js';
import { createJsBackend } from './js-backend.js';
import { createWebgpuBackend } from './webgpu-backend.js';
import { webgpuAttention, webgpuSequences } from './webgpu-block.js';
import { webgpuCholeskyInverseUpper } from './webgpu-cholesky.js';
import { webgpuGptqSolve } from './webgpu-gptq.js';
import { minMaxScales, objective, referenceGptq } from './webgpu-gptq.test-support.js';

async function run(): Promise<Record<string, unknown>> {
  const cpu = createJsBackend();
  const gpu = await createWebgpuBackend({ cpu, minGpuWork: 0 });
  try {
    const [tokens, n, rows, groupSize] = [384, 192, 48, 64];
    const z = randomArray(tokens * n, 61);
    const x = new Float32Array(tokens * n);
    for (let t = 0; t < tokens; t++) for (let c = 0; c < n; c++) x[t * n + c] = z[t * n + c]! + (c > 0 ? 0.6 * x[t * n + c - 1]! : 0);
    const w = Float32Array.from(randomArray(rows * n, 62));
    // GPU: everything resident.
    const gx = gpu.upload(x, tokens, n);
    const gh = gpu.zeros(n, n);
    gpu.gemm({ a: gx, b: gx, c: gh, transA: true, upper: true });
    const u = await webgpuCholeskyInverseUpper(gpu, gh, n, { dampening: 0.01 });
    const levels = Float32Array.from({ length: 16 }, (_, i) => i);
    const result = await webgpuGptqSolve(gpu, { rows, columns: n, weight: w, factor: u, levels, groupSize, groupScales: { kind: 'min-max', maxCode: 15 } });
    for (const m of [gx, gh, u]) gpu.release(m);
    // CPU: float64 Hessian and factor, Algorithm 1.
    const h = new Float64Array(n * n);
    for (let t = 0; t < tokens; t++) for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) h[a * n + b] += x[t * n + a]! * x[t * n + b]!;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += h[i * n + i]! / n;
    const damped = h.slice();
    for (let i = 0; i < n; i++) damped[i * n + i] += 0.01 * mean;
    const ref = referenceGptq(Float64Array.from(w), rows, n, (await choleskyInverseUpper(matrix<'float64'>(damped, n, n), { backend: cpu })).data, groupSize);
    let same = 0;
    for (let i = 0; i < ref.codes.length; i++) if (result.codesT[i] === ref.codes[i]) same++;
    const q = new Float64Array(rows * n);
    const rtn = new Float64Array(rows * n);
    const wt = new Float32Array(n * rows);
    for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) wt[c * rows + r] = w[r * n + c]!;
    for (let c = 0; c < n; c++) {
      const g = Math.floor(c / groupSize);
      const { scale, zero } = minMaxScales(wt.subarray(g * groupSize * rows, Math.min(n, (g + 1) * groupSize) * rows), Math.min(groupSize, n - g * groupSize), rows);
      for (let r = 0; r < rows; r++) {
        const k = g * rows + r;
        q[r * n + c] = (result.codesT[c * rows + r]! - result.zeros[k]!) * result.scales[k]!;
        const code = Math.min(15, Math.max(0, Math.round(w[r * n + c]! / scale[r]! + zero[r]!)));
        rtn[r * n + c] = (code - zero[r]!) * scale[r]!;
      }
    }
    const w64 = Float64Array.from(w);
    const gpuObjective = objective(w64, q, h, rows, n);
    // Attention against the js backend.
    const [numHeads, numKvHeads, headDim, lengths] = [4, 2, 16, [21, 11]];
    const at = 32;
    const aq = Float32Array.from(randomArray(at * numHeads * headDim, 63));
    const ak = Float32Array.from(randomArray(at * numKvHeads * headDim, 64));
    const av = Float32Array.from(randomArray(at * numKvHeads * headDim, 65));
    const want = new Float32Array(at * numHeads * headDim);
    await cpu.attention({ q: aq, k: ak, v: av, out: want, lengths, numHeads, numKvHeads, headDim });
    const seq = webgpuSequences(gpu, lengths);
    const [gq, gk, gv, go] = [gpu.upload(aq, at, numHeads * headDim), gpu.upload(ak, at, numKvHeads * headDim), gpu.upload(av, at, numKvHeads * headDim), gpu.zeros(at, numHeads * headDim)];
    webgpuAttention(gpu, { q: gq, k: gk, v: gv, out: go, sequences: seq, numHeads, numKvHeads, headDim });
    const got = await gpu.read(go);
    let num = 0;
    let den = 0;
    for (let i = 0; i < want.length; i++) {
      num = Math.max(num, Math.abs(got[i]! - want[i]!));
      den = Math.max(den, Math.abs(want[i]!));
    }
    seq.release();
    for (const m of [gq, gk, gv, go]) gpu.release(m);
    return {
      adapter: gpu.adapter,
      same: same / ref.codes.length,
      objectiveRatio: gpuObjective / objective(w64, ref.q, h, rows, n),
      rtnRatio: gpuObjective / objective(w64, rtn, h, rows, n),
      attentionError: num / den,
    };
  } finally {
    await gpu.dispose();
  }
}

const post = (body: Record<string, unknown>): Promise<Response> => fetch('/result', { method: 'POST', body: JSON.stringify(body) });
run().then(post, (error: unknown) => post({ error: error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error) }));
