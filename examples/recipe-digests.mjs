// Digests of recipe runs on tinystories-656k, to show that a refactoring of the step contract changes no bit of any
// result: for each recipe, a SHA-256 of the quantized model (every weight, bias, norm, the embedding and the head,
// the run-time input transforms' descriptions, and the logits of one held-out sequence through the quantized model,
// which covers installed activation and cache quantizers), of the stored forms the run reported, and of the report's
// numbers (bits per weight and output error per layer; not the times). Run it before and after a change and diff.
// Run after `npm run build`: node examples/recipe-digests.mjs [filter-regex]   (default: the smoothing, rotation,
// AWQ, LLM.int8, OS+ recipes plus RTN, GPTQ, GPTAQ, QuantEase, HQQ and a few others; see DEFAULT below)
// Environment: SAMPLES (calibration sequences, default 16), SEQ_LEN (default 128), TRAINING_ARITHMETIC (the learned
// steps' training passes: native, the default, or reference).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultRegistry } from '@bitsmith/steps';
import { defaultBackend } from '@bitsmith/linalg';
import { calibrationSequences, llamaQuantizableModel, loadLlamaModel } from '@bitsmith/models';
import { loadRecipe, parseRecipe, runRecipe } from '@bitsmith/recipe';

const here = dirname(fileURLToPath(import.meta.url));
const shared = process.env.BITSMITH_SHARED ?? resolve(here, '../../shared');
const modelDir = join(shared, 'models/tinystories-656k');
const DEFAULT =
  '^(awq-|rotation-|incoherence-|w4a4|w8a8|smoothquant|kv4-hadamard|rtn-w4g32|rtn-asym-w4g32|gptq-w4g32|gptq-w3g32-lorc-r8|gptaq-w4g32|quantease-w4g32|hqq-w4g32|svdquant|lqlora|squeezellm-w3|vq-d2k4|showcase)';
const filter = new RegExp(process.argv[2] ?? DEFAULT);
const samples = Number(process.env.SAMPLES ?? 16);
const sequenceLength = Number(process.env.SEQ_LEN ?? 128);
const trainingArithmetic = process.env.TRAINING_ARITHMETIC ?? 'native';

// Recipes that examples/recipes does not have, written here so that every smoothing step is covered.
const INLINE = {
  'smoothquant-plus-rtn-w4g32': 'name: smoothquant-plus-rtn-w4g32\nsteps:\n  - smoothquant-plus: { bits: 4, groupSize: 32 }\n  - rtn: { bits: 4, groupSize: 32 }\n',
  'smoothquant-rtn-w4g32': 'name: smoothquant-rtn-w4g32\nsteps:\n  - smoothquant: { alpha: 0.5 }\n  - rtn: { bits: 4, groupSize: 32 }\n',
};

/** Feeds typed arrays (by their bytes), numbers, strings and plain objects (keys sorted) into a hash. */
function feed(hash, value) {
  if (value === undefined || value === null) hash.update(`<${value}>`);
  else if (ArrayBuffer.isView(value)) {
    hash.update(`${value.constructor.name}:${value.length}:`);
    hash.update(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  } else if (Array.isArray(value)) {
    hash.update(`[${value.length}`);
    for (const v of value) feed(hash, v);
    hash.update(']');
  } else if (typeof value === 'object') {
    hash.update('{');
    for (const key of Object.keys(value).sort()) {
      if (typeof value[key] === 'function') continue;
      hash.update(`${key}=`);
      feed(hash, value[key]);
    }
    hash.update('}');
  } else hash.update(`${typeof value}:${String(value)}`);
}

const digest = (fill) => {
  const hash = createHash('sha256');
  fill(hash);
  return hash.digest('hex').slice(0, 16);
};

const backend = await defaultBackend();
const { tokenizer } = await loadLlamaModel(modelDir, { backend });
const calibIds = tokenizer.encode(readFileSync(join(shared, 'data/calib.txt'), 'utf8'), { bos: false });
const { sequences } = calibrationSequences(calibIds, { samples, sequenceLength, bosTokenId: 1, file: 'calib.txt' });
const probe = tokenizer.encode(readFileSync(join(shared, 'data/dev-heldout.txt'), 'utf8').slice(0, 600)).slice(0, 96);

const files = readdirSync(join(here, 'recipes')).filter((f) => f.endsWith('.yaml') && filter.test(f)).sort();
const inline = Object.keys(INLINE).filter((n) => filter.test(n));
console.log(`# ${files.length + inline.length} recipes, ${samples} x ${sequenceLength} calibration tokens`);
console.log('| recipe | model | stored | report |');
console.log('|---|---|---|---|');
for (const name of [...files.map((f) => f.replace(/\.yaml$/, '')), ...inline]) {
  const recipe = INLINE[name] ? parseRecipe(INLINE[name], defaultRegistry) : await loadRecipe(join(here, 'recipes', `${name}.yaml`), defaultRegistry);
  const { graph } = await loadLlamaModel(modelDir, { backend });
  const model = llamaQuantizableModel(graph, { trainingArithmetic });
  const stored = [];
  const report = await runRecipe(model, recipe, sequences, { backend, onStored: (layer, form) => stored.push([layer, form]) });
  let hidden = await model.embed([probe]);
  for (const block of model.blocks) hidden = await model.runBlock(block.index, hidden);
  const logits = await model.logits(hidden);
  const modelDigest = digest((h) => {
    feed(h, model.embedding.data);
    for (const block of model.blocks) {
      for (const l of [...block.linears, ...(block.auxiliaryLinears ?? [])]) {
        feed(h, [l.name, l.weight.shape, l.weight.data, l.bias, l.inputTransform?.describe()]);
      }
      for (const n of block.norms) feed(h, [n.name, n.weight, n.bias]);
    }
    feed(h, [model.finalNorm.weight, model.finalNorm.bias, model.lmHead.weight.data]);
    feed(h, logits.data);
  });
  const storedDigest = digest((h) => feed(h, stored));
  const reportDigest = digest((h) => feed(h, [report.averageBitsPerWeight, report.layers.map((l) => [l.name, l.bitsPerWeight, l.outputError, l.steps, l.stored])]));
  console.log(`| ${name} | ${modelDigest} | ${storedDigest} | ${reportDigest} |`);
}
