// GPTQ benchmark: one 4096 x 4096 layer, 8192 calibration tokens (random, correlated), int4 g128, against a PyTorch
// GPTQ reference (bench/gptq-reference.py, single-threaded torch) on the same W and X and numpy's Cholesky + inverse
// of the same damped Hessian (bench/numpy-factorization.py), all in one run. The Python parts are skipped with a
// message when no python3 with torch (Debian: apt-get install python3-torch) is found; BITSMITH_PYTHON picks one.
// Usage: npm run bench -w @bitsmith/solvers [-- --rows 4096 --columns 4096 --tokens 8192 --group 128 --bits 4 --torch-threads 1 --rounds 2]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dequantize, quantize, parseFormat } from '@bitsmith/core';
import { defaultBackend, disposeDefaultBackend, fillNormal } from '@bitsmith/linalg';
import { gptqQuantizeLayer, layerObjective } from '../dist/index.js';
import { findPython } from '../../../scripts/find-python.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const rows = Number(args.rows ?? 4096);
const columns = Number(args.columns ?? 4096);
const tokens = Number(args.tokens ?? 8192);
const group = Number(args.group ?? 128);
const bits = Number(args.bits ?? 4);
const objectiveRows = Math.min(rows, Number(args['objective-rows'] ?? 512));
const torchThreads = Number(args['torch-threads'] ?? 1);
const rounds = Math.max(1, Number(args.rounds ?? 2));
const here = dirname(fileURLToPath(import.meta.url));

/** Runs a Python script with OpenBLAS/OpenMP limited to `threads`; returns its last stdout line as JSON. */
function runPython(python, script, scriptArgs, threads) {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const run = spawnSync(python, [join(here, script), ...scriptArgs.map(String)], { encoding: 'utf8', env, maxBuffer: 1 << 20 });
  if (run.status !== 0) throw new Error(`${script} failed (${run.status}): ${run.stderr.slice(-2000)}`);
  return JSON.parse(run.stdout.trim().split('\n').pop());
}

const seconds = (t) => (performance.now() - t) / 1000;
const backend = await defaultBackend();
console.log(`backend ${backend.name} (${backend.threads} threads); layer ${rows} x ${columns}, ${tokens} tokens, int${bits} g${group}; fastest of ${rounds} rounds each side`);

// Correlated inputs: x_j = z_j + 0.5 x_{j-1}, with per-channel scales (a few outlier channels), as real activations.
const x = fillNormal(new Float32Array(tokens * columns), 1);
const channelScale = new Float32Array(columns);
for (let j = 0; j < columns; j++) channelScale[j] = j % 97 === 0 ? 8 : 0.5 + ((j * 7919) % 100) / 100;
for (let t = 0; t < tokens; t++) {
  const o = t * columns;
  for (let j = 1; j < columns; j++) x[o + j] += 0.5 * x[o + j - 1];
  for (let j = 0; j < columns; j++) x[o + j] *= channelScale[j];
}
const weightData = fillNormal(new Float32Array(rows * columns), 2);
for (let i = 0; i < weightData.length; i++) weightData[i] *= 0.02;
const weight = { dtype: 'float32', shape: [rows, columns], data: weightData };

// Hessian and GPTQ `rounds` times (the fastest round counts; the peer runs as many times in its process, fastest
// counts), so that both sides are measured warm and one slow phase of a shared machine does not decide the ratio.
const granularity = { type: 'group', size: group };
const format = parseFormat(`int${bits}`);
const hessian = new Float64Array(columns * columns);
let hessianTime = Infinity;
let gptqTotal = Infinity;
let result;
for (let round = 0; round < rounds; round++) {
  const start = performance.now();
  await backend.gram({ rows: tokens, columns, x, h: hessian, alpha: 1, beta: 0 });
  const h = seconds(start);
  const t0 = performance.now();
  const r = await gptqQuantizeLayer(weight, hessian, { format, granularity, backend });
  const g = seconds(t0);
  if (h + g < hessianTime + gptqTotal) {
    hessianTime = h;
    gptqTotal = g;
    result = r;
  }
}
let t;

// The same layer with the float64 factor (the issue's "measure the layer objective both ways").
t = performance.now();
const result64 = await gptqQuantizeLayer(weight, hessian, { format, granularity, backend, factorPrecision: 'float64' });
const gptqTotal64 = seconds(t);

t = performance.now();
const rtnWeight = dequantize(quantize(weight, { format, granularity }));
const rtnTime = seconds(t);

// Objective on the first rows (rows are independent given H).
const slice = (m) => ({ dtype: 'float32', shape: [objectiveRows, columns], data: m.data.subarray(0, objectiveRows * columns) });
const gptqObjective = await layerObjective(slice(weight), slice(result.weight), hessian, { backend });
const rtnObjective = await layerObjective(slice(weight), slice(rtnWeight), hessian, { backend });
const gptq64Objective = await layerObjective(slice(weight), slice(result64.weight), hessian, { backend });
let sameCodes = 0;
for (let i = 0; i < result.quantized.codes.length; i++) if (result.quantized.codes[i] === result64.quantized.codes[i]) sameCodes++;

