// Checks bitsmith's GGUF export of a Llama model against llama.cpp (through node-llama-cpp, installed outside the repo).
//
//   node packages/formats/bench/gguf-check.mjs [--llama ~/.cache/bitsmith/llama-cpp/node_modules/node-llama-cpp] [--model ../shared/models/tinystories-656k] [--types F32,Q8_0,Q4_0,Q4_K] [--out /tmp/gguf-check]
//
// NODE_LLAMA_CPP (env) also names the node-llama-cpp folder. Needs `npx turbo run build --filter=@bitsmith/formats...` first.
// For each type: exports the GGUF, compares node-llama-cpp's tokenization with ours, evaluates the same tokens with
// llama.cpp (raw logits of every position) and with our float model, and prints max |logit diff|, top-1 agreement and
// perplexity of both.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadLlamaModel, createLlamaGraph } from '@bitsmith/models';
import { saveGgufModel, readGguf, encodeGgmlTensor, decodeGgmlTensor } from '@bitsmith/formats';

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const here = new URL('.', import.meta.url).pathname;
const llamaDir = resolve(arg('llama', process.env.NODE_LLAMA_CPP ?? join(process.env.BITSMITH_LLAMA_CPP ?? join(process.env.HOME ?? '/tmp', '.cache/bitsmith/llama-cpp'), 'node_modules/node-llama-cpp')));
const modelDir = resolve(arg('model', join(here, '../../../../shared/models/tinystories-656k')));
const types = arg('types', 'F32,Q8_0,Q4_0,Q4_K').split(',');
const outDir = resolve(arg('out', '/tmp/gguf-check'));
mkdirSync(outDir, { recursive: true });

if (!existsSync(join(llamaDir, 'dist/index.js')) || !existsSync(join(modelDir, 'model.safetensors'))) {
  console.log(`skipped: node-llama-cpp (${llamaDir}; bench/setup-llama-cpp.sh installs it) or the model (${modelDir}) not found`);
  process.exit(0);
}
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(join(llamaDir, 'dist/index.js')).href);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel?.error ?? 'error' });

const model = await loadLlamaModel(modelDir);
const text =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. One day, she saw a big red ball in the park. ' +
  'She ran to the ball and kicked it very high. Her friend Tom came to play with her. They laughed and played all day. ' +
  'When the sun went down, Lily went home and told her mom about her fun day.';
const ids = model.tokenizer.encode(text, { bos: true });
const reference = await model.graph.forward([ids]); // [tokens, vocab]
const vocab = reference.shape[1];

function logSoftmaxAt(row, target) {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return row[target] - max - Math.log(sum);
}
const argmax = (row) => row.reduce((best, v, i) => (v > row[best] ? i : best), 0);
const refRows = Array.from({ length: ids.length }, (_, t) => reference.data.subarray(t * vocab, (t + 1) * vocab));
let refNll = 0;
for (let t = 0; t + 1 < ids.length; t++) refNll -= logSoftmaxAt(refRows[t], ids[t + 1]);
const refPpl = Math.exp(refNll / (ids.length - 1));

console.log(`model ${modelDir}, ${ids.length} tokens, node-llama-cpp ${llamaDir}`);
console.log(`bitsmith float model perplexity: ${refPpl.toFixed(4)}`);
console.log('| type | file bytes | tokenization | max abs logit diff | mean abs logit diff | top-1 agreement | llama.cpp ppl | bitsmith float ppl | max abs diff vs bitsmith decode of the same blocks |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const type of types) {
  const path = join(outDir, `${modelDir.split('/').pop()}.${type}.gguf`);
  const saved = await saveGgufModel(path, model.graph, modelDir, { type });
  await readGguf(path); // parses what was written
  const fallbacks = new Set(saved.warnings.map((w) => w.message.replace(/.*falls back to /, '')));
  const lm = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const theirIds = lm.tokenize(text);
  const ours = ids.slice(1);
  const sameTokens = theirIds.length === ours.length && theirIds.every((t, i) => t === ours[i]);
  const context = await lm.createContext({ contextSize: 512, batchSize: 512, sequences: 1 });
  const sequence = context.getSequence();
  const results = await sequence.controlledEvaluate(ids.map((t) => [t, { generateNext: { logits: true } }]));
  let maxDiff = 0;
  let sumDiff = 0;
  let agree = 0;
  let nll = 0;
  for (let t = 0; t < ids.length; t++) {
    const map = results[t]?.next?.logits;
    if (!map) throw new Error(`no logits at position ${t}`);
    const row = new Float32Array(vocab);
    for (const [token, logit] of map) row[token] = logit;
    for (let v = 0; v < vocab; v++) {
      const d = Math.abs(row[v] - refRows[t][v]);
      maxDiff = Math.max(maxDiff, d);
      sumDiff += d;
    }
    if (argmax(row) === argmax(refRows[t])) agree++;
    if (t + 1 < ids.length) nll -= logSoftmaxAt(row, ids[t + 1]);
  }
  // Our forward pass with the weights decoded from the very blocks written (row permutation commutes with row-wise blocks).
  const stored = new Map(saved.tensors.map((x) => [x.name, x.type]));
  const fake = new Map();
  for (const [name, tensor] of model.graph.tensors()) {
    const ggufName = name === 'model.embed_tokens.weight' ? 'token_embd.weight' : name.replace(/^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)_proj\.weight$/, (m, l, _g, p) => `blk.${l}.${{ q: 'attn_q', k: 'attn_k', v: 'attn_v', o: 'attn_output', gate: 'ffn_gate', up: 'ffn_up', down: 'ffn_down' }[p]}.weight`);
    const t = stored.get(ggufName);
    fake.set(name, t && tensor.shape.length === 2 ? { ...tensor, data: decodeGgmlTensor(t, encodeGgmlTensor(t, tensor.data), tensor.data.length) } : tensor);
  }
  const fakeGraph = await createLlamaGraph(model.config, (n) => fake.get(n));
  const fakeLogits = await fakeGraph.forward([ids]);
  let fakeDiff = 0;
  for (let t = 0; t < ids.length; t++) {
    const map = results[t].next.logits;
    for (const [token, logit] of map) fakeDiff = Math.max(fakeDiff, Math.abs(logit - fakeLogits.data[t * vocab + token]));
  }
  const note = fallbacks.size ? ` (stored as ${[...new Set(saved.tensors.filter((x) => x.shape.length === 2).map((x) => x.type))].join('/')})` : '';
  console.log(
    `| ${type}${note} | ${statSync(path).size} | ${sameTokens ? 'identical' : `differs (${theirIds.length} vs ${ours.length})`} | ${maxDiff.toFixed(5)} | ${(sumDiff / (ids.length * vocab)).toFixed(5)} | ${agree}/${ids.length} | ${Math.exp(nll / (ids.length - 1)).toFixed(4)} | ${refPpl.toFixed(4)} | ${fakeDiff.toFixed(5)} |`,
  );
  await context.dispose();
  await lm.dispose();
}
await llama.dispose?.();
