// transformers.js check on the real model (issue #14): llama-docs-29m quantized in process (int4 g32 round-to-nearest
// with fp16 scales on every block linear, act-order on the q/k/v projections of block 0, a rank-8 low-rank branch on
// block 1's up_proj, and an online Hadamard of order 1536 = 12 x 128 on every down_proj), written in the transformers.js
// layout, then:
//   - pipeline('text-generation') greedy decoding of 32 tokens from several prompts equals bitsmith's generateGreedy
//     on the same quantized graph (token ids and text);
//   - perplexity through onnxruntime-node with the key/value cache (each ctx-128 window fed as a 64-token prefill, then
//     single tokens, then chunks of 16 through present -> past) equals bitsmith's evaluateLanguageModel within 1e-4
//     relative.
// Usage (after `npx turbo run build --filter=@bitsmith/formats...`): node bench/transformers-js-check.mjs [--shared DIR] [--windows 6]
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeStored, dequantize, parseFormat, quantize } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { evaluateLanguageModel, evaluationWindows, generateGreedy, loadLlamaModel } from '@bitsmith/models';
import { applyHadamard, hadamardInputTransform } from '@bitsmith/rotation';
import { onnxDecoderFeeds, saveTransformersJsModel } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({ options: { shared: { type: 'string', default: process.env.BITSMITH_SHARED ?? join(here, '../../../../shared') }, windows: { type: 'string', default: '6' } } });
const modelDir = join(resolve(values.shared), 'models', 'llama-docs-29m');
let transformers;
let ort;
try {
  transformers = await import('@huggingface/transformers');
  ort = await import('onnxruntime-node');
  ort = ort.InferenceSession ? ort : ort.default;
} catch (error) {
  console.log(`skipped: @huggingface/transformers or onnxruntime-node cannot be loaded (${error.message})`);
  process.exit(0);
}
const { existsSync } = await import('node:fs');
if (!existsSync(join(modelDir, 'model.safetensors'))) {
  console.log(`skipped: ${modelDir} not found`);
  process.exit(0);
}

const t0 = performance.now();
const backend = createJsBackend();
const { graph, tokenizer } = await loadLlamaModel(modelDir, { backend });
const stored = new Map();
const int4 = { format: parseFormat('int4'), granularity: { type: 'group', size: 32 }, scaleEncoding: 'float16' };
for (const block of graph.blocks) {
  const down = block.mlp.downProj;
  const [rows, n] = down.weight.shape;
  const data = Float32Array.from(down.weight.data);
  await applyHadamard(data, rows, n, { backend });
  down.weight = { dtype: 'float32', shape: [rows, n], data };
  down.inputTransform = hadamardInputTransform(n, { backend });
}
for (const [b, block] of graph.blocks.entries()) {
  for (const layer of [...Object.values(block.selfAttention), ...Object.values(block.mlp)]) {
    let form;
    if (b === 0 && /[qkv]_proj$/.test(layer.name)) {
      // Act-order: groups along a permutation of the input columns (the same for q/k/v: one Gather).
      const [rows, columns] = layer.weight.shape;
      const order = Int32Array.from({ length: columns }, (_, i) => (i * 97 + 13) % columns);
      const permuted = new Float32Array(rows * columns);
      for (let r = 0; r < rows; r++) for (let p = 0; p < columns; p++) permuted[r * columns + p] = layer.weight.data[r * columns + order[p]];
      const q = quantize({ dtype: 'float32', shape: [rows, columns], data: permuted }, int4);
      const codes = new Uint8Array(q.codes.length);
      for (let r = 0; r < rows; r++) for (let p = 0; p < columns; p++) codes[r * columns + order[p]] = q.codes[r * columns + p];
      form = { kind: 'grid', tensor: { ...q, codes, permutation: order } };
    } else if (b === 1 && layer.name.endsWith('up_proj')) {
      const q = quantize(layer.weight, int4);
      const base = dequantize(q);
      // A rank-8 branch from the residual's leading singular directions (power iterations are enough here).
      const [rows, columns] = base.shape;
      const residual = Float32Array.from(layer.weight.data, (v, i) => v - base.data[i]);
      const rank = 8;
      const a = new Float32Array(rows * rank);
      const bm = new Float32Array(rank * columns);
      for (let k = 0; k < rank; k++) {
        let v = Float64Array.from({ length: columns }, (_, i) => Math.sin(i * (k + 1) + k));
        let u = new Float64Array(rows);
        for (let it = 0; it < 20; it++) {
          u.fill(0);
          for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) u[r] += residual[r * columns + c] * v[c];
          v = new Float64Array(columns);
          for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) v[c] += residual[r * columns + c] * u[r];
          const norm = Math.hypot(...v);
          for (let c = 0; c < columns; c++) v[c] /= norm;
        }
        u.fill(0);
        for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) u[r] += residual[r * columns + c] * v[c];
        for (let r = 0; r < rows; r++) {
          a[r * rank + k] = u[r];
          for (let c = 0; c < columns; c++) residual[r * columns + c] -= u[r] * v[c];
        }
        for (let c = 0; c < columns; c++) bm[k * columns + c] = v[c];
      }
      form = { kind: 'low-rank', base: { kind: 'grid', tensor: q }, a: { dtype: 'float32', shape: [rows, rank], data: a }, b: { dtype: 'float32', shape: [rank, columns], data: bm }, factorBits: rank * (rows + columns) * 16 };
    } else {
      form = { kind: 'grid', tensor: quantize(layer.weight, int4) };
    }
    layer.weight = decodeStored(form);
    stored.set(layer.name, form);
  }
}
const config = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8'));
const work = await mkdtemp(join(tmpdir(), 'bitsmith-tjs-check-'));
const saved = await saveTransformersJsModel(join(work, 'model'), graph, stored, { config, copyFrom: modelDir, dtypes: ['q4'] });
console.log(`quantized and exported in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${saved.matMulNBits.length} MatMulNBits layers, ${(saved.files.q4.bytes / 2 ** 20).toFixed(2)} MiB`);

