// Calibration-seed noise of the activation rows on llama-docs-29m: every named recipe is calibrated once per seed
// (SAMPLES windows of SEQ_LEN tokens at seeded random offsets of ../shared/data/docs-calib.txt), evaluated on
// docs-dev-heldout.txt at ctx 512, and reported as mean ± sample standard deviation over the seeds (with min..max),
// together with each comparison's paired 95% bootstrap interval per seed (the evaluation-window noise).
// Recipes whose result cannot depend on the calibration text (round-to-nearest weights, dynamic activation and cache
// scales, no smoothing/GPTQ/static scales) need no seeds: their spread is zero by construction.
// Run after `npm run build`: node examples/activation-seeds.mjs name,name,... [candidate/baseline,...]
// Environment: SEEDS (default 0,1,2), SAMPLES (default 16), SEQ_LEN (512), EVAL_CHARS (20000), KL=1 to also measure
// KL to the float model (doubles the evaluation time), RESULTS=file.json to also write every run's per-window
// negative log-likelihoods (so that runs of different invocations can be paired later), TRAINING_ARITHMETIC (native,
// the default, or reference: the learned steps' training passes).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultRegistry } from '@bitsmith/steps';
import { defaultBackend, mulberry32 } from '@bitsmith/linalg';
import { calibrationSequences, evaluateLanguageModel, llamaQuantizableModel, loadLlamaModel, perplexityRatioInterval } from '@bitsmith/models';
import { loadRecipe, runRecipe } from '@bitsmith/recipe';

const here = dirname(fileURLToPath(import.meta.url));
const shared = process.env.BITSMITH_SHARED ?? resolve(here, '../../shared');
const modelDir = join(shared, 'models/llama-docs-29m');
const names = (process.argv[2] ?? 'w8a8-rtn-static,w8a8-smoothquant-static').split(',').map((n) => n.trim());
const pairs = (process.argv[3] ?? '').split(',').filter(Boolean).map((p) => p.split('/').map((n) => n.trim()));
const seeds = (process.env.SEEDS ?? '0,1,2').split(',').map(Number);
const samples = Number(process.env.SAMPLES ?? 16);
const sequenceLength = Number(process.env.SEQ_LEN ?? 512);
const evalChars = Number(process.env.EVAL_CHARS ?? 20000);
const withKl = process.env.KL === '1';
const ctx = 512;

const backend = await defaultBackend();
const reference = await loadLlamaModel(modelDir, { backend });
const heldout = readFileSync(join(shared, 'data/docs-dev-heldout.txt'), 'utf8');
const evalIds = reference.tokenizer.encode(evalChars > 0 ? heldout.slice(0, evalChars) : heldout);
const calibIds = reference.tokenizer.encode(readFileSync(join(shared, 'data/docs-calib.txt'), 'utf8'), { bos: false });
const float = await evaluateLanguageModel(reference.graph, evalIds, { ctx });
console.log(`evaluation: docs-dev-heldout.txt (first ${evalChars} characters), ${float.tokens} tokens, ctx ${ctx}; float perplexity ${float.perplexity.toFixed(3)}`);
console.log(`calibration: ${samples} windows of ${sequenceLength} tokens at random offsets of docs-calib.txt, seeds ${seeds.join(', ')}\n`);

const stats = (xs) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, sd, min: Math.min(...xs), max: Math.max(...xs) };
};
const fmt = (s, d = 4) => `${s.mean.toFixed(d)} ± ${s.sd.toFixed(d)} (${s.min.toFixed(d)}..${s.max.toFixed(d)})`;

