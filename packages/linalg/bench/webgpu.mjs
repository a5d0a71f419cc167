// The benchmark of @bitsmith/linalg's webgpu backend: float32 GEMM 4096^3 on resident matrices for several tile
// shapes (Dawn's bounds checks on and off), float16 GEMM, the Backend-contract calls with their copies, Gram, FWHT, and
// GPTQ of one 4096 x 4096 layer with 8192 tokens (w4 asymmetric, groups of 128) three ways: float64 H and U on the
// CPU; float64 H with U on the GPU; and all on the GPU (X uploaded once, H, U, scales and codes formed there). With --dump DIR it writes the GPTQ problem and its codes for the
// PyTorch CUDA peer (scripts/device/torch-peer.py), which compares codes and objectives.
//
// Usage (after `npx turbo run build --filter=@bitsmith/linalg`; needs a WebGPU adapter):
//   node bench/webgpu.mjs [--part gemm,contract,gram,fwht,gptq,block,e2e] [--blocks 32] [--robustness on|off (default off)] [--size 4096] [--tokens 8192] [--reps 10] [--threads N]
//       [--dump DIR] [--quick]
import { mkdirSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { choleskyInverseUpper, createWasmBackend, createWebgpuBackend, webgpuCholeskyInverseUpper, webgpuDecoderBlock, webgpuGptqSolve, webgpuSequences } from '../dist/index.js';

const argv = process.argv.slice(2);
const flag = (name) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const N = Number(flag('size') ?? 4096);
const TOKENS = Number(flag('tokens') ?? 8192);
const REPS = Number(flag('reps') ?? 10);
const threads = Number(flag('threads') ?? availableParallelism());
const dump = flag('dump');
const quick = argv.includes('--quick');
const robustness = flag('robustness') === 'on'; // Dawn's bounds checks; one setting per process (one Dawn instance)
const parts = (flag('part') ?? 'gemm,contract,gram,fwht,gptq').split(',');
const say = (line) => writeSync(1, `${line}\n`);
const now = () => performance.now() / 1000;

function random(length, seed) {
  const out = new Float32Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
}

function maxRelativeError(got, want) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return num / den;
}

/** Checks C = A B on a few sampled entries in float64. */
function sampledError(c, a, b, n, samples = 64) {
  let worst = 0;
  for (let s = 0; s < samples; s++) {
    const i = (s * 2654435761) % n;
    const j = (s * 40503 + 17) % n;
    let ref = 0;
    let scale = 0;
    for (let q = 0; q < n; q++) {
      ref += a[i * n + q] * b[q * n + j];
      scale += Math.abs(a[i * n + q] * b[q * n + j]);
    }
    worst = Math.max(worst, Math.abs(c[i * n + j] - ref) / scale);
  }
  return worst;
}

const rows = [];
const record = (what, seconds, extra = {}) => {
  rows.push({ what, seconds, ...extra });
  const rate = extra.tflops !== undefined ? `${extra.tflops.toFixed(2)} TFLOP/s` : '';
  say(`${what.padEnd(58)} ${(seconds * 1000).toFixed(2).padStart(10)} ms  ${rate}${extra.note ? `  ${extra.note}` : ''}`);
};

async function timeResidentGemm(gpu, n, dtype, label) {
  const a = random(n * n, 1);
  const b = random(n * n, 2);
  const ga = gpu.upload(a, n, n, dtype);
  const gb = gpu.upload(b, n, n, dtype);
  const gc = gpu.zeros(n, n, dtype);
  gpu.gemm({ a: ga, b: gb, c: gc });
  await gpu.finish();
  const check = sampledError(await gpu.read(gc), a, b, n);
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const t0 = now();
    for (let i = 0; i < REPS; i++) gpu.gemm({ a: ga, b: gb, c: gc });
    await gpu.finish();
    best = Math.min(best, (now() - t0) / REPS);
  }
  for (const m of [ga, gb, gc]) gpu.release(m);
  record(label, best, { tflops: (2 * n ** 3) / best / 1e12, note: `sampled rel. error ${check.toExponential(1)}` });
  return best;
}

