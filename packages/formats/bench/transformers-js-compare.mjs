// The transformers.js q4 comparison on llama-docs-29m (issue #14): the block-32 round-to-nearest model that
// onnxruntime's MatMulNBitsQuantizer makes (reproduced by onnxruntimeBlockwiseRtn), against bitsmith's calibrated q4
// exports written by `bitsmith quantize --save onnx`, all measured in transformers.js itself: file size, perplexity and
// KL to the float model (ctx 512 windows of the held-out text, paired bootstrap intervals over windows), tokens/s of
// greedy generation through pipeline('text-generation').
//
//   node packages/cli/dist/bitsmith.js quantize --model ../shared/models/llama-docs-29m --recipe examples/recipes/gptq-w4g32.yaml \
//     --calibration ../shared/data/docs-calib.txt --samples 16 --seq-len 512 --save onnx --out out/gptq-w4g32
//   (same for awq-gptq-w4g32, rotation-gptq-w4g32)
//   node packages/formats/bench/transformers-js-compare.mjs --runs out/gptq-w4g32,out/awq-gptq-w4g32,out/rotation-gptq-w4g32 [--q4f16 awq-gptq-w4g32] [--eval-chars 60000] [--ctx 512] [--gen-tokens 64]
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createJsBackend } from '@bitsmith/linalg';
import { evaluationWindows, loadLlamaModel, perplexityRatioInterval } from '@bitsmith/models';
import { onnxruntimeBlockwiseRtn, saveTransformersJsModel } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    shared: { type: 'string', default: process.env.BITSMITH_SHARED ?? join(here, '../../../../shared') },
    runs: { type: 'string', default: '' },
    'eval-chars': { type: 'string', default: '60000' },
    ctx: { type: 'string', default: '512' },
    'gen-tokens': { type: 'string', default: '64' },
    q4f16: { type: 'string', default: '' },
  },
});
const shared = resolve(values.shared);
const modelDir = join(shared, 'models', 'llama-docs-29m');
const ctx = Number(values.ctx);
const genTokens = Number(values['gen-tokens']);
const evalChars = Number(values['eval-chars']);

let transformers;
try {
  transformers = await import('@huggingface/transformers');
} catch (error) {
  console.log(`skipped: @huggingface/transformers cannot be loaded (${error.message})`);
  process.exit(0);
}
const { AutoModelForCausalLM, Tensor, env, pipeline } = transformers;

const t0 = performance.now();
const { graph, tokenizer } = await loadLlamaModel(modelDir, { backend: createJsBackend() });
const config = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8'));
const work = await mkdtemp(join(tmpdir(), 'bitsmith-tjs-compare-'));
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = '/';

