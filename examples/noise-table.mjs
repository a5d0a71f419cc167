// How much of a difference in the README's table is noise? Runs recipes of examples/recipes on tinystories-656k with
// several calibration sets (86 windows of 128 tokens at random offsets of calib.txt, one set per seed; a recipe's
// rotation seed follows the same seed) and reports, per recipe, the mean and standard deviation over seeds of
// perplexity and KL on dev-heldout.txt. Then, per setting, each recipe against the best mean:
// - seeds: the difference of means and its standard error sqrt(s1^2/n + s2^2/n) (calibration and seed noise);
// - text: the paired bootstrap 95% interval of the perplexity ratio over evaluation windows, with the default
//   calibration (the first 86 consecutive windows, as in the README's table), from @bitsmith/models'
//   perplexityRatioInterval (evaluation-text noise);
// - both: a 95% bootstrap interval that resamples the evaluation windows (paired: the same windows for both recipes)
//   and, independently for each recipe, its calibration seeds: the perplexity ratio to the best perplexity and the KL
//   difference to the lowest KL. An interval containing 1 (or 0) means calibration and text noise together cannot
//   tell the two apart.
// Run after `npm run build`:
//   node examples/noise-table.mjs [recipe-regex] [seeds=5] [setting-regex]
// recipe-regex selects recipe files (default: GPTQ, AWQ+GPTQ, rotation+GPTQ and incoherence+GPTQ at w4-channel and
// w3g32); recipes whose names give the same first capture of setting-regex (default '-(w\d(?:g\d+|-channel))$') are
// compared.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultRegistry } from '@bitsmith/steps';
import { defaultBackend, mulberry32 } from '@bitsmith/linalg';
import { calibrationSequences, evaluateLanguageModel, llamaQuantizableModel, loadLlamaModel, perplexityRatioInterval } from '@bitsmith/models';
import { parseRecipe, runRecipe } from '@bitsmith/recipe';

const here = dirname(fileURLToPath(import.meta.url));
const shared = process.env.BITSMITH_SHARED ?? resolve(here, '../../shared');
const modelDir = join(shared, 'models/tinystories-656k');
const filter = new RegExp(process.argv[2] ?? '^(gptq|awq-gptq|rotation-gptq|incoherence-gptq)-(w4-channel|w3g32)\\.yaml$');
const seeds = Number(process.argv[3] ?? 5);
const settingOf = new RegExp(process.argv[4] ?? '-(w\\d(?:g\\d+|-channel))$');
if (!Number.isInteger(seeds) || seeds < 2) throw new Error(`seeds: expected an integer >= 2, got ${process.argv[3]}`);
const backend = await defaultBackend();
const reference = await loadLlamaModel(modelDir, { backend });
const evalIds = reference.tokenizer.encode(readFileSync(join(shared, 'data/dev-heldout.txt'), 'utf8'));
const calibIds = reference.tokenizer.encode(readFileSync(join(shared, 'data/calib.txt'), 'utf8'), { bos: false });
const base = { samples: 86, sequenceLength: 128, bosTokenId: 1, file: 'calib.txt' };

async function run(file, text, sequences) {
  const recipe = parseRecipe(text, defaultRegistry, file);
  const { graph } = await loadLlamaModel(modelDir, { backend });
  await runRecipe(llamaQuantizableModel(graph), recipe, sequences, { backend });
  return evaluateLanguageModel(graph, evalIds, { ctx: 128, reference: reference.graph });
}

const stats = (xs) => {
  const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1));
  return { mean, sd };
};

