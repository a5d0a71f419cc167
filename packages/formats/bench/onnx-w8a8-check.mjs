// W8A8 recipes (int8 weights per channel + int8 input activations) written with `--save onnx,fake` on llama-docs-29m
// (the model with real activation outliers): perplexity of the exported ONNX decoder in onnxruntime-node against
// bitsmith's simulation of the same run (`bitsmith eval` of the fake-quant folder, which reinstalls the activation
// quantizers). Static per-tensor int8 becomes QuantizeLinear/DequantizeLinear; dynamic per-token int8 float nodes
// (docs/formats.md). Target (issue 15): within 1e-3 relative.
//
// Build first (npx turbo run build --filter=@bitsmith/cli...), then:
//   node packages/formats/bench/onnx-w8a8-check.mjs [--model DIR] [--calibration FILE] [--eval FILE] [--eval-chars 20000]
//     [--ctx 512] [--samples 16] [--seq-len 512] [--recipes w8a8-rtn-static,...] [--out /tmp/onnx-w8a8-bench]
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluationWindows, loadTokenizer } from '@bitsmith/models';
import { onnxDecoderFeeds } from '@bitsmith/formats';
import { llamaDocsOptions, log, option, requireOrSkip, run } from './llama-docs-bench.mjs';

const { root, modelDir, calibration, evalPath, evalChars, ctx, samples, seqLen, out, cli } = llamaDocsOptions({ samples: '16', out: '/tmp/onnx-w8a8-bench' });
const recipes = option('recipes', 'w8a8-rtn-static,w8a8-smoothquant-static,w8a8-rtn-dynamic,w8a8-smoothquant-dynamic').split(',');

let ort;
try {
  const specifier = 'onnxruntime-node';
  const module = await import(specifier);
  ort = module.InferenceSession ? module : module.default;
} catch {
  console.log('skipped: onnxruntime-node is not installed');
  process.exit(0);
}
requireOrSkip(
  [
    ['the model', join(modelDir, 'config.json')],
    ['the calibration text', calibration],
    ['the bitsmith CLI build (npx turbo run build --filter=@bitsmith/cli...)', cli],
  ],
  out,
);
/** Runs the bitsmith CLI; its progress goes to our stderr. */
const bitsmith = (args) => run(process.execPath, [cli, ...args], 'inherit');

const evalFile = join(out, `eval-${evalChars}.txt`);
writeFileSync(evalFile, readFileSync(evalPath, 'utf8').slice(0, evalChars));
const tokenizer = await loadTokenizer(modelDir);
const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
const bos = tokenizer.bosTokenId ?? config.bos_token_id ?? 1;
const ids = tokenizer.encode(readFileSync(evalFile, 'utf8'));
const windows = evaluationWindows(ids, ctx, bos);

/** Perplexity of an ONNX decoder file over evaluateLanguageModel's windows ([BOS] + ctx-1 tokens, each scored once). */
async function onnxPerplexity(file) {
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 2, interOpNumThreads: 1, logSeverityLevel: 3 });
  const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
  const shape = { layers: config.num_hidden_layers, numKeyValueHeads: config.num_key_value_heads ?? config.num_attention_heads, headDim };
  const vocab = config.vocab_size;
  let nll = 0;
  let scored = 0;
  const t0 = performance.now();
  for (const w of windows) {
    const logits = (await session.run(onnxDecoderFeeds(ort.Tensor, [w], shape))).logits.data;
    for (let p = 0; p < w.length - 1; p++) {
      let max = -Infinity;
      for (let j = 0; j < vocab; j++) max = Math.max(max, logits[p * vocab + j]);
      let sum = 0;
      for (let j = 0; j < vocab; j++) sum += Math.exp(logits[p * vocab + j] - max);
      nll -= logits[p * vocab + w[p + 1]] - max - Math.log(sum);
      scored++;
    }
  }
  await session.release();
  return { perplexity: Math.exp(nll / scored), tokens: scored, seconds: (performance.now() - t0) / 1000 };
}

const rows = [];
for (const name of recipes) {
  const recipe = join(root, 'examples/recipes', `${name}.yaml`);
  const dir = join(out, name);
  if (!existsSync(join(dir, 'onnx'))) {
    bitsmith(['quantize', '--model', modelDir, '--recipe', recipe, '--calibration', calibration, '--samples', samples, '--seq-len', seqLen, '--save', 'onnx,fake', '--out', dir, '--overwrite']);
  }
  const onnxDir = join(dir, 'onnx', 'onnx');
  const file = ['model_quantized.onnx', 'model_q8.onnx', 'model_int8.onnx', 'model_q4.onnx', 'model.onnx'].map((f) => join(onnxDir, f)).find((f) => existsSync(f));
  if (!file) throw new Error(`no ONNX decoder under ${onnxDir}`);
  const ours = JSON.parse(bitsmith(['eval', '--model', join(dir, 'fake'), '--text', evalFile, '--ctx', String(ctx), '--json']));
  const onnx = await onnxPerplexity(file);
  if (onnx.tokens !== ours.tokens) throw new Error(`${name}: onnxruntime scored ${onnx.tokens} tokens, bitsmith ${ours.tokens}`);
  const relative = Math.abs(onnx.perplexity - ours.perplexity) / ours.perplexity;
  rows.push({ name, file: file.slice(dir.length + 1), onnx: onnx.perplexity, ours: ours.perplexity, relative, tokens: onnx.tokens, seconds: onnx.seconds });
  log(`  ${name}: onnxruntime ${onnx.perplexity.toFixed(6)}, bitsmith ${ours.perplexity.toFixed(6)}, relative ${relative.toExponential(2)}`);
}

const lines = [
  `model ${modelDir}; eval ${evalPath} (first ${evalChars} characters: ${ids.length} tokens, ${windows.length} windows of [BOS] + ${ctx - 1}); calibration ${calibration} (${samples} x ${seqLen} tokens, consecutive)`,
  '',
  '| recipe | ONNX file | perplexity, onnxruntime-node | perplexity, bitsmith simulation | relative difference | within 1e-3 |',
  '|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.name} | ${r.file} | ${r.onnx.toFixed(6)} | ${r.ours.toFixed(6)} | ${r.relative.toExponential(2)} | ${r.relative < 1e-3 ? 'yes' : 'NO'} |`),
];
console.log(lines.join('\n'));
writeFileSync(join(out, 'results.md'), `${lines.join('\n')}\n`);
if (rows.some((r) => r.relative >= 1e-3)) process.exitCode = 1;