const TILES = [
  { wx: 16, wy: 16, nv: 2, mv: 2, bk: 16 },
  { wx: 16, wy: 16, nv: 2, mv: 2, bk: 8 },
  { wx: 16, wy: 16, nv: 4, mv: 2, bk: 8 },
  { wx: 16, wy: 16, nv: 1, mv: 1, bk: 16 },
];

const probe = await createWebgpuBackend({ threads: 1, robustness });
say(`adapter: ${JSON.stringify(probe.adapter)}, shader-f16: ${probe.shaderF16}, limits: workgroup storage ${probe.device.limits.maxComputeWorkgroupStorageSize} B, binding ${probe.device.limits.maxStorageBufferBindingSize} B`);
await probe.dispose();

if (parts.includes('gemm')) {
  for (const tile of quick ? TILES.slice(0, 1) : TILES) {
    const gpu = await createWebgpuBackend({ tile, robustness, threads: 1 });
    const { wx, wy, nv, mv, bk } = tile;
    try {
      await timeResidentGemm(gpu, N, 'float32', `sgemm ${N}^3 resident, tile ${wy * 4 * mv}x${wx * 4 * nv}x${bk}, ${robustness ? 'checks on' : 'checks off'}`);
    } catch (error) {
      say(`tile ${JSON.stringify(tile)} robustness ${robustness}: ${error.message}`);
    }
    await gpu.dispose();
  }
}

const gpu = await createWebgpuBackend({ robustness, threads });
if (gpu.shaderF16 && parts.includes('gemm')) await timeResidentGemm(gpu, N, 'float16', `hgemm ${N}^3 resident (float16 in and out), 128x128x16`);

if (parts.includes('contract')) {
  // The Backend contract: host arrays in and out (two 64 MiB uploads and one download around the kernel).
  const a = random(N * N, 3);
  const b = random(N * N, 4);
  const c = new Float32Array(N * N);
  await gpu.sgemm({ m: N, n: N, k: N, a, b, c });
  const t0 = now();
  await gpu.sgemm({ m: N, n: N, k: N, a, b, c });
  const t = now() - t0;
  record(`sgemm ${N}^3 via Backend.sgemm (copies included)`, t, { tflops: (2 * N ** 3) / t / 1e12 });
}

// GPTQ problem: correlated activations X (tokens x N), weight W (N x N), w4 asymmetric groups of 128.
const x = random(TOKENS * N, 5);
for (let t = 0; t < TOKENS; t++) {
  const o = t * N;
  for (let c = 1; c < N; c++) x[o + c] += 0.5 * x[o + c - 1];
  for (let c = 0; c < N; c += 97) x[o + c] *= 8; // a few outlier channels
}
const w = random(N * N, 6);
if (parts.includes('gram')) {
  const h = new Float64Array(N * N);
  await gpu.gram({ rows: TOKENS, columns: N, x, h, beta: 0 });
  const t0 = now();
  await gpu.gram({ rows: TOKENS, columns: N, x, h, beta: 0 });
  const t = now() - t0;
  record(`gram ${TOKENS}x${N} (X^T X into float64 H, copies included)`, t, { tflops: (2 * TOKENS * N * N) / t / 1e12, note: 'counted as 2 m n^2' });
}
if (parts.includes('fwht')) {
  const data = random(N * N, 7);
  const reference = data.slice();
  await gpu.fwht({ rows: N, n: N, data });
  const cpu = await createWasmBackend({ threads });
  await cpu.fwht({ rows: N, n: N, data: reference });
  const error = maxRelativeError(data, reference);
  const t0 = now();
  await gpu.fwht({ rows: N, n: N, data });
  record(`fwht ${N} rows x ${N} (copies included)`, now() - t0, { note: `max rel. error vs wasm ${error.toExponential(1)}` });
  await cpu.dispose();
}

