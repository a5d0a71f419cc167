// AutoRound against GPTQ, time per block on llama-docs-29m (falls back to tinystories-656k), measured in one run:
// the same calibration sequences, the same first `--blocks` decoder blocks (a view of the model cut after them), the
// recipe runner's own block loop (calibration forward, the step, the forward of the quantized block). For each
// calibration size in `--samples` (default 64 and 128, the README's protocol of 128 x 256 tokens) prints each block's
// seconds for both and the ratio AutoRound / GPTQ (the target: at most 10 with 200 iterations). First, one
// training pass of the block (forward, then forward + backward, on a batch of `--batch` sequences, as AutoRound's
// iterations run it): time, GFLOP/s and the backward's GFLOP/s over the forward's (the target: at least 0.5).
// Then, for the last calibration size, the same two jobs on block 0 in plain PyTorch (bench/autoround-reference.py:
// GPTQ, and AutoRound with autograd, same weights, input, iterations and batches, as many threads as the backend):
// bitsmith's seconds over PyTorch's, and PyTorch's own AutoRound / GPTQ ratio on this machine. Skipped with a message
// where no python3 with torch and numpy is found (Debian: apt-get install python3-torch; BITSMITH_PYTHON picks one);
// `--reference 0` skips it.
// GPTQ is timed warm (one untimed run first), `--repeat` runs before AutoRound and as many after it (default 2 each),
// and its block time is the median of all of them: a machine whose speed drifts while AutoRound runs (shared hosts do,
// by 10% within minutes) then moves both sides of the ratio alike.
// Usage: npm run bench -w @bitsmith/learned [-- --blocks 1 --samples 64,128 --seq-len 256 --iterations 200 --batch 8 --bits 4 --group 128 --repeat 2 --reference 1]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultBackend, disposeDefaultBackend } from '@bitsmith/linalg';
import { BlockWorkspace, calibrationSequences, llamaBlockBackward, llamaBlockForward, llamaQuantizableModel, loadLlamaModel } from '@bitsmith/models';
import { runRecipe } from '@bitsmith/recipe';
import { gptq } from '@bitsmith/solvers';
import { autoRound } from '../dist/index.js';
import { findPython } from '../../../scripts/find-python.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const shared = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(dirname(fileURLToPath(import.meta.url)), '../../../../shared');
const docs = join(shared, 'models', 'llama-docs-29m');
if (!existsSync(join(shared, 'models'))) {
  console.log(`skipped: ${join(shared, 'models')} not found (set BITSMITH_SHARED to the shared data folder)`);
  process.exit(0);
}
const dir = existsSync(docs) ? docs : join(shared, 'models', 'tinystories-656k');
const text = join(shared, 'data', existsSync(docs) ? 'docs-calib.txt' : 'calib.txt');
const blocks = Number(args.blocks ?? 1);
const sampleSizes = String(args.samples ?? '64,128').split(',').map(Number);
const sequenceLength = Number(args['seq-len'] ?? 256);
const iterations = Number(args.iterations ?? 200);
const repeat = Math.max(1, Number(args.repeat ?? 2));
const batchSize = Number(args.batch ?? 8);
const bits = Number(args.bits ?? 4);
const group = Number(args.group ?? 128);
const format = `int${bits}`;
const granularity = { type: 'group', size: group };

const backend = await defaultBackend();
const first = await loadLlamaModel(dir, { backend });
const tokens = first.tokenizer.encode(readFileSync(text, 'utf8'), { bos: false });
const sequencesOf = (samples) => calibrationSequences(tokens, { samples, sequenceLength, bosTokenId: first.graph.config.bosTokenId, file: text }).sequences;

/** The model cut after its first `count` blocks (the runner then quantizes only those). */
function firstBlocks(model, count) {
  const view = Object.create(model);
  Object.defineProperty(view, 'blocks', { value: model.blocks.slice(0, count) });
  return view;
}

async function timeBlocks(label, step, graph, sequences) {
  const model = firstBlocks(llamaQuantizableModel(graph), blocks);
  const seconds = [];
  const t0 = performance.now();
  await runRecipe(model, [step], sequences, {
    backend,
    onProgress(event) {
      if (event.type === 'block-done') seconds.push(event.seconds);
    },
  });
  const total = (performance.now() - t0) / 1000;
  console.log(`  ${label}: ${seconds.map((s) => s.toFixed(2)).join(' s, ')} s per block (total ${total.toFixed(1)} s)`);
  return seconds.reduce((a, b) => a + b, 0) / seconds.length;
}

