// Reproduces the README's table: every recipe in examples/recipes on tinystories-656k, calibrated on
// ../shared/data/calib.txt (128 sequences of 128 tokens), evaluated on ../shared/data/dev-heldout.txt (ctx 128)
// with perplexity and KL divergence to the float32 model.
// Run after `npm run build`: node examples/perplexity-table.mjs [filter-regex]
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultRegistry } from '@bitsmith/steps';
import { defaultBackend } from '@bitsmith/linalg';
import { calibrationSequences, evaluateLanguageModel, llamaQuantizableModel, loadLlamaModel } from '@bitsmith/models';
import { loadRecipe, runRecipe } from '@bitsmith/recipe';

const here = dirname(fileURLToPath(import.meta.url));
const shared = process.env.BITSMITH_SHARED ?? resolve(here, '../../shared');
const modelDir = join(shared, 'models/tinystories-656k');
const filter = new RegExp(process.argv[2] ?? '.');
const backend = await defaultBackend();
const reference = await loadLlamaModel(modelDir, { backend });
const evalIds = reference.tokenizer.encode(readFileSync(join(shared, 'data/dev-heldout.txt'), 'utf8'));
const calibIds = reference.tokenizer.encode(readFileSync(join(shared, 'data/calib.txt'), 'utf8'), { bos: false });
const { sequences, protocol } = calibrationSequences(calibIds, { samples: 128, sequenceLength: 128, bosTokenId: 1, file: 'calib.txt' });
const float = await evaluateLanguageModel(reference.graph, evalIds, { ctx: 128, reference: reference.graph });
console.log(`calibration: ${protocol.description}`);
console.log(`evaluation: dev-heldout.txt, ${float.tokens} tokens, ctx 128; float32 perplexity ${float.perplexity.toFixed(3)}\n`);
console.log('| recipe | bits/weight | perplexity | KL to float32 | time |');
console.log('|---|---|---|---|---|');
console.log(`| float32 | 32 | ${float.perplexity.toFixed(3)} | 0 | |`);
const files = readdirSync(join(here, 'recipes')).filter((f) => f.endsWith('.yaml') && filter.test(f)).sort();
for (const file of files) {
  const recipe = await loadRecipe(join(here, 'recipes', file), defaultRegistry);
  const { graph } = await loadLlamaModel(modelDir, { backend });
  const started = performance.now();
  const report = await runRecipe(llamaQuantizableModel(graph), recipe, sequences, { backend });
  const seconds = (performance.now() - started) / 1000;
  const result = await evaluateLanguageModel(graph, evalIds, { ctx: 128, reference: reference.graph });
  console.log(`| ${recipe.name} | ${report.averageBitsPerWeight.toFixed(3)} | ${result.perplexity.toFixed(3)} | ${result.kl.toFixed(4)} | ${seconds.toFixed(1)} s |`);
}