async function gptq(factorOn) {
  const t0 = now();
  const h = new Float64Array(N * N);
  await gpu.gram({ rows: TOKENS, columns: N, x, h, beta: 0 });
  const t1 = now();
  let mean = 0;
  for (let i = 0; i < N; i++) mean += h[i * N + i] / N;
  for (let i = 0; i < N; i++) h[i * N + i] += 0.01 * mean;
  const u = factorOn === 'gpu' ? await webgpuCholeskyInverseUpper(gpu, h, N) : (await choleskyInverseUpper({ dtype: 'float64', shape: [N, N], data: h }, { backend: gpu })).data;
  if (factorOn === 'gpu') await gpu.finish();
  const t2 = now();
  const weightT = new Float32Array(N * N);
  for (let r = 0; r < N; r++) for (let c = 0; c < N; c++) weightT[c * N + r] = w[r * N + c];
  const levels = Float32Array.from({ length: 16 }, (_, i) => i);
  const scales = [];
  const result = await webgpuGptqSolve(gpu, {
    rows: N,
    columns: N,
    weightT,
    factor: u,
    levels,
    groupSize: 128,
    groupScales: (start, width, current) => {
      const scale = new Float32Array(N);
      const zero = new Float32Array(N);
      for (let r = 0; r < N; r++) {
        let lo = 0;
        let hi = 0;
        for (let j = 0; j < width; j++) {
          const v = current[j * N + r];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        const s = (hi - lo) / 15;
        scale[r] = s;
        zero[r] = s > 0 ? Math.round(-lo / s) : 0;
      }
      scales.push({ scale, zero });
      return { scale, zero };
    },
  });
  const t3 = now();
  if (factorOn === 'gpu') gpu.release(u);
  return { result, scales, times: { hessian: t1 - t0, factor: t2 - t1, solve: t3 - t2, total: t3 - t0 } };
}

/**
 * GPTQ with nothing but the inputs and the result crossing to the host: X uploaded once, H = X^T X formed on the GPU
 * (upper tiles, float32, as the reference implementation does on CUDA), dampened and factored there (diagonal blocks
 * in one workgroup each), the weight transposed there, group scales by the min-max kernel, the codes repacked there.
 * `sync` waits after each part to time it; without it the parts are queued back to back and only the total counts.
 */
async function gptqResident(sync) {
  const t0 = now();
  const xg = gpu.upload(x, TOKENS, N);
  if (sync) await gpu.finish();
  const t1 = now();
  const h = gpu.zeros(N, N);
  gpu.gemm({ a: xg, b: xg, c: h, transA: true, upper: true });
  gpu.release(xg);
  if (sync) await gpu.finish();
  const t2 = now();
  const u = await webgpuCholeskyInverseUpper(gpu, h, N, { dampening: 0.01 });
  gpu.release(h);
  const t3 = now();
  const levels = Float32Array.from({ length: 16 }, (_, i) => i);
  const result = await webgpuGptqSolve(gpu, { rows: N, columns: N, weight: w, factor: u, levels, groupSize: 128, groupScales: { kind: 'min-max', maxCode: 15 } });
  gpu.release(u);
  const t4 = now();
  const scales = Array.from({ length: N / 128 }, (_, g) => ({ scale: result.scales.subarray(g * N, (g + 1) * N), zero: result.zeros.subarray(g * N, (g + 1) * N) }));
  return { result, scales, times: { upload: t1 - t0, hessian: t2 - t1, factor: t3 - t2, solve: t4 - t3, total: t4 - t0 } };
}

let run;
const runs = {};
if (parts.includes('gptq')) {
  for (const factorOn of ['cpu', 'gpu']) {
    try {
      await gptq(factorOn); // warm-up: pipelines compiled, wasm workers started
      run = runs[factorOn] = await gptq(factorOn);
    } catch (error) {
      say(`GPTQ with the factor on the ${factorOn}: ${error.stack ?? error}`);
      continue;
    }
    const where = factorOn === 'gpu' ? 'GPU float32 (blocked, diagonal blocks on the GPU)' : `CPU float64, ${threads} threads`;
    record(`GPTQ ${N}x${N}, ${TOKENS} tokens, w4 asym g128 [factor ${factorOn}]: Hessian (GPU, float64 H)`, run.times.hessian);
    record(`  dampening + U = chol(H^-1) (${where})`, run.times.factor);
    record(`  column loop (GPU) incl. upload/download`, run.times.solve, {
      note: `upload ${(run.result.timings.upload * 1000).toFixed(1)} ms, loop ${(run.result.timings.solve * 1000).toFixed(1)} ms (group scales: copy back + callback ${(run.result.timings.scales * 1000).toFixed(1)} ms), codes back ${(run.result.timings.download * 1000).toFixed(1)} ms`,
    });
    record(`  total [factor ${factorOn}]`, run.times.total);
  }
  try {
    await gptqResident(true); // warm-up
    const timed = await gptqResident(true);
    const totals = [];
    for (let r = 0; r < 3; r++) totals.push((await gptqResident(false)).times.total);
    run = runs.resident = timed;
    const t = timed.times;
    const ms = (v) => `${(v * 1000).toFixed(1)} ms`;
    record(`GPTQ ${N}x${N}, ${TOKENS} tokens, w4 asym g128 [all on the GPU]: X upload (${(TOKENS * N * 4) / 2 ** 20} MiB)`, t.upload);
    record('  H = X^T X (GPU, float32, upper tiles)', t.hessian);
    record('  dampening + U (GPU float32, diagonal blocks on the GPU, one check read)', t.factor);
    record('  column loop (GPU, min-max scales on the GPU)', t.solve, {
      note: `W upload + transpose ${ms(timed.result.timings.upload)}, loop ${ms(timed.result.timings.solve)}, codes + scales back ${ms(timed.result.timings.download)}`,
    });
    record('  total, parts timed (a wait after each part)', t.total);
    record('  total, queued back to back (best of 3)', Math.min(...totals), { note: `runs ${totals.map(ms).join(', ')}` });
    const reference = runs.gpu ?? runs.cpu;
    if (reference) {
      let same = 0;
      for (let i = 0; i < timed.result.codesT.length; i++) if (timed.result.codesT[i] === reference.result.codesT[i]) same++;
      say(`  codes equal to the [factor ${runs.gpu ? 'gpu' : 'cpu'}] run's (float64 H, scales by the JavaScript callback): ${((100 * same) / timed.result.codesT.length).toFixed(3)}%`);
    }
    runs.residentBest = Math.min(...totals);
  } catch (error) {
    say(`GPTQ all on the GPU: ${error.stack ?? error}`);
  }
}

/**
 * A Llama-3-8B-shaped decoder block on the GPU (hidden 4096, 32 heads, 8 kv heads of 128, intermediate 14336, random
 * weights): the forward pass of 8192 calibration tokens (16 sequences of 512) with the four Hessians accumulated, then
 * GPTQ (w4 asym g128, all on the GPU) of the two layer shapes that differ: q_proj (4096 x 4096 from the q/k/v
 * Hessian) and down_proj (4096 x 14336 from the 14336^2 Hessian). The pieces of a projection of the end-to-end run.
 */
if (parts.includes('block')) {
  const [hidden, inter, heads, kvHeads, headDim, seqs, seqLen] = [4096, 14336, 32, 8, 128, 16, 512];
  const tokens = seqs * seqLen;
  const scaled = (length, seed, scale, base = 0) => {
    const a = random(length, seed);
    for (let i = 0; i < a.length; i++) a[i] = base + scale * a[i];
    return a;
  };
  const t0 = now();
  const weights = {
    inputNorm: gpu.upload(scaled(hidden, 11, 0.2, 1), 1, hidden),
    postAttentionNorm: gpu.upload(scaled(hidden, 12, 0.2, 1), 1, hidden),
    qProj: gpu.upload(scaled(heads * headDim * hidden, 13, 0.05), heads * headDim, hidden),
    kProj: gpu.upload(scaled(kvHeads * headDim * hidden, 14, 0.05), kvHeads * headDim, hidden),
    vProj: gpu.upload(scaled(kvHeads * headDim * hidden, 15, 0.05), kvHeads * headDim, hidden),
    oProj: gpu.upload(scaled(hidden * heads * headDim, 16, 0.05), hidden, heads * headDim),
    gateProj: gpu.upload(scaled(inter * hidden, 17, 0.05), inter, hidden),
    upProj: gpu.upload(scaled(inter * hidden, 18, 0.05), inter, hidden),
    downProj: gpu.upload(scaled(hidden * inter, 19, 0.03), hidden, inter),
  };
  await gpu.finish();
  say(`block weights made and uploaded (${((2 * hidden + 2 * heads * headDim * hidden + 2 * kvHeads * headDim * hidden + 3 * inter * hidden) * 4 / 2 ** 30).toFixed(2)} GiB float32): ${((now() - t0) * 1000).toFixed(0)} ms`);
  const half = headDim / 2;
  const cos = new Float32Array(seqLen * half);
  const sin = new Float32Array(seqLen * half);
  for (let p = 0; p < seqLen; p++) for (let i = 0; i < half; i++) {
    const angle = p / 500000 ** ((2 * i) / headDim);
    cos[p * half + i] = Math.cos(angle);
    sin[p * half + i] = Math.sin(angle);
  }
  const gcos = gpu.upload(cos, seqLen, half);
  const gsin = gpu.upload(sin, seqLen, half);
  const sequences = webgpuSequences(gpu, Array.from({ length: seqs }, () => seqLen));
  const x = gpu.upload(random(tokens * hidden, 20), tokens, hidden);
  const out = gpu.zeros(tokens, hidden);
  const hessians = { qkv: gpu.zeros(hidden, hidden), o: gpu.zeros(hidden, hidden), gateUp: gpu.zeros(hidden, hidden), down: gpu.zeros(inter, inter) };
  const geometry = { hidden, intermediate: inter, numHeads: heads, numKvHeads: kvHeads, headDim, eps: 1e-5 };
  const forward = (withHessians) => webgpuDecoderBlock(gpu, { x, out, weights, geometry, sequences, cos: gcos, sin: gsin, ...(withHessians ? { hessians } : {}) });
  forward(true);
  await gpu.finish();
  for (const withHessians of [true, false]) {
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
      const ts = now();
      forward(withHessians);
      await gpu.finish();
      best = Math.min(best, now() - ts);
    }
    const flops = 2 * tokens * hidden * (2 * heads * headDim + 2 * kvHeads * headDim + 3 * inter) + (withHessians ? 2 * tokens * (3 * hidden * hidden + inter * inter) / 2 : 0);
    record(`8B-shaped block, ${tokens} tokens (${seqs} x ${seqLen}): forward${withHessians ? ' + 4 Hessians' : ''}`, best, { tflops: flops / best / 1e12, note: 'GEMM work counted, attention not' });
  }
  const levels = Float32Array.from({ length: 16 }, (_, i) => i);
  for (const [name, rows, columns, h] of [['q_proj', heads * headDim, hidden, hessians.qkv], ['down_proj', hidden, inter, hessians.down]]) {
    const w = scaled(rows * columns, 21, 0.05);
    for (let r = 0; r < 2; r++) {
      const ts = now();
      const u = await webgpuCholeskyInverseUpper(gpu, h, columns, { dampening: 0.01 });
      const tf = now();
      const result = await webgpuGptqSolve(gpu, { rows, columns, weight: w, factor: u, levels, groupSize: 128, groupScales: { kind: 'min-max', maxCode: 15 } });
      gpu.release(u);
      const te = now();
      if (r === 1) record(`  GPTQ ${name} ${rows} x ${columns} (H from the block's calibration)`, te - ts, { note: `factor ${((tf - ts) * 1000).toFixed(1)} ms, solve ${((te - tf) * 1000).toFixed(1)} ms (W upload ${(result.timings.upload * 1000).toFixed(1)} ms)` });
    }
  }
  sequences.release();
  for (const m of [...Object.values(weights), ...Object.values(hessians), gcos, gsin, x, out]) gpu.release(m);
}