const files = readdirSync(join(here, 'recipes')).filter((f) => f.endsWith('.yaml') && filter.test(f)).sort();
const rows = [];
for (const file of files) {
  const text = readFileSync(join(here, 'recipes', file), 'utf8');
  const name = file.replace(/\.yaml$/, '');
  const fixed = await run(file, text, calibrationSequences(calibIds, base).sequences);
  const perplexity = [];
  const kl = [];
  const runs = [];
  for (let seed = 1; seed <= seeds; seed++) {
    const seeded = text.replace(/rotation:\s*\{\s*seed:\s*\d+/, `rotation: { seed: ${seed}`);
    const r = await run(file, seeded, calibrationSequences(calibIds, { ...base, seed }).sequences);
    perplexity.push(r.perplexity);
    kl.push(r.kl);
    runs.push(r);
  }
  const row = { name, setting: settingOf.exec(name)?.[1] ?? name, fixed, perplexity: stats(perplexity), kl: stats(kl), runs };
  rows.push(row);
  console.error(`${name}: default calibration ${fixed.perplexity.toFixed(2)}; seeds ${perplexity.map((p) => p.toFixed(2)).join(' ')}`);
}

/**
 * 95% interval of mean_seeds(metric of b) - mean_seeds(metric of a), per token, resampling the evaluation windows
 * (the same draw for a and b) and each recipe's seeds independently. `metric`: 'nll' or 'kl'.
 */
function bothNoise(a, b, metric, resamples = 2000) {
  const tokens = a[0].perWindow.tokens;
  const windows = tokens.length;
  const random = mulberry32(7);
  const perToken = (runs, idx, total) => {
    let acc = 0;
    for (let k = 0; k < runs.length; k++) {
      const values = runs[Math.floor(random() * runs.length)].perWindow[metric];
      let x = 0;
      for (const w of idx) x += values[w];
      acc += x / total;
    }
    return acc / runs.length;
  };
  const draws = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    const idx = Array.from({ length: windows }, () => Math.floor(random() * windows));
    let total = 0;
    for (const w of idx) total += tokens[w];
    draws[r] = perToken(b, idx, total) - perToken(a, idx, total);
  }
  draws.sort();
  const all = Array.from({ length: windows }, (_, w) => w);
  const total = tokens.reduce((x, t) => x + t, 0);
  const mean = (runs) => runs.reduce((x, run) => x + all.reduce((y, w) => y + run.perWindow[metric][w], 0) / total, 0) / runs.length;
  return { point: mean(b) - mean(a), low: draws[Math.round(0.025 * (resamples - 1))], high: draws[Math.round(0.975 * (resamples - 1))] };
}

console.log(`calibration: 86 windows of 128 tokens of calib.txt at random offsets, seeds 1-${seeds} (rotation seed = calibration seed); evaluation: dev-heldout.txt, ctx 128\n`);
console.log('| recipe | perplexity mean ± sd | KL mean ± sd | default calibration | vs best mean (seeds): difference ± SE | vs best, text noise (95%, default calibration) | perplexity ratio to the best, both noises (95%) | KL minus the lowest, both noises (95%) |');
console.log('|---|---|---|---|---|---|---|---|');
for (const setting of [...new Set(rows.map((r) => r.setting))]) {
  const group = rows.filter((r) => r.setting === setting);
  const best = group.reduce((a, r) => (r.perplexity.mean < a.perplexity.mean ? r : a));
  const bestKl = group.reduce((a, r) => (r.kl.mean < a.kl.mean ? r : a));
  for (const r of group) {
    const diff = r.perplexity.mean - best.perplexity.mean;
    const se = Math.sqrt((r.perplexity.sd ** 2 + best.perplexity.sd ** 2) / seeds);
    const ci = perplexityRatioInterval(best.fixed, r.fixed);
    const sign = diff >= 0 ? '+' : '';
    const vs = r === best ? 'best' : se > 0 ? `${sign}${diff.toFixed(2)} ± ${se.toFixed(2)} (${(diff / se).toFixed(1)} SE)` : `${sign}${diff.toFixed(2)} (no seed noise: both data-free)`;
    const text = r === best ? '-' : `ratio ${ci.ratio.toFixed(4)} [${ci.low.toFixed(4)}, ${ci.high.toFixed(4)}]`;
    const p = bothNoise(best.runs, r.runs, 'nll');
    const k = bothNoise(bestKl.runs, r.runs, 'kl');
    const ppl = r === best ? 'best' : `${Math.exp(p.point).toFixed(4)} [${Math.exp(p.low).toFixed(4)}, ${Math.exp(p.high).toFixed(4)}]${p.low > 0 ? ' worse' : ' within noise'}`;
    const klText = r === bestKl ? 'lowest' : `+${k.point.toFixed(4)} [${k.low.toFixed(4)}, ${k.high.toFixed(4)}]${k.low > 0 ? ' worse' : ' within noise'}`;
    console.log(`| ${r.name} | ${r.perplexity.mean.toFixed(2)} ± ${r.perplexity.sd.toFixed(2)} | ${r.kl.mean.toFixed(4)} ± ${r.kl.sd.toFixed(4)} | ${r.fixed.perplexity.toFixed(2)} | ${vs} | ${text} | ${ppl} | ${klText} |`);
  }
}
