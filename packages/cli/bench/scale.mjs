// Scale benchmark (issue #17): GPTQ w4g128 block by block on a random-weight checkpoint with a real model's shapes
// (speed and memory depend on shapes, not values), printing wall time, the runner's ETA and the peak RSS, beside the
// issue's bound: 1.3 x the time the calibration forward and the Hessians cost at this machine's float32 GEMM speed
// (measured in the same run on the same backend).
//
//   npm run build
//   node packages/cli/bench/scale.mjs [--shape qwen2.5-0.5b] [--samples 128] [--seq-len 512] [--blocks N] [--dir DIR]
//     [--batch-tokens 2048] [--keep-stored-dtype true|false]
//
// --blocks N stops after N blocks (AbortSignal) and projects the whole run from the runner's ETA (said so in the
// output). The checkpoint is written by scripts/make-random-checkpoint.mjs into DIR (default
// $TMPDIR/bitsmith-<shape>-random) when DIR has no config.json. Token ids are random (seeded), BOS first.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AbortError } from '@bitsmith/core';
import { createRandom, defaultBackend, disposeDefaultBackend } from '@bitsmith/linalg';
import { llamaQuantizableModel, loadLlamaGraph } from '@bitsmith/models';
import { formatDuration, runRecipe } from '@bitsmith/recipe';
import { gptq } from '@bitsmith/solvers';

// As the `bitsmith` command runs: on glibc, once more in a child process with the allocator settings of
// src/malloc-tunables.ts (most fresh-page faults spared); BITSMITH_MALLOC_TUNABLES=0 measures without.
const tunables = await import(new URL('../dist/malloc-tunables.js', import.meta.url).href).catch(() => undefined);
if (tunables && !(await tunables.relaunchWithMallocTunables())) await tunables.watchParent();

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'qwen2.5-0.5b' },
    samples: { type: 'string', default: '128' },
    'seq-len': { type: 'string', default: '512' },
    blocks: { type: 'string' },
    dir: { type: 'string' },
    'batch-tokens': { type: 'string', default: '2048' },
    'keep-stored-dtype': { type: 'string', default: 'true' },
  },
});
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const dir = values.dir ?? join(tmpdir(), `bitsmith-${values.shape}-random`);
const samples = Number(values.samples);
const seqLen = Number(values['seq-len']);
const stopAfter = values.blocks === undefined ? undefined : Number(values.blocks);
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const peak = () => process.resourceUsage().maxRSS * 1024;

if (!existsSync(join(dir, 'config.json'))) {
  console.log(`writing the random ${values.shape} checkpoint into ${dir} ...`);
  const made = spawnSync(process.execPath, [join(root, 'scripts', 'make-random-checkpoint.mjs'), '--shape', values.shape, '--out', dir], { stdio: 'inherit' });
  if (made.status !== 0) process.exit(made.status ?? 1);
}

const backend = await defaultBackend();
// The machine's float32 GEMM throughput on this backend, best of 6 (2048^3, after a warm-up; the first runs pay for
// the heap's growth).
const n = 2048;
const a = new Float32Array(n * n).fill(0.5);
const b = new Float32Array(n * n).fill(0.25);
const c = new Float32Array(n * n);
await backend.sgemm({ m: n, n, k: n, a, b, c });
let gemmSeconds = Infinity;
for (let r = 0; r < 6; r++) {
  const t = performance.now();
  await backend.sgemm({ m: n, n, k: n, a, b, c });
  gemmSeconds = Math.min(gemmSeconds, (performance.now() - t) / 1000);
}
const gemmFlops = (2 * n ** 3) / gemmSeconds;

let t0 = performance.now();
const graph = await loadLlamaGraph(dir, { backend, keepStoredDtype: values['keep-stored-dtype'] !== "false" });
const loadSeconds = (performance.now() - t0) / 1000;
const cfg = graph.config;
const loadedRss = process.memoryUsage.rss();
console.log(`glibc malloc tunables: ${process.env.GLIBC_TUNABLES || "none"}`);
console.log(`${values.shape}: hidden ${cfg.hiddenSize}, ${cfg.numHiddenLayers} layers, intermediate ${cfg.intermediateSize}, heads ${cfg.numAttentionHeads}/${cfg.numKeyValueHeads}, vocab ${cfg.vocabSize}; loaded in ${loadSeconds.toFixed(1)} s, RSS ${mib(process.memoryUsage.rss())}`);