/**
 * The compute of GPTQ w4g128 over a Llama-3-8B-shaped model on the GPU, block after block as GPTQ runs it (each
 * block calibrated on the previous quantized blocks' outputs): 128 sequences of 512 tokens resident, per block the
 * calibration forward with the four Hessians (8 chunks of 8192 tokens), GPTQ of its seven linears (one factor per
 * distinct Hessian; codes and scales copied back as a writer would need them; the dequantized weights written over
 * the block's weights on the GPU), then the forward with the quantized weights for the next block's inputs.
 * Random weights are made on the GPU per block (uniform, scaled like trained ones); the embedding, the file reading
 * and the writing are not part of it.
 */
if (parts.includes('e2e')) {
  const blocks = Number(flag('blocks') ?? 32);
  const [hidden, inter, heads, kvHeads, headDim, seqs, seqLen, chunkSeqs] = [4096, 14336, 32, 8, 128, 128, 512, 16];
  const chunkTokens = chunkSeqs * seqLen;
  const chunks = seqs / chunkSeqs;
  const device = gpu.device;
  const fill = device.createComputePipeline({
    layout: 'auto',
    compute: {
      entryPoint: 'main',
      module: device.createShaderModule({
        code: `
struct P { count: u32, seed: u32, scale: f32, base: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.count) { return; }
  var h = i * 747796405u + p.seed * 2891336453u + 1u;
  h = ((h >> ((h >> 28u) + 4u)) ^ h) * 277803737u;
  h = (h >> 22u) ^ h;
  data[i] = p.base + p.scale * (f32(h) / 4294967296.0 - 0.5);
}`,
      }),
    },
  });
  const randomize = (m, seed, scale, base = 0) => {
    const count = m.rows * m.columns;
    const words = new ArrayBuffer(16);
    new Uint32Array(words).set([count, seed]);
    new Float32Array(words).set([scale, base], 2);
    const params = device.createBuffer({ size: 16, usage: 0x40 | 0x8 });
    device.queue.writeBuffer(params, 0, words);
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(fill);
    pass.setBindGroup(0, device.createBindGroup({ layout: fill.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: params } }, { binding: 1, resource: { buffer: m.buffer } }] }));
    const groups = Math.ceil(count / 256);
    pass.dispatchWorkgroups(Math.min(groups, 65535), Math.ceil(groups / 65535));
    pass.end();
    device.queue.submit([encoder.finish()]);
    params.destroy();
  };
  const q = heads * headDim;
  const kv = kvHeads * headDim;
  const weights = {
    inputNorm: gpu.zeros(1, hidden),
    postAttentionNorm: gpu.zeros(1, hidden),
    qProj: gpu.zeros(q, hidden),
    kProj: gpu.zeros(kv, hidden),
    vProj: gpu.zeros(kv, hidden),
    oProj: gpu.zeros(hidden, q),
    gateProj: gpu.zeros(inter, hidden),
    upProj: gpu.zeros(inter, hidden),
    downProj: gpu.zeros(hidden, inter),
  };
  const half = headDim / 2;
  const cos = new Float32Array(seqLen * half);
  const sin = new Float32Array(seqLen * half);
  for (let p = 0; p < seqLen; p++) for (let i = 0; i < half; i++) {
    const angle = p / 500000 ** ((2 * i) / headDim);
    cos[p * half + i] = Math.cos(angle);
    sin[p * half + i] = Math.sin(angle);
  }
  const gcos = gpu.upload(cos, seqLen, half);
  const gsin = gpu.upload(sin, seqLen, half);
  const sequences = webgpuSequences(gpu, Array.from({ length: chunkSeqs }, () => seqLen));
  let states = Array.from({ length: chunks }, (_, c) => gpu.upload(random(chunkTokens * hidden, 100 + c), chunkTokens, hidden));
  let next = Array.from({ length: chunks }, () => gpu.zeros(chunkTokens, hidden));
  const hessians = { qkv: gpu.zeros(hidden, hidden), o: gpu.zeros(q, q), gateUp: gpu.zeros(hidden, hidden), down: gpu.zeros(inter, inter) };
  const geometry = { hidden, intermediate: inter, numHeads: heads, numKvHeads: kvHeads, headDim, eps: 1e-5 };
  const levels = Float32Array.from({ length: 16 }, (_, i) => i);
  const layers = [
    ['qProj', 'qkv'], ['kProj', 'qkv'], ['vProj', 'qkv'], ['oProj', 'o'], ['gateProj', 'gateUp'], ['upProj', 'gateUp'], ['downProj', 'down'],
  ];
  await gpu.finish();
  const split = { calibrate: 0, gptq: 0, forward: 0 };
  let codeBytes = 0;
  let worstObjective = 0;
  const t0 = now();
  for (let b = 0; b < blocks; b++) {
    const tb = now();
    for (const [i, [name, m]] of Object.entries(weights).entries()) randomize(m, 1000 * b + i, name.endsWith('Norm') ? 0.2 : name === 'downProj' ? 0.02 : 0.04, name.endsWith('Norm') ? 1 : 0);
    const encoder = device.createCommandEncoder();
    for (const h of Object.values(hessians)) encoder.clearBuffer(h.buffer);
    device.queue.submit([encoder.finish()]);
    for (let c = 0; c < chunks; c++) webgpuDecoderBlock(gpu, { x: states[c], out: next[c], weights, geometry, sequences, cos: gcos, sin: gsin, hessians });
    await gpu.finish();
    const tc = now();
    let factor;
    let factorOf;
    for (const [name, key] of layers) {
      if (factorOf !== key) {
        if (factor) gpu.release(factor);
        factor = await webgpuCholeskyInverseUpper(gpu, hessians[key], hessians[key].rows, { dampening: 0.01 });
        factorOf = key;
      }
      const w = weights[name];
      const result = await webgpuGptqSolve(gpu, { rows: w.rows, columns: w.columns, weight: w, dequantized: w, factor, levels, groupSize: 128, groupScales: { kind: 'min-max', maxCode: 15 } });
      codeBytes += result.codesT.length;
      for (let i = 0; i < result.scales.length; i++) if (!Number.isFinite(result.scales[i])) worstObjective = Infinity;
    }
    gpu.release(factor);
    const tg = now();
    for (let c = 0; c < chunks; c++) webgpuDecoderBlock(gpu, { x: states[c], out: next[c], weights, geometry, sequences, cos: gcos, sin: gsin });
    await gpu.finish();
    const tf = now();
    [states, next] = [next, states];
    split.calibrate += tc - tb;
    split.gptq += tg - tc;
    split.forward += tf - tg;
    if (b === 0 || b === blocks - 1) say(`  block ${b}: calibration ${((tc - tb) * 1000).toFixed(0)} ms, GPTQ of 7 linears ${((tg - tc) * 1000).toFixed(0)} ms, quantized forward ${((tf - tg) * 1000).toFixed(0)} ms`);
  }
  const total = now() - t0;
  const last = await gpu.read(states[0]);
  let finite = true;
  for (let i = 0; i < last.length; i++) if (!Number.isFinite(last[i])) finite = false;
  record(`GPTQ w4g128, Llama-3-8B-shaped, ${blocks} blocks, ${seqs} x ${seqLen} tokens (compute on the GPU)`, total, {
    note: `calibration ${split.calibrate.toFixed(1)} s, GPTQ ${split.gptq.toFixed(1)} s, quantized forward ${split.forward.toFixed(1)} s; ${(codeBytes / 2 ** 20).toFixed(0)} MiB of codes back; final states finite: ${finite}${worstObjective === Infinity ? ', a scale was not finite' : ''}`,
  });
  say(`  peak host memory of this process (max RSS): ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)} GiB`);
  sequences.release();
  for (const m of [...Object.values(weights), ...Object.values(hessians), ...states, ...next, gcos, gsin]) gpu.release(m);
}

