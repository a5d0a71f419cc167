// How much of a difference in the README's table is noise? Runs recipes of examples/recipes on tinystories-656k with
// several calibration sets (86 windows of 128 tokens at random offsets of calib.txt, one set per seed; a recipe's
// rotation seed follows the same seed) and reports, per recipe, the mean and standard deviation over seeds of
// perplexity and KL on dev-heldout.txt. Then, per setting, each recipe against the best mean:
// - seeds: the difference of means and its standard error sqrt(s1^2/n + s2^2/n) (calibration and seed noise);
// - text: the paired bootstrap 95% interval of the perplexity ratio over evaluation windows, with the default
//   calibration (the first 86 consecutive windows, as in the README's table), from @bitsmith/models'
//   perplexityRatioInterval (evaluation-text noise).
// Run after `npm run build`:
//   node examples/noise-table.mjs [recipe-regex] [seeds=5] [setting-regex]
// recipe-regex selects recipe files (default: GPTQ, AWQ+GPTQ, rotation+GPTQ and incoherence+GPTQ at w4-channel and
// w3g32); recipes whose names give the same first capture of setting-regex (default '-(w\d(?:g\d+|-channel))$') are
// compared.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { calibrationSequences, defaultRegistry } from '@bitsmith/cli';
import { defaultBackend } from '@bitsmith/linalg';
import { evaluateLanguageModel, llamaQuantizableModel, loadLlamaModel, perplexityRatioInterval } from '@bitsmith/models';
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
  for (let seed = 1; seed <= seeds; seed++) {
    const seeded = text.replace(/rotation:\s*\{\s*seed:\s*\d+/, `rotation: { seed: ${seed}`);
    const r = await run(file, seeded, calibrationSequences(calibIds, { ...base, seed }).sequences);
    perplexity.push(r.perplexity);
    kl.push(r.kl);
  }
  const row = { name, setting: settingOf.exec(name)?.[1] ?? name, fixed, perplexity: stats(perplexity), kl: stats(kl), all: perplexity };
  rows.push(row);
  console.error(`${name}: default calibration ${fixed.perplexity.toFixed(2)}; seeds ${perplexity.map((p) => p.toFixed(2)).join(' ')}`);
}

console.log(`calibration: 86 windows of 128 tokens of calib.txt at random offsets, seeds 1-${seeds} (rotation seed = calibration seed); evaluation: dev-heldout.txt, ctx 128\n`);
console.log('| recipe | perplexity mean ± sd | KL mean ± sd | default calibration | vs best mean: difference ± SE | vs best, text noise (95%, default calibration) |');
console.log('|---|---|---|---|---|---|');
for (const setting of [...new Set(rows.map((r) => r.setting))]) {
  const group = rows.filter((r) => r.setting === setting);
  const best = group.reduce((a, r) => (r.perplexity.mean < a.perplexity.mean ? r : a));
  for (const r of group) {
    const diff = r.perplexity.mean - best.perplexity.mean;
    const se = Math.sqrt((r.perplexity.sd ** 2 + best.perplexity.sd ** 2) / seeds);
    const ci = perplexityRatioInterval(best.fixed, r.fixed);
    const sign = diff >= 0 ? '+' : '';
    const vs = r === best ? 'best' : se > 0 ? `${sign}${diff.toFixed(2)} ± ${se.toFixed(2)} (${(diff / se).toFixed(1)} SE)` : `${sign}${diff.toFixed(2)} (no seed noise: both data-free)`;
    const text = r === best ? '-' : `ratio ${ci.ratio.toFixed(4)} [${ci.low.toFixed(4)}, ${ci.high.toFixed(4)}]`;
    console.log(`| ${r.name} | ${r.perplexity.mean.toFixed(2)} ± ${r.perplexity.sd.toFixed(2)} | ${r.kl.mean.toFixed(4)} ± ${r.kl.sd.toFixed(4)} | ${r.fixed.perplexity.toFixed(2)} | ${vs} | ${text} |`);
  }
}