const total = hessianTime + gptqTotal;
const ours = { hessian: hessianTime, factorization: result.timings.factorization, solve: result.timings.solve, total };

// The peers, on the same W and X (and the same damped float64 Hessian for numpy).
let torchResult;
let numpyResult;
let torchObjective;
const python = findPython();
if (!python) {
  console.log('PyTorch reference skipped: no python3 with torch and numpy (Debian: apt-get install python3-torch; or set BITSMITH_PYTHON)');
} else {
  const dir = mkdtempSync(join(tmpdir(), 'bitsmith-gptq-bench-'));
  try {
    writeFileSync(join(dir, 'x.f32'), new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
    writeFileSync(join(dir, 'w.f32'), new Uint8Array(weightData.buffer, weightData.byteOffset, weightData.byteLength));
    let mean = 0;
    for (let i = 0; i < columns; i++) mean += hessian[i * columns + i];
    const damped = Float64Array.from(hessian);
    for (let i = 0; i < columns; i++) damped[i * columns + i] += (0.01 * mean) / columns;
    writeFileSync(join(dir, 'h.f64'), new Uint8Array(damped.buffer));
    torchResult = runPython(python, 'gptq-reference.py', [dir, rows, columns, tokens, group, bits, torchThreads, rounds], torchThreads);
    const q = new Float32Array(readFileSync(join(dir, 'q.f32')).buffer.slice(0));
    torchObjective = await layerObjective(slice(weight), slice({ dtype: 'float32', shape: [rows, columns], data: q }), hessian, { backend });
    numpyResult = runPython(python, 'numpy-factorization.py', [join(dir, 'h.f64'), columns, 1], backend.threads);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const cell = (v) => (v === undefined ? '-' : `${v.toFixed(2)} s`);
const ratio = (a, b) => (b === undefined ? '-' : (a / b).toFixed(2));
console.log(`part            bitsmith (${backend.name}, ${backend.threads} threads)   PyTorch GPTQ (${torchResult ? `${torchResult.torch}, ${torchResult.threads} thread${torchResult.threads > 1 ? 's' : ''}` : 'absent'})   ratio`);
for (const part of ['hessian', 'factorization', 'solve', 'total']) {
  console.log(`${part.padEnd(16)}${cell(ours[part]).padStart(12)}${cell(torchResult?.[part]).padStart(36)}   ${ratio(ours[part], torchResult?.[part])}`);
}
console.log(`gptq call total ${gptqTotal.toFixed(2)} s (incl. input checks, scales, dequantize); dampening ${result.dampening}`);
if (numpyResult) {
  console.log(
    `numpy ${numpyResult.numpy} Cholesky + inverse of the same damped float64 Hessian (${backend.threads} OpenBLAS threads): ` +
      `${numpyResult.total.toFixed(2)} s (cholesky ${numpyResult.cholesky.toFixed(2)}, inverse ${numpyResult.inverse.toFixed(2)}); ` +
      `bitsmith factorization / numpy = ${ratio(ours.factorization, numpyResult.total)}`,
  );
}
console.log(
  `factor in float64 instead (factorPrecision 'float64'): factorization ${result64.timings.factorization.toFixed(2)} s, gptq call ${gptqTotal64.toFixed(2)} s; ` +
    `objective ${gptq64Objective.toExponential(6)} vs ${gptqObjective.toExponential(6)} with the mixed factor (ratio ${(gptqObjective / gptq64Objective).toFixed(6)}); ` +
    `codes equal ${((100 * sameCodes) / result.quantized.codes.length).toFixed(3)} %`,
);
console.log(`rtn               ${rtnTime.toFixed(2)} s`);
console.log(
  `objective tr((W-Q)H(W-Q)^T) on ${objectiveRows} rows: bitsmith gptq ${gptqObjective.toExponential(4)}` +
    (torchObjective !== undefined ? `, pytorch gptq ${torchObjective.toExponential(4)}` : '') +
    `, rtn ${rtnObjective.toExponential(4)}; gptq/rtn ${(gptqObjective / rtnObjective).toFixed(4)}`,
);
console.log(
  JSON.stringify({
    backend: backend.name,
    threads: backend.threads,
    rows,
    columns,
    tokens,
    format: `int${bits}`,
    group,
    rounds,
    ...ours,
    factorization64: result64.timings.factorization,
    gptqTotal64,
    objective64Ratio: gptqObjective / gptq64Objective,
    gptqTotal,
    rtn: rtnTime,
    objectiveRatio: gptqObjective / rtnObjective,
    ...(torchResult ? { torch: torchResult, torchObjectiveRatio: torchObjective / rtnObjective, totalRatio: total / torchResult.total } : {}),
    ...(numpyResult ? { numpy: numpyResult, factorizationVsNumpy: ours.factorization / numpyResult.total } : {}),
  }),
);
await disposeDefaultBackend();