const random = createRandom(1234);
const sequences = Array.from({ length: samples }, () => Int32Array.from({ length: seqLen }, (_, i) => (i === 0 ? 1 : random.uint32() % cfg.vocabSize)));

// The issue's bound: one calibration forward per block (2 flops per weight and token; attention's QK^T and PV on
// causal halves) plus the Hessians (2 d^2 flops per token and distinct linear input: q/k/v share one, gate/up one,
// o_proj, down_proj), at the measured GEMM speed, times 1.3.
const h = cfg.hiddenSize;
const inter = cfg.intermediateSize;
const qDim = cfg.numAttentionHeads * cfg.headDim;
const kvDim = cfg.numKeyValueHeads * cfg.headDim;
const blockWeights = h * (qDim + 2 * kvDim) + qDim * h + 3 * h * inter;
const tokens = samples * seqLen;
const forwardFlops = cfg.numHiddenLayers * (2 * blockWeights * tokens + 2 * 2 * samples * (seqLen * seqLen) / 2 * qDim);
const hessianFlops = cfg.numHiddenLayers * 2 * tokens * (h * h + qDim * qDim + h * h + inter * inter);
const boundSeconds = (1.3 * (forwardFlops + hessianFlops)) / gemmFlops;

// Where the peak happens: the RSS sampled every 250 ms, with the last progress event (block, step, layer) beside it.
let phase = 'loading';
let sampledPeak = { rss: 0, phase };
const sampler = setInterval(() => {
  const rss = process.memoryUsage.rss();
  if (rss > sampledPeak.rss) sampledPeak = { rss, phase };
}, 250);
sampler.unref();

const controller = new AbortController();
let lastEta;
let blocksDone = 0;
t0 = performance.now();
try {
  await runRecipe(llamaQuantizableModel(graph, { batchTokens: Number(values['batch-tokens']) }), [gptq({ format: 'int4', granularity: { type: 'group', size: 128 } })], sequences, {
    backend,
    signal: controller.signal,
    onProgress: (e) => {
      if (e.type === 'block-start') phase = `block ${e.block + 1}: calibration forward`;
      else if (e.type === 'step') phase = `block ${e.block + 1}: ${e.step} ${e.done}/${e.total}${e.layer ? ` (${e.layer})` : ''}`;
      if (e.type !== 'block-done') return;
      phase = `block ${e.block + 1}: done`;
      blocksDone = e.block + 1;
      lastEta = e.etaSeconds;
      console.log(`block ${e.block + 1}/${e.totalBlocks} in ${e.seconds.toFixed(1)} s; elapsed ${formatDuration(e.elapsedSeconds)}, ETA ${formatDuration(e.etaSeconds)}; RSS ${mib(process.memoryUsage.rss())} (peak ${mib(peak())})`);
      if (stopAfter !== undefined && blocksDone >= stopAfter) controller.abort();
    },
  });
} catch (error) {
  if (!AbortError.isInstance(error)) throw error;
}
const wall = (performance.now() - t0) / 1000;
const complete = blocksDone === cfg.numHiddenLayers;
const total = complete ? wall : wall + (lastEta ?? 0);
console.log(
  JSON.stringify(
    {
      shape: values.shape,
      calibration: { sequences: samples, tokens: seqLen, batchTokens: Number(values['batch-tokens']) },
      keepStoredDtype: values['keep-stored-dtype'] !== 'false',
      backend: backend.name,
      blocksRun: blocksDone,
      wallSeconds: Number(wall.toFixed(1)),
      [complete ? 'totalSeconds' : 'projectedTotalSeconds (from the ETA after the blocks run)']: Number(total.toFixed(1)),
      rssAfterLoad: mib(loadedRss),
      peakRss: mib(peak()),
      sampledPeakRss: `${mib(sampledPeak.rss)} at ${sampledPeak.phase}`,
      gemmGflops: Number((gemmFlops / 1e9).toFixed(1)),
      boundSeconds: Number(boundSeconds.toFixed(1)),
      ratioToBound: Number((total / boundSeconds).toFixed(2)),
    },
    null,
    2,
  ),
);
await disposeDefaultBackend();