// The float reference and onnxruntime's RTN block-32 model, written by the same exporter (same graph, same tied
// float embedding/LM head as bitsmith's exports: only the 56 block linears differ).
await saveTransformersJsModel(join(work, 'float'), graph, new Map(), { config, copyFrom: modelDir, dtypes: ['fp32'] });
const rtn = new Map();
for (const layer of graph.linearLayers()) rtn.set(layer.name, onnxruntimeBlockwiseRtn(layer.weight, { blockSize: 32, symmetric: true }));
await saveTransformersJsModel(join(work, 'rtn-ort'), graph, rtn, { config, copyFrom: modelDir, dtypes: ['q4'] });
const models = [
  { name: 'float (fp32)', dir: join(work, 'float'), dtype: 'fp32' },
  { name: 'q4 RTN block 32 (onnxruntime quantizer)', dir: join(work, 'rtn-ort'), dtype: 'q4' },
];
for (const run of values.runs.split(',').filter(Boolean)) {
  models.push({ name: `q4 ${basename(run)}`, dir: resolve(run), dtype: 'q4' });
  if (values.q4f16.split(',').includes(basename(run))) models.push({ name: `q4f16 ${basename(run)}`, dir: resolve(run), dtype: 'q4f16' });
}
console.log(`models written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

const text = await readFile(join(shared, 'data', 'docs-dev-heldout.txt'), 'utf8');
const ids = tokenizer.encode(evalChars > 0 ? text.slice(0, evalChars) : text, { bos: false });
const bos = tokenizer.bosTokenId ?? graph.config.bosTokenId ?? 1;
const windows = evaluationWindows(ids, ctx, bos);
const vocab = graph.config.vocabSize;

for (const m of models) {
  m.model = await AutoModelForCausalLM.from_pretrained(m.dir, { dtype: m.dtype, device: 'cpu', session_options: { intraOpNumThreads: 2, interOpNumThreads: 1 } });
  const file = { fp32: 'model.onnx', q4: 'model_q4.onnx', q4f16: 'model_q4f16.onnx' }[m.dtype];
  m.bytes = (await stat(join(m.dir, 'onnx', file))).size;
  m.nll = new Float64Array(windows.length);
  m.kl = new Float64Array(windows.length);
  m.tokens = new Int32Array(windows.length);
}

function logSoftmax(logits, offset, out) {
  let max = -Infinity;
  for (let j = 0; j < vocab; j++) max = Math.max(max, logits[offset + j]);
  let sum = 0;
  for (let j = 0; j < vocab; j++) sum += Math.exp(logits[offset + j] - max);
  const lse = max + Math.log(sum);
  for (let j = 0; j < vocab; j++) out[j] = logits[offset + j] - lse;
}

const lpFloat = new Float64Array(vocab);
const lp = new Float64Array(vocab);
const tEval = performance.now();
for (const [w, window] of windows.entries()) {
  const inputIds = new Tensor('int64', BigInt64Array.from(window, BigInt), [1, window.length]);
  const attentionMask = new Tensor('int64', new BigInt64Array(window.length).fill(1n), [1, window.length]);
  const outputs = [];
  for (const m of models) outputs.push((await m.model({ input_ids: inputIds, attention_mask: attentionMask })).logits.data);
  for (let p = 0; p < window.length - 1; p++) {
    logSoftmax(outputs[0], p * vocab, lpFloat);
    for (const [i, m] of models.entries()) {
      logSoftmax(outputs[i], p * vocab, lp);
      m.nll[w] -= lp[window[p + 1]];
      m.tokens[w]++;
      let kl = 0;
      for (let j = 0; j < vocab; j++) kl += Math.exp(lpFloat[j]) * (lpFloat[j] - lp[j]);
      m.kl[w] += kl;
    }
  }
  if (w % 5 === 4 || w === windows.length - 1) {
    const elapsed = (performance.now() - tEval) / 1000;
    console.log(`window ${w + 1}/${windows.length}, ${elapsed.toFixed(0)} s, ETA ${((elapsed / (w + 1)) * (windows.length - w - 1)).toFixed(0)} s`);
  }
}

// Tokens/s of greedy generation through pipeline('text-generation') (after one warm-up run per model).
const prompts = ['The function returns', 'In the beginning God created', 'To configure the server, edit'];
for (const m of models) {
  const generator = await pipeline('text-generation', m.dir, { dtype: m.dtype, device: 'cpu', session_options: { intraOpNumThreads: 2, interOpNumThreads: 1 } });
  await generator(prompts[0], { max_new_tokens: 8, do_sample: false });
  let tokens = 0;
  const start = performance.now();
  for (const prompt of prompts) {
    const promptLength = tokenizer.encode(prompt).length;
    const [out] = await generator(prompt, { max_new_tokens: genTokens, do_sample: false, return_full_text: true });
    tokens += tokenizer.encode(out.generated_text).length - promptLength;
  }
  m.tokensPerSecond = tokens / ((performance.now() - start) / 1000);
  m.sample = (await generator(prompts[0], { max_new_tokens: 24, do_sample: false }))[0].generated_text;
  await generator.dispose();
}

const total = (a) => a.reduce((x, y) => x + y, 0);
const evaluation = (m) => ({ perWindow: { nll: m.nll, tokens: m.tokens } });
const scored = total(models[0].tokens);
console.log(`\neval: docs-dev-heldout.txt${evalChars > 0 ? ` (first ${evalChars} characters)` : ''}, ${scored} tokens scored, ${windows.length} windows of ctx ${ctx}, transformers.js ${transformers.env.version} on onnxruntime-node (CPU, 2 threads)\n`);
console.log('| model | file (MiB) | perplexity | / RTN block 32 (95%) | KL to float | tokens/s |');
console.log('|---|---|---|---|---|---|');
for (const m of models) {
  const ppl = Math.exp(total(m.nll) / scored);
  const vsRtn = m === models[1] || m === models[0] ? '' : (() => {
    const r = perplexityRatioInterval(evaluation(models[1]), evaluation(m));
    return `${r.ratio.toFixed(4)} [${r.low.toFixed(4)}, ${r.high.toFixed(4)}]`;
  })();
  console.log(`| ${m.name} | ${(m.bytes / 2 ** 20).toFixed(2)} | ${ppl.toFixed(3)} | ${vsRtn} | ${(total(m.kl) / scored).toFixed(4)} | ${m.tokensPerSecond.toFixed(1)} |`);
}
console.log('\npaired perplexity ratios between the calibrated models (95%, bootstrap over windows):');
for (let i = 2; i < models.length; i++) {
  for (let j = i + 1; j < models.length; j++) {
    const r = perplexityRatioInterval(evaluation(models[i]), evaluation(models[j]));
    console.log(`  ${models[j].name} / ${models[i].name}: ${r.ratio.toFixed(4)} [${r.low.toFixed(4)}, ${r.high.toFixed(4)}]`);
  }
}
console.log('\nsamples (greedy, 24 tokens):');
for (const m of models) console.log(`  ${m.name}: ${JSON.stringify(m.sample)}`);
for (const m of models) await m.model.dispose();
await rm(work, { recursive: true, force: true });
console.log(`\ntotal ${((performance.now() - t0) / 1000).toFixed(0)} s`);
