// Activation quantization on llama-docs-29m (the model with real activation outliers): every recipe in
// examples/recipes whose name matches the filter (default: the w8a8-, fp8- and w4a4- recipes), calibrated on
// ../shared/data/docs-calib.txt, evaluated on ../shared/data/docs-dev-heldout.txt at ctx 512 with perplexity, KL to
// the bf16->float32 model, and paired 95% bootstrap intervals (over evaluation windows) for the comparisons the
// activation docs make.
// Run after `npm run build`: node examples/activation-table.mjs [filter-regex | name,name,...]
// Environment: SAMPLES (calibration sequences, default 32), SEQ_LEN (default 512), EVAL_CHARS (characters of the
// held-out text, default 20000 = 5,331 tokens; 0 for all of it), SEED (calibration windows at random offsets with this
// seed; default: consecutive windows).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultRegistry } from '@bitsmith/steps';
import { defaultBackend } from '@bitsmith/linalg';
import { calibrationSequences, evaluateLanguageModel, llamaQuantizableModel, loadLlamaModel, perplexityRatioInterval } from '@bitsmith/models';
import { loadRecipe, runRecipe } from '@bitsmith/recipe';

const here = dirname(fileURLToPath(import.meta.url));
const shared = process.env.BITSMITH_SHARED ?? resolve(here, '../../shared');
const modelDir = join(shared, 'models/llama-docs-29m');
const selection = process.argv[2] ?? '^(w8a8|fp8|w4a4|kv)';
// A comma-separated list names recipes in the order to run them; anything else is a regular expression.
const listed = selection.includes(',') ? selection.split(',').map((n) => `${n.trim()}.yaml`) : undefined;
const filter = new RegExp(selection);
const samples = Number(process.env.SAMPLES ?? 32);
const sequenceLength = Number(process.env.SEQ_LEN ?? 512);
const evalChars = Number(process.env.EVAL_CHARS ?? 20000);
const ctx = 512;

// Comparisons reported with a paired interval: [candidate, baseline].
const PAIRS = [
  ['w8a8-smoothquant-static', 'w8a8-rtn-static'],
  ['w8a8-smoothquant-dynamic', 'w8a8-rtn-dynamic'],
  ['w8a8-rtn-dynamic', 'w8a8-rtn-static'],
  ['w4a4-gptq', 'w4a4-rtn'],
  ['w4a4-smoothquant-gptq', 'w4a4-gptq'],
  ['w4a4-rotation-gptq', 'w4a4-gptq'],
  ['w4a4-incoherence-gptq', 'w4a4-gptq'],
  ['w4a4kv4-rotation-gptq', 'w4a4kv4-gptq'],
  ['w4a4kv4-smoothquant-gptq', 'w4a4kv4-gptq'],
  ['w8a8-osplus-static', 'w8a8-rtn-static'],
  ['w8a8-osplus-static', 'w8a8-smoothquant-static'],
  ['w4a4-osplus-gptq', 'w4a4-gptq'],
  ['w4a4-osplus-gptq', 'w4a4-smoothquant-gptq'],
  ['kv4-hadamard', 'kv4'],
  ['kv4-prerope-channel-keys', 'kv4'],
];

const backend = await defaultBackend();
const reference = await loadLlamaModel(modelDir, { backend });
const heldout = readFileSync(join(shared, 'data/docs-dev-heldout.txt'), 'utf8');
const evalIds = reference.tokenizer.encode(evalChars > 0 ? heldout.slice(0, evalChars) : heldout);
const calibIds = reference.tokenizer.encode(readFileSync(join(shared, 'data/docs-calib.txt'), 'utf8'), { bos: false });
const { sequences, protocol } = calibrationSequences(calibIds, {
  samples,
  sequenceLength,
  bosTokenId: 1,
  file: 'docs-calib.txt',
  ...(process.env.SEED !== undefined ? { seed: Number(process.env.SEED) } : {}),
});
const started = performance.now();
const float = await evaluateLanguageModel(reference.graph, evalIds, { ctx, reference: reference.graph });
console.log(`calibration: ${protocol.description}`);
console.log(`evaluation: docs-dev-heldout.txt${evalChars > 0 ? ` (first ${evalChars} characters)` : ''}, ${float.tokens} tokens, ctx ${ctx}; float perplexity ${float.perplexity.toFixed(3)} (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
console.log('| recipe | weight bits | perplexity | / float (95%) | KL to float | time |');
console.log('|---|---|---|---|---|---|');
console.log(`| float (bf16 weights) | 16 | ${float.perplexity.toFixed(3)} | 1 | 0 | |`);
const results = new Map([['float', float]]);
const files = listed ?? readdirSync(join(here, 'recipes')).filter((f) => f.endsWith('.yaml') && filter.test(f)).sort();
for (const file of files) {
  const recipe = await loadRecipe(join(here, 'recipes', file), defaultRegistry);
  const { graph } = await loadLlamaModel(modelDir, { backend });
  const t0 = performance.now();
  const report = await runRecipe(llamaQuantizableModel(graph), recipe, sequences, { backend });
  const result = await evaluateLanguageModel(graph, evalIds, { ctx, reference: reference.graph });
  const seconds = (performance.now() - t0) / 1000;
  const vsFloat = perplexityRatioInterval(float, result);
  results.set(recipe.name, result);
  console.log(
    `| ${recipe.name} | ${report.averageBitsPerWeight.toFixed(2)} | ${result.perplexity.toFixed(3)} | ${vsFloat.ratio.toFixed(4)} [${vsFloat.low.toFixed(4)}, ${vsFloat.high.toFixed(4)}] | ${result.kl.toFixed(4)} | ${seconds.toFixed(0)} s |`,
  );
}
const pairs = PAIRS.filter(([a, b]) => results.has(a) && results.has(b));
if (pairs.length > 0) {
  console.log('\n| comparison | perplexity ratio (95%, paired over windows) |');
  console.log('|---|---|');
  for (const [a, b] of pairs) {
    const r = perplexityRatioInterval(results.get(b), results.get(a));
    console.log(`| ${a} / ${b} | ${r.ratio.toFixed(4)} [${r.low.toFixed(4)}, ${r.high.toFixed(4)}] |`);
  }
}
