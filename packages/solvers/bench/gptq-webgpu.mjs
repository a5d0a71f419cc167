// gptqQuantizeLayer on the webgpu backend (needs a WebGPU adapter; run on the device machine by
// scripts/device/webgpu-suite.sh as `bench-gptq-layer`): one 4096 x 4096 layer, 8192 correlated tokens, int4-asym
// groups of 128, with the inverse factor on the CPU (`factorPrecision: 'mixed'`, float64 Schur complements) and on
// the GPU (`'gpu'`, float32); the column loop runs on the GPU in both, the scales by core's rules. Prints each run's
// split, the share of equal codes and the two layer objectives.
// Usage: node bench/gptq-webgpu.mjs [--size 4096] [--tokens 8192]
import { writeSync } from 'node:fs';
import { createWebgpuBackend } from '@bitsmith/linalg';
import { gptqQuantizeLayer, layerObjective } from '../dist/index.js';

const argv = process.argv.slice(2);
const flag = (name, fallback) => (argv.includes(`--${name}`) ? Number(argv[argv.indexOf(`--${name}`) + 1]) : fallback);
const n = flag('size', 4096);
const tokens = flag('tokens', 8192);
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

const gpu = await createWebgpuBackend();
const x = random(tokens * n, 5);
for (let t = 0; t < tokens; t++) for (let c = 1; c < n; c++) x[t * n + c] += 0.5 * x[t * n + c - 1];
const hessian = new Float64Array(n * n);
await gpu.gram({ rows: tokens, columns: n, x, h: hessian, beta: 0 });
const weight = { dtype: 'float32', shape: [n, n], data: random(n * n, 6) };
const options = { format: 'int4-asym', granularity: { type: 'group', size: 128 }, backend: gpu };
const results = {};
for (const factorPrecision of ['mixed', 'gpu']) {
  await gptqQuantizeLayer(weight, hessian, { ...options, factorPrecision }); // warm-up
  const t0 = now();
  const result = await gptqQuantizeLayer(weight, hessian, { ...options, factorPrecision });
  const total = now() - t0;
  results[factorPrecision] = result;
  say(`gptqQuantizeLayer ${n}x${n} int4-asym g128 on webgpu, factor ${factorPrecision === 'gpu' ? 'on the GPU (float32)' : `on the CPU (mixed, ${gpu.threads} threads)`}`.padEnd(86) +
    `${(total * 1000).toFixed(0).padStart(6)} ms  (factor ${(result.timings.factorization * 1000).toFixed(0)} ms, solve ${(result.timings.solve * 1000).toFixed(0)} ms)`);
}
const a = results.mixed.quantized.codes;
const b = results.gpu.quantized.codes;
let same = 0;
for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
const objective = (r) => layerObjective(weight, r.weight, hessian, { backend: gpu });
say(`codes equal between the two: ${((100 * same) / a.length).toFixed(3)}%; objective GPU factor / CPU factor: ${((await objective(results.gpu)) / (await objective(results.mixed))).toFixed(5)}`);
await gpu.dispose();
process.exit(0);