/** One training pass of block 0 on a batch: forward alone, and forward + backward with only weight gradients (as AutoRound asks). */
async function trainingPass() {
  const { graph } = first;
  const c = graph.config;
  const block = graph.blocks[0];
  const hidden = graph.embed(sequencesOf(batchSize));
  const count = hidden.states.shape[0];
  const linearParams = block.linears.reduce((a, l) => a + l.inFeatures * l.outFeatures, 0);
  const pairs = hidden.lengths.reduce((a, n) => a + (n * (n + 1)) / 2, 0);
  const attentionForward = 4 * pairs * c.headDim * c.numAttentionHeads; // q.k and p.v
  const forwardFlops = 2 * count * linearParams + attentionForward;
  // Backward with weight gradients only: dW of every linear, dX of all but q/k/v, attention's five products.
  const qkv = block.selfAttention.qProj.outFeatures + block.selfAttention.kProj.outFeatures + block.selfAttention.vProj.outFeatures;
  const backwardFlops = 4 * count * linearParams - 2 * count * c.hiddenSize * qkv + (10 / 4) * attentionForward;
  const workspace = new BlockWorkspace();
  const seed = new Float32Array(count * c.hiddenSize).fill(1e-3);
  // AutoRound's passes: weight gradients only, transient results, and the capability's default native arithmetic.
  const options = { workspace, weightGradientsOnly: true, transientResults: true, arithmetic: 'native' };
  const best = async (fn, runs = 5) => {
    await fn();
    let min = Infinity;
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      await fn();
      min = Math.min(min, performance.now() - t0);
    }
    return min / 1000;
  };
  // As AutoRound's passes run: the workspace prepared before each (its arrays in the kernels' memory after the first).
  const forward = await best(async () => {
    await workspace.prepare();
    await llamaBlockForward(c, block, hidden, backend, options);
  });
  const both = await best(async () => {
    await workspace.prepare();
    await llamaBlockBackward(c, block, hidden, backend, () => seed, options);
  });
  const backward = both - forward;
  const gf = (flops, s) => (flops / s / 1e9).toFixed(1);
  console.log(`training pass, block 0, ${batchSize} x ${sequenceLength} tokens: forward ${(forward * 1000).toFixed(0)} ms (${gf(forwardFlops, forward)} GFLOP/s), backward ${(backward * 1000).toFixed(0)} ms (${gf(backwardFlops, backward)} GFLOP/s): backward / forward GFLOP/s ${((backwardFlops / backward) / (forwardFlops / forward)).toFixed(2)} (target >= 0.5)`);
}

/**
 * Block 0's GPTQ and AutoRound in plain PyTorch on the same weights and input (`autoround-reference.py`), after a
 * check that its float block computes what bitsmith's does. Returns its seconds, or undefined (skipped, with a reason).
 */
