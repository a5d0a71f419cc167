// Exports tinystories-656k to ONNX (float, then GPTQ w4 g32 as MatMulNBits), runs both in onnxruntime-node and prints
// the logits' max |difference| from bitsmith's own forward pass and the dev-heldout perplexity in both runtimes.
// Usage (after `npx turbo run build --filter=@bitsmith/formats...`): node bench/onnx-check.mjs [--shared ../../../shared] [--out DIR]
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createJsBackend } from '@bitsmith/linalg';
import { evaluateLanguageModel, evaluationWindows, llamaQuantizableModel, loadLlamaModel } from '@bitsmith/models';
import { runRecipe } from '@bitsmith/recipe';
import { gptq } from '@bitsmith/solvers';
import { buildLlamaOnnx, onnxDecoderFeeds, readMatMulNBits } from '../dist/index.js';

const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};
const here = dirname(fileURLToPath(import.meta.url));
const shared = resolve(option('shared', process.env.BITSMITH_SHARED ?? join(here, '../../../../shared')));
const modelDir = join(shared, 'models', 'tinystories-656k');
const outDir = option('out', undefined);

const specifier = 'onnxruntime-node';
const ortModule = await import(specifier);
const ort = ortModule.InferenceSession ? ortModule : ortModule.default;
const sessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 };

let decoderShape;
async function run(session, rows) {
  return (await session.run(onnxDecoderFeeds(ort.Tensor, rows, decoderShape))).logits.data;
}

async function compareLogits(bytes, graph, windows) {
  const session = await ort.InferenceSession.create(bytes, sessionOptions);
  const onnx = await run(session, windows);
  await session.release();
  const ours = (await graph.forward(windows)).data;
  let maxDiff = 0;
  let maxLogit = 0;
  for (let i = 0; i < ours.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(onnx[i] - ours[i]));
    maxLogit = Math.max(maxLogit, Math.abs(ours[i]));
  }
  return { maxDiff, maxLogit };
}

/** evaluateLanguageModel's protocol (ctx 128, [BOS] + 127 tokens per window, every text token scored once) in onnxruntime. */
async function onnxPerplexity(bytes, ids, vocab, bos) {
  const windows = evaluationWindows(ids, 128, bos);
  const session = await ort.InferenceSession.create(bytes, sessionOptions);
  let nll = 0;
  let scored = 0;
  const t0 = performance.now();
  for (let start = 0; start < windows.length; ) {
    let end = start;
    while (end < windows.length && end - start < 16 && windows[end].length === windows[start].length) end++;
    const batch = windows.slice(start, end);
    const length = batch[0].length;
    const logits = await run(session, batch);
    batch.forEach((w, b) => {
      for (let p = 0; p < w.length - 1; p++) {
        const o = (b * length + p) * vocab;
        let max = -Infinity;
        for (let j = 0; j < vocab; j++) max = Math.max(max, logits[o + j]);
        let sum = 0;
        for (let j = 0; j < vocab; j++) sum += Math.exp(logits[o + j] - max);
        nll -= logits[o + w[p + 1]] - max - Math.log(sum);
        scored++;
      }
    });
    start = end;
  }
  await session.release();
  return { perplexity: Math.exp(nll / scored), tokens: scored, windows: windows.length, seconds: (performance.now() - t0) / 1000 };
}

const backend = createJsBackend();
const { graph, tokenizer } = await loadLlamaModel(modelDir, { backend });
const vocab = graph.config.vocabSize;
const bos = graph.config.bosTokenId ?? 1;
decoderShape = { layers: graph.blocks.length, numKeyValueHeads: graph.config.numKeyValueHeads, headDim: graph.config.headDim };
const devIds = tokenizer.encode(readFileSync(join(shared, 'data', 'dev-heldout.txt'), 'utf8'), { bos: false });
const compareWindows = evaluationWindows(devIds, 128, bos)
  .filter((w) => w.length === 128)
  .slice(0, 8);
const line = (s) => console.log(s);
line(`tinystories-656k, onnxruntime-node ${ortModule.env?.versions?.common ?? ''}; logits compared on ${compareWindows.length} dev windows of 128 tokens`);

const float = await buildLlamaOnnx(graph, new Map());
const floatDiff = await compareLogits(float.bytes, graph, compareWindows);
const floatOnnx = await onnxPerplexity(float.bytes, devIds, vocab, bos);
const floatOurs = await evaluateLanguageModel(graph, devIds);
line(`float     ${String(float.bytes.length).padStart(8)} B  logits max|diff| ${floatDiff.maxDiff.toExponential(3)} (max|logit| ${floatDiff.maxLogit.toFixed(2)})  ppl onnxruntime ${floatOnnx.perplexity.toFixed(6)}  bitsmith ${floatOurs.perplexity.toFixed(6)}`);

const calibIds = tokenizer.encode(readFileSync(join(shared, 'data', 'calib.txt'), 'utf8'), { bos: false });
const calibration = Array.from({ length: 16 }, (_, i) => [bos, ...calibIds.slice(i * 127, (i + 1) * 127)]);
const quantized = new Map();
const step = gptq({ format: 'int4', granularity: { type: 'group', size: 32 }, backend });
await runRecipe(llamaQuantizableModel(graph), [step], calibration, { backend, onQuantized: (name, q) => quantized.set(name, q) });
const q4 = await buildLlamaOnnx(graph, quantized);
const q4Diff = await compareLogits(q4.bytes, graph, compareWindows);
const q4Onnx = await onnxPerplexity(q4.bytes, devIds, vocab, bos);
const q4Ours = await evaluateLanguageModel(graph, devIds);
line(`gptq w4g32 ${String(q4.bytes.length).padStart(7)} B  logits max|diff| ${q4Diff.maxDiff.toExponential(3)} (vs bitsmith's dequantized model)  ppl onnxruntime ${q4Onnx.perplexity.toFixed(6)}  bitsmith ${q4Ours.perplexity.toFixed(6)}`);
line(`  ${q4.matMulNBits.length} MatMulNBits nodes (bits 4, block_size 32, no zero points); ${q4Ours.tokens} tokens in ${q4Ours.windows} windows; protocol: ${q4Ours.protocol}`);

if (outDir) {
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'model.onnx'), float.bytes);
  await writeFile(join(outDir, 'model_q4.onnx'), q4.bytes);
  const back = await readMatMulNBits(join(outDir, 'model_q4.onnx'));
  line(`wrote ${outDir}/model.onnx and model_q4.onnx; read back ${back.size} MatMulNBits tensors`);
}