/** results.get(name)[seedIndex] = evaluation result */
const results = new Map();
for (const name of names) {
  const recipe = await loadRecipe(join(here, 'recipes', `${name}.yaml`), defaultRegistry);
  const perSeed = [];
  for (const seed of seeds) {
    const { sequences } = calibrationSequences(calibIds, { samples, sequenceLength, bosTokenId: 1, file: 'docs-calib.txt', seed });
    const { graph } = await loadLlamaModel(modelDir, { backend });
    const t0 = performance.now();
    await runRecipe(llamaQuantizableModel(graph, { trainingArithmetic: process.env.TRAINING_ARITHMETIC ?? 'native' }), recipe, sequences, { backend });
    const result = await evaluateLanguageModel(graph, evalIds, { ctx, ...(withKl ? { reference: reference.graph } : {}) });
    const vsFloat = perplexityRatioInterval(float, result);
    console.log(`  ${name} seed ${seed}: perplexity ${result.perplexity.toFixed(3)}, / float ${vsFloat.ratio.toFixed(4)} [${vsFloat.low.toFixed(4)}, ${vsFloat.high.toFixed(4)}]${withKl ? `, KL ${result.kl.toFixed(4)}` : ''} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    perSeed.push(result);
    results.set(name, perSeed);
    // After every run, so that an interrupted invocation keeps what it measured.
    if (process.env.RESULTS) {
      const dump = Object.fromEntries([...results].map(([n, rs]) => [n, rs.map((r, i) => ({ seed: seeds[i], perplexity: r.perplexity, perWindow: { nll: Array.from(r.perWindow.nll), tokens: Array.from(r.perWindow.tokens) } }))]));
      writeFileSync(process.env.RESULTS, JSON.stringify({ float: { perplexity: float.perplexity, perWindow: { nll: Array.from(float.perWindow.nll), tokens: Array.from(float.perWindow.tokens) } }, results: dump }));
    }
  }
}

console.log('\n| recipe | perplexity, mean ± sd over seeds (min..max) | / float |');
console.log('|---|---|---|');
for (const [name, perSeed] of results) {
  console.log(`| ${name} | ${fmt(stats(perSeed.map((r) => r.perplexity)), 3)} | ${fmt(stats(perSeed.map((r) => r.perplexity / float.perplexity)))} |`);
}
if (pairs.length > 0) {
  console.log('\n| comparison | ratio, mean ± sd over seeds (min..max) | paired 95% interval per seed |');
  console.log('|---|---|---|');
  for (const [a, b] of pairs) {
    if (!results.has(a) || !results.has(b)) continue;
    const per = seeds.map((_, i) => perplexityRatioInterval(results.get(b)[i], results.get(a)[i]));
    console.log(`| ${a} / ${b} | ${fmt(stats(per.map((r) => r.ratio)))} | ${per.map((r) => `[${r.low.toFixed(4)}, ${r.high.toFixed(4)}]`).join(' ')} |`);
  }
  if (seeds.length > 1) {
    console.log('\n| comparison | ratio pooled over seeds | 95% interval, resampling seeds and windows (paired) |');
    console.log('|---|---|---|');
    for (const [a, b] of pairs) {
      if (!results.has(a) || !results.has(b)) continue;
      const pooled = pooledRatio(results.get(a), results.get(b));
      console.log(`| ${a} / ${b} | ${pooled.ratio.toFixed(4)} | [${pooled.low.toFixed(4)}, ${pooled.high.toFixed(4)}] |`);
    }
  }
}

/**
 * Perplexity ratio a / b pooled over the calibration seeds: exp of the mean over seeds of the per-token log-likelihood
 * difference, with a 95% bootstrap interval that resamples the seeds and the evaluation windows, both paired (a seed
 * draw takes a's and b's run of that seed; a window draw takes the same window for both).
 */
function pooledRatio(runsA, runsB, resamples = 4000) {
  const tokens = runsA[0].perWindow.tokens;
  const windows = tokens.length;
  const diff = runsA.map((run, s) => Float64Array.from(run.perWindow.nll, (nll, w) => nll - runsB[s].perWindow.nll[w]));
  const random = mulberry32(7);
  const logRatio = (seedIdx, windowIdx) => {
    let total = 0;
    for (const w of windowIdx) total += tokens[w];
    let acc = 0;
    for (const s of seedIdx) for (const w of windowIdx) acc += diff[s][w];
    return acc / (total * seedIdx.length);
  };
  const allSeeds = diff.map((_, s) => s);
  const allWindows = Array.from({ length: windows }, (_, w) => w);
  const draws = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    const seedIdx = allSeeds.map(() => Math.floor(random() * diff.length));
    const windowIdx = allWindows.map(() => Math.floor(random() * windows));
    draws[r] = logRatio(seedIdx, windowIdx);
  }
  draws.sort();
  return {
    ratio: Math.exp(logRatio(allSeeds, allWindows)),
    low: Math.exp(draws[Math.round(0.025 * (resamples - 1))]),
    high: Math.exp(draws[Math.round(0.975 * (resamples - 1))]),
  };
}