async function pytorchReference(sequences) {
  const python = findPython();
  if (!python) {
    console.log('PyTorch reference skipped: no python3 with torch and numpy (Debian: apt-get install python3-torch; or set BITSMITH_PYTHON)');
    return undefined;
  }
  const { graph } = first;
  const c = graph.config;
  const block = graph.blocks[0];
  const hidden = graph.embed(sequences);
  if (hidden.lengths.some((n) => n !== sequenceLength)) {
    console.log(`PyTorch reference skipped: the calibration sequences are not all ${sequenceLength} tokens long`);
    return undefined;
  }
  const work = mkdtempSync(join(tmpdir(), 'bitsmith-autoround-ref-'));
  try {
    const write = (name, data) => writeFileSync(join(work, `${name}.f32`), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    const { qProj, kProj, vProj, oProj } = block.selfAttention;
    const mlp = block.mlp;
    write('x', hidden.states.data);
    for (const [name, layer] of [['q', qProj], ['k', kProj], ['v', vProj], ['o', oProj], ['gate', mlp.gateProj], ['up', mlp.upProj], ['down', mlp.downProj]]) write(name, layer.weight.data);
    write('norm1', block.inputLayernorm.weight);
    write('norm2', block.postAttentionLayernorm.weight);
    // bitsmith's float output of the first sequence, for the reference's check that it computes the same block.
    const one = { states: { ...hidden.states, shape: [sequenceLength, c.hiddenSize], data: hidden.states.data.subarray(0, sequenceLength * c.hiddenSize) }, lengths: [sequenceLength] };
    write('y0', await llamaBlockForward(c, block, one, backend));
    const config = JSON.stringify({ hidden: c.hiddenSize, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim, intermediate: c.intermediateSize, eps: block.inputLayernorm.eps, theta: c.ropeTheta });
    const run = spawnSync(python, [join(dirname(fileURLToPath(import.meta.url)), 'autoround-reference.py'), work, config, String(sequences.length), String(sequenceLength), String(batchSize), String(iterations), String(bits), String(group), String(backend.threads)], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (run.status !== 0) {
      console.log(`PyTorch reference failed (exit ${run.status}): ${(run.stderr || run.stdout).trim().split('\n').slice(-3).join(' | ')}`);
      return undefined;
    }
    return JSON.parse(run.stdout.trim().split('\n').pop());
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

console.log(`${dir.split('/').pop()}: first ${blocks} of ${first.graph.blocks.length} blocks, ${format} g${group}, ${iterations} iterations, batches of ${batchSize}, backend ${backend.name} (${backend.threads} threads)`);
await trainingPass();
for (const samples of sampleSizes) {
  const sequences = sequencesOf(samples);
  console.log(`${samples} x ${sequenceLength} calibration tokens:`);
  // GPTQ's block is short, so one-time costs (onnxruntime sessions for the calibration and propagation products, memory
  // touched for the first time) would be a large part of a first run: one untimed run first, then the median of
  // `--repeat` timed runs, AutoRound (warm too), then `--repeat` more GPTQ runs.
  await timeBlocks('GPTQ (warm-up, not counted)', gptq({ format, granularity }), (await loadLlamaModel(dir, { backend })).graph, sequences);
  const gptqRuns = [];
  const gptqRun = async (r) => gptqRuns.push(await timeBlocks(`GPTQ (run ${r + 1} of ${2 * repeat})`, gptq({ format, granularity }), (await loadLlamaModel(dir, { backend })).graph, sequences));
  for (let r = 0; r < repeat; r++) await gptqRun(r);
  const autoRoundSeconds = await timeBlocks(`AutoRound (${iterations} iterations, batches of ${batchSize})`, autoRound({ format, granularity, iterations, batchSize }), (await loadLlamaModel(dir, { backend })).graph, sequences);
  for (let r = repeat; r < 2 * repeat; r++) await gptqRun(r);
  const sorted = [...gptqRuns].sort((a, b) => a - b);
  const gptqSeconds = (sorted[Math.floor((sorted.length - 1) / 2)] + sorted[Math.ceil((sorted.length - 1) / 2)]) / 2;
  const runsOf = (list) => list.map((x) => x.toFixed(2)).join(', ');
  console.log(`  GPTQ median of ${sorted.length}: ${gptqSeconds.toFixed(2)} s per block (runs before AutoRound ${runsOf(gptqRuns.slice(0, repeat))} s, after ${runsOf(gptqRuns.slice(repeat))} s)`);
  const ratio = autoRoundSeconds / gptqSeconds;
  console.log(`  AutoRound / GPTQ time per block at ${samples} x ${sequenceLength}: ${ratio.toFixed(1)}x (target <= 10); ${autoRoundSeconds.toFixed(1)} s against ${gptqSeconds.toFixed(1)} s, ${((autoRoundSeconds - gptqSeconds) / iterations * 1000).toFixed(0)} ms per iteration beyond GPTQ's block time`);
  if (samples === sampleSizes[sampleSizes.length - 1] && args.reference !== '0') {
    const ref = await pytorchReference(sequences);
    if (ref) {
      console.log(`  PyTorch ${ref.torch} (${ref.threads} threads), block 0, same weights, input, iterations and batches (float block checked: max |difference| ${ref.check.maxAbs.toExponential(1)}, ${ref.check.relative.toExponential(1)} of max |y|):`);
      console.log(`    GPTQ ${ref.gptq.toFixed(1)} s, AutoRound ${ref.autoround.toFixed(1)} s: PyTorch's AutoRound / GPTQ ${(ref.autoround / ref.gptq).toFixed(1)}x`);
      console.log(`    bitsmith / PyTorch time: GPTQ ${(gptqSeconds / ref.gptq).toFixed(2)}x, AutoRound ${(autoRoundSeconds / ref.autoround).toFixed(2)}x (below 1: bitsmith faster)`);
    }
  }
}
await disposeDefaultBackend();
