// AutoRound against GPTQ, time per block on llama-docs-29m (falls back to tinystories-656k), measured in one run:
// the same calibration sequences, the same first `--blocks` decoder blocks (a view of the model cut after them), the
// recipe runner's own block loop (calibration forward, the step, the forward of the quantized block). Prints each
// block's seconds for both and the ratio AutoRound / GPTQ (the target: at most 10 with 200 iterations).
// Usage: npm run bench -w @bitsmith/learned [-- --blocks 2 --samples 64 --seq-len 256 --iterations 200 --batch 8 --bits 4 --group 128]
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultBackend, disposeDefaultBackend } from '@bitsmith/linalg';
import { calibrationSequences, llamaQuantizableModel, loadLlamaModel } from '@bitsmith/models';
import { runRecipe } from '@bitsmith/recipe';
import { gptq } from '@bitsmith/solvers';
import { autoRound } from '../dist/index.js';

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
const blocks = Number(args.blocks ?? 2);
const samples = Number(args.samples ?? 64);
const sequenceLength = Number(args['seq-len'] ?? 256);
const iterations = Number(args.iterations ?? 200);
const batchSize = Number(args.batch ?? 8);
const bits = Number(args.bits ?? 4);
const group = Number(args.group ?? 128);
const format = `int${bits}`;
const granularity = { type: 'group', size: group };

const backend = await defaultBackend();
const first = await loadLlamaModel(dir, { backend });
const { sequences } = calibrationSequences(first.tokenizer.encode(readFileSync(text, 'utf8'), { bos: false }), {
  samples,
  sequenceLength,
  bosTokenId: first.graph.config.bosTokenId,
  file: text,
});

/** The model cut after its first `count` blocks (the runner then quantizes only those). */
function firstBlocks(model, count) {
  const view = Object.create(model);
  Object.defineProperty(view, 'blocks', { value: model.blocks.slice(0, count) });
  return view;
}

async function timeBlocks(label, step, graph) {
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
  console.log(`${label}: ${seconds.map((s) => s.toFixed(2)).join(' s, ')} s per block (total ${total.toFixed(1)} s)`);
  return seconds.reduce((a, b) => a + b, 0) / seconds.length;
}

console.log(`${dir.split('/').pop()}: first ${blocks} of ${first.graph.blocks.length} blocks, ${samples} x ${sequenceLength} calibration tokens, ${format} g${group}, backend ${backend.name} (${backend.threads} threads)`);
const gptqSeconds = await timeBlocks('GPTQ', gptq({ format, granularity }), first.graph);
const second = await loadLlamaModel(dir, { backend });
const autoRoundSeconds = await timeBlocks(`AutoRound (${iterations} iterations, batches of ${batchSize})`, autoRound({ format, granularity, iterations, batchSize }), second.graph);
const ratio = autoRoundSeconds / gptqSeconds;
console.log(`AutoRound / GPTQ time per block: ${ratio.toFixed(1)}x (target <= 10); per iteration ${((autoRoundSeconds - gptqSeconds) / iterations * 1000).toFixed(0)} ms beyond GPTQ's block time`);
await disposeDefaultBackend();