if (dump && run) {
  mkdirSync(dump, { recursive: true });
  writeFileSync(`${dump}/x.f32`, x);
  writeFileSync(`${dump}/w.f32`, w);
  writeFileSync(`${dump}/codes.u8`, Uint8Array.from(run.result.codesT)); // columns x rows, processing order = natural
  const s = new Float32Array(N * (N / 128));
  const z = new Float32Array(N * (N / 128));
  run.scales.forEach((g, i) => {
    s.set(g.scale, i * N);
    z.set(g.zero, i * N);
  });
  writeFileSync(`${dump}/scales.f32`, s); // groups x rows
  writeFileSync(`${dump}/zeros.f32`, z);
  const totals = {};
  if (runs.cpu) totals['factor on the CPU (float64 H and U), scales by callback'] = runs.cpu.times.total;
  if (runs.gpu) totals['factor on the GPU from float64 H, scales by callback'] = runs.gpu.times.total;
  if (runs.resident) totals['all on the GPU, parts timed'] = runs.resident.times.total;
  if (runs.residentBest) totals['all on the GPU, queued back to back (best of 3)'] = runs.residentBest;
  const label = runs.resident ? 'all on the GPU' : runs.gpu ? 'factor on the GPU' : 'factor on the CPU';
  writeFileSync(`${dump}/meta.json`, JSON.stringify({ n: N, tokens: TOKENS, group: 128, times: run.times, codes: label, totals }));
}
if (dump) {
  mkdirSync(dump, { recursive: true });
  writeFileSync(`${dump}/webgpu-bench-${parts.join('-')}${robustness ? '-checks' : ''}.json`, JSON.stringify(rows, null, 1));
}
await gpu.dispose();
process.exit(0);