const { env, pipeline } = transformers;
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = work;
let failures = 0;
const generator = await pipeline('text-generation', 'model', { dtype: 'q4', device: 'cpu' });
for (const prompt of ['The function returns', 'In the beginning God created', 'To configure the server, edit the file']) {
  const promptIds = Array.from(generator.tokenizer.encode(prompt), Number);
  const ours = await generateGreedy(graph, promptIds, { maxNewTokens: 32, eosTokenId: tokenizer.eosTokenId ?? null });
  const [out] = await generator(prompt, { max_new_tokens: 32, do_sample: false });
  const expected = generator.tokenizer.decode([...promptIds, ...ours], { skip_special_tokens: true });
  const same = out.generated_text === expected;
  if (!same) failures++;
  console.log(`${same ? 'same' : 'DIFFERENT'}: ${JSON.stringify(out.generated_text)}${same ? '' : `\n  bitsmith: ${JSON.stringify(expected)}`}`);
}
await generator.dispose();

// Perplexity with the key/value cache in onnxruntime vs bitsmith.
const text = await readFile(join(resolve(values.shared), 'data', 'docs-dev-heldout.txt'), 'utf8');
const bos = tokenizer.bosTokenId ?? 1;
const ids = tokenizer.encode(text.slice(0, 20000), { bos: false });
const windows = evaluationWindows(ids, 128, bos).filter((w) => w.length === 128).slice(0, Number(values.windows));
const flat = windows.flatMap((w) => w.slice(1));
const session = await ort.InferenceSession.create(join(work, 'model', 'onnx', 'model_q4.onnx'), { intraOpNumThreads: 2, interOpNumThreads: 1, logSeverityLevel: 3 });
const shape = { layers: graph.blocks.length, numKeyValueHeads: graph.config.numKeyValueHeads, headDim: graph.config.headDim };
const vocab = graph.config.vocabSize;
let nll = 0;
let scored = 0;
for (const window of windows) {
  let present;
  let done = 0;
  for (const length of [64, 1, 1, 1, 16, 16, 16, 13]) {
    const chunk = window.slice(done, done + length);
    const out = await session.run(onnxDecoderFeeds(ort.Tensor, [chunk], shape, { ...(present ? { present } : {}), pastLength: done }));
    const logits = out.logits.data;
    for (let p = 0; p < chunk.length; p++) {
      const next = window[done + p + 1];
      if (next === undefined) continue;
      let max = -Infinity;
      for (let j = 0; j < vocab; j++) max = Math.max(max, logits[p * vocab + j]);
      let sum = 0;
      for (let j = 0; j < vocab; j++) sum += Math.exp(logits[p * vocab + j] - max);
      nll -= logits[p * vocab + next] - max - Math.log(sum);
      scored++;
    }
    present = out;
    done += length;
  }
}
await session.release();
const onnxPerplexity = Math.exp(nll / scored);
const ours = await evaluateLanguageModel(graph, flat, { ctx: 128, bosTokenId: bos });
const relative = Math.abs(onnxPerplexity - ours.perplexity) / ours.perplexity;
if (relative >= 1e-4 || ours.tokens !== scored) failures++;
console.log(`perplexity (${scored} tokens, ${windows.length} windows of ctx 128): onnxruntime with the KV cache ${onnxPerplexity.toFixed(6)}, bitsmith ${ours.perplexity.toFixed(6)}, relative difference ${relative.toExponential(2)} (must be < 1e-4)`);
await rm(work, { recursive: true, force: true });
console.log(`${failures === 0 ? 'PASS' : `FAIL (${failures})`} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
if (failures > 0) process.exitCode = 1;
