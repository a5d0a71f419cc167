// GGUF artifacts of a Llama model measured in llama.cpp (through node-llama-cpp) and in bitsmith: llama.cpp's own
// quantize of bitsmith's F16 export with and without bitsmith's imatrix, bitsmith's own encoders with that imatrix
// (checked byte for byte against llama-quantize), and bitsmith's calibrated results (the llama.cpp-q4_k_m preset:
// GPTQ onto Q4_K_M's grids; GPTQ int4 g32 carried exactly into Q4_0).
//
// Needs the tools of bench/setup-llama-cpp.sh (node-llama-cpp with its prebuilt binary, llama-quantize built from
// the llama.cpp sources that node-llama-cpp ships); skips with a message when they are missing. Build first:
//   npx turbo run build --filter=@bitsmith/cli...
//   bash packages/formats/bench/setup-llama-cpp.sh            # once: ~/.cache/bitsmith/llama-cpp
//   node packages/formats/bench/gguf-llama-cpp-check.mjs [--model ../shared/models/llama-docs-29m]
//     [--calibration ../shared/data/docs-calib.txt] [--eval ../shared/data/docs-dev-heldout.txt] [--eval-chars 20000]
//     [--ctx 512] [--samples 64] [--seq-len 512] [--tools DIR] [--out /tmp/gguf-llama-cpp-bench] [--only a,b]
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createLlamaGraph, evaluateLanguageModel, evaluationWindows, generateGreedy, loadLlamaModel, perplexityRatioInterval } from '@bitsmith/models';
import { ggufLlamaTensorName, imatrixImportance, readGguf, readImatrix, saveGgufModel } from '@bitsmith/formats';
import { llamaCppQ4KMRecipe } from '@bitsmith/cli';
import { llamaDocsOptions, log, option, requireOrSkip, run } from './llama-docs-bench.mjs';

const { root, modelDir, calibration, evalPath, evalChars, ctx, samples, seqLen, out, cli } = llamaDocsOptions({ samples: '64', out: '/tmp/gguf-llama-cpp-bench' });
const tools = resolve(option('tools', process.env.BITSMITH_LLAMA_CPP ?? join(process.env.HOME ?? '/tmp', '.cache/bitsmith/llama-cpp')));
const only = option('only', undefined)?.split(',');
const quantizeBin = join(tools, 'llama.cpp/build/bin/llama-quantize');
const benchBin = join(tools, 'llama.cpp/build/bin/llama-bench');
const nodeLlamaCpp = join(tools, 'node_modules/node-llama-cpp');
requireOrSkip(
  [
    ['the model', join(modelDir, 'model.safetensors')],
    ['llama-quantize (run bench/setup-llama-cpp.sh)', quantizeBin],
    ['node-llama-cpp (run bench/setup-llama-cpp.sh)', join(nodeLlamaCpp, 'dist/index.js')],
    ['the bitsmith CLI build (npx turbo run build --filter=@bitsmith/cli...)', cli],
  ],
  out,
);

// ---------------------------------------------------------------- artifacts
const model = await loadLlamaModel(modelDir);
const f16 = join(out, 'f16.gguf');
if (!existsSync(f16)) await saveGgufModel(f16, model.graph, modelDir, { type: 'F16' });
const imatrixPath = join(out, 'bitsmith.imatrix.gguf');
const imatrix = () => {
  if (!existsSync(imatrixPath)) run('node', [cli, 'imatrix', '--model', modelDir, '--calibration', calibration, '--out', imatrixPath, '--samples', samples, '--seq-len', seqLen]);
  return imatrixPath;
};
const llamaQuantize = (type, withImatrix) => () => {
  const path = join(out, `llama-quantize.${type}${withImatrix ? '.imatrix' : ''}.gguf`);
  if (!existsSync(path)) run(quantizeBin, [...(withImatrix ? ['--imatrix', imatrix()] : []), f16, path, type]);
  return path;
};
const ours = (type, withImatrix) => async () => {
  const path = join(out, `bitsmith.${type}${withImatrix ? '.imatrix' : ''}.gguf`);
  if (!existsSync(path)) await saveGgufModel(path, model.graph, modelDir, { type, ...(withImatrix ? { importance: imatrixImportance(await readImatrix(imatrix())) } : {}) });
  return path;
};
const cliQuantize = (name, args) => () => {
  const dir = join(out, name);
  if (!existsSync(join(dir, 'model.gguf'))) {
    const stdout = run('node', [cli, 'quantize', '--model', modelDir, '--calibration', calibration, '--samples', samples, '--seq-len', seqLen, '--out', dir, '--overwrite', ...args]);
    writeFileSync(join(out, `${name}.log`), stdout);
  }
  return join(dir, 'model.gguf');
};

const artifacts = [];
for (const a of [
  { id: 'f16', label: 'F16 (bitsmith export)', make: () => f16 },
  { id: 'lq-q4km', label: 'Q4_K_M, llama-quantize of the F16 export', make: llamaQuantize('Q4_K_M', false) },
  { id: 'lq-q4km-imatrix', label: "Q4_K_M, llama-quantize --imatrix (bitsmith's imatrix)", make: llamaQuantize('Q4_K_M', true) },
  { id: 'bs-q4km-imatrix', label: "Q4_K_M, bitsmith's encoders with the same imatrix", make: ours('Q4_K_M', true) },
  { id: 'bs-preset', label: 'Q4_K_M, bitsmith quantize --preset llama.cpp-q4_k_m --imatrix', make: () => cliQuantize('preset-q4km', ['--preset', 'llama.cpp-q4_k_m', '--imatrix', imatrix()])() },
  { id: 'bs-gptq-q4km', label: 'Q4_K_M, GPTQ onto the Q4_K/Q6_K grids (llamaCppQ4KMRecipe), re-derived', make: () => {
    const recipe = join(out, 'gptq-q4km.yaml');
    writeFileSync(recipe, llamaCppQ4KMRecipe(model.config.numHiddenLayers));
    return cliQuantize('gptq-q4km', ['--recipe', recipe, '--save', 'gguf', '--gguf-type', 'Q4_K_M'])();
  } },
  { id: 'lq-q40-imatrix', label: "Q4_0, llama-quantize --imatrix (bitsmith's imatrix)", make: llamaQuantize('Q4_0', true) },
  { id: 'bs-gptq-q40', label: 'Q4_0, GPTQ int4 g32 carried exactly', make: cliQuantize('gptq-q40', ['--recipe', join(root, 'examples/recipes/gptq-w4g32.yaml'), '--save', 'gguf', '--gguf-type', 'Q4_0']) },
]) {
  if (!only || only.includes(a.id)) artifacts.push({ ...a, path: await a.make() });
}

// Byte comparison of bitsmith's imatrix Q4_K_M with llama-quantize's (tensor by tensor).
const byteCheck = (() => {
  const [pa, pb] = ['bs-q4km-imatrix', 'lq-q4km-imatrix'].map((id) => artifacts.find((x) => x.id === id)?.path);
  if (!pa || !pb) return Promise.resolve({ error: 'not compared (--only left out bs-q4km-imatrix or lq-q4km-imatrix)' });
  const a = readGguf(pa);
  const b = readGguf(pb);
  return Promise.all([a, b]).then(([x, y]) => {
    let same = 0;
    let total = 0;
    const differing = [];
    for (const t of x.tensors) {
      const u = y.tensors.find((v) => v.name === t.name);
      if (!u) continue;
      total++;
      const p = x.tensorBytes(t.name);
      const q = y.tensorBytes(u.name);
      if (t.type === u.type && p.length === q.length && p.every((v, i) => v === q[i])) same++;
      else differing.push(`${t.name} (${t.type}/${u.type})`);
    }
    return { same, total, differing };
  }).catch((e) => ({ error: String(e) }));
})();

// ---------------------------------------------------------------- evaluation
const evalText = readFileSync(evalPath, 'utf8').slice(0, evalChars);
const ids = model.tokenizer.encode(evalText);
const bos = model.tokenizer.bosTokenId ?? model.config.bosTokenId;
const windows = evaluationWindows(ids, ctx, bos);
log(`evaluation: ${ids.length} tokens of ${evalPath} (first ${evalChars} characters), ${windows.length} windows of ctx ${ctx}`);

/** HF name -> decoded weights of a GGUF file (q/k rows put back in Hugging Face order). */
async function dequantizedGraph(path) {
  const file = await readGguf(path);
  const { config } = model.graph;
  const tensors = new Map();
  for (const [name, t] of model.graph.tensors()) {
    const g = ggufLlamaTensorName(name) ?? (name === 'lm_head.weight' ? 'output.weight' : undefined);
    let data = file.tensors.some((x) => x.name === g) ? file.tensorValues(g) : name === 'lm_head.weight' ? file.tensorValues('token_embd.weight') : t.data;
    const heads = /\.q_proj\./.test(name) ? config.numAttentionHeads : /\.k_proj\./.test(name) ? config.numKeyValueHeads : 0;
    if (heads > 0) {
      const columns = t.shape[1];
      const back = new Float32Array(data.length);
      const half = config.headDim / 2;
      for (let h = 0; h < heads; h++) for (let s = 0; s < 2; s++) for (let i = 0; i < half; i++) back.set(data.subarray((h * config.headDim + 2 * i + s) * columns, (h * config.headDim + 2 * i + s + 1) * columns), (h * config.headDim + s * half + i) * columns);
      data = back;
    }
    tensors.set(name, { ...t, data });
  }
  if (!tensors.has('lm_head.weight')) tensors.set('lm_head.weight', tensors.get('model.embed_tokens.weight'));
  return createLlamaGraph(model.config, (n) => tensors.get(n));
}

const { getLlama, LlamaLogLevel } = await import(pathToFileURL(join(nodeLlamaCpp, 'dist/index.js')).href);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel?.error ?? 'error' });
const prompts = ['The command line option', 'In the beginning God created', 'A dictionary is'];
const promptIds = prompts.map((p) => [bos, ...model.tokenizer.encode(p)]);
const greedyTokens = 32;

// The float model's log-probabilities at every scored position, once (bitsmith, float32 weights): the reference of
// the KL and top-1 columns, which compare llama.cpp's next-token distribution of each artifact with it.
log('float reference forward (bitsmith)');
const floatLogProbs = [];
const floatNll = new Float64Array(windows.length);
const floatTokens = new Int32Array(windows.length);
for (let w = 0; w < windows.length; w++) {
  const win = windows[w];
  const logits = await model.graph.forward([win]);
  const vocab = logits.shape[1];
  const lp = new Float32Array((win.length - 1) * vocab);
  for (let i = 0; i + 1 < win.length; i++) {
    const row = logits.data.subarray(i * vocab, (i + 1) * vocab);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const lse = max + Math.log(sum);
    for (let j = 0; j < vocab; j++) lp[i * vocab + j] = row[j] - lse;
    floatNll[w] -= lp[i * vocab + win[i + 1]];
    floatTokens[w]++;
  }
  floatLogProbs.push(lp);
}

async function llamaCppEval(path) {
  const lm = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const context = await lm.createContext({ contextSize: ctx, batchSize: ctx, sequences: 1 });
  const sequence = context.getSequence();
  const nll = new Float64Array(windows.length);
  const tokens = new Int32Array(windows.length);
  let kl = 0;
  let top1 = 0;
  let scored = 0;
  const vocab = model.graph.lmHead.outFeatures;
  const row = new Float64Array(vocab);
  for (let w = 0; w < windows.length; w++) {
    await sequence.clearHistory();
    const win = windows[w];
    const res = await sequence.controlledEvaluate(win.map((t, i) => (i + 1 < win.length ? [t, { generateNext: { logits: true } }] : t)));
    const ref = floatLogProbs[w];
    for (let i = 0; i + 1 < win.length; i++) {
      row.fill(-Infinity);
      for (const [token, logit] of res[i].next.logits) row[token] = logit;
      let max = -Infinity;
      let arg = 0;
      for (let j = 0; j < vocab; j++) if (row[j] > max) (max = row[j]), (arg = j);
      let sum = 0;
      for (let j = 0; j < vocab; j++) sum += Math.exp(row[j] - max);
      const lse = max + Math.log(sum);
      nll[w] -= row[win[i + 1]] - lse;
      tokens[w]++;
      let k = 0;
      let refArg = 0;
      for (let j = 0; j < vocab; j++) {
        const p = ref[i * vocab + j];
        if (p > ref[i * vocab + refArg]) refArg = j;
        k += Math.exp(p) * (p - (row[j] - lse));
      }
      kl += k;
      if (arg === refArg) top1++;
      scored++;
    }
  }
  // Greedy text: llama.cpp's own sampling at temperature 0, F16 KV cache.
  const greedy = [];
  for (const p of promptIds) {
    await sequence.clearHistory();
    const got = [];
    for await (const t of sequence.evaluate(p, { temperature: 0 })) {
      got.push(t);
      if (got.length >= greedyTokens) break;
    }
    greedy.push(got);
  }
  // Generation speed: llama.cpp's own llama-bench (tg128, 2 threads, 3 repetitions) when setup-llama-cpp.sh built it.
  // (Timing node-llama-cpp's token-by-token evaluate here measured about 1 token/s, an artifact of that path, not
  // llama.cpp's speed, so it is not used.)
  let tokensPerSecond = NaN;
  if (existsSync(benchBin)) {
    const out = run(benchBin, ['-m', path, '-p', '0', '-n', '128', '-t', '2', '-r', '3', '-o', 'json']);
    tokensPerSecond = JSON.parse(out.slice(out.indexOf('[')))[0]?.avg_ts ?? NaN;
  }
  await context.dispose();
  await lm.dispose();
  return { perWindow: { nll, tokens }, greedy, tokensPerSecond, kl: kl / scored, top1: top1 / scored };
}

const rows = [];
const baselineId = 'lq-q4km';
for (const a of artifacts) {
  let t0 = performance.now();
  const lap = (what) => {
    log(`  ${a.id}: ${what} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    t0 = performance.now();
  };
  const bytes = statSync(a.path).size;
  const llamaCpp = await llamaCppEval(a.path);
  lap('llama.cpp perplexity, greedy text and speed');
  const graph = await dequantizedGraph(a.path);
  const bitsmith = await evaluateLanguageModel(graph, ids, { ctx, bosTokenId: bos });
  lap('bitsmith perplexity');
  const ours = [];
  // bitsmith stops at the end-of-sequence token as llama.cpp does (node-llama-cpp ends generation there without
  // yielding it), so the two lists are compared to the same end. At a first difference, bitsmith's gap between its two
  // best logits says whether it is a near-tie (llama.cpp multiplies k-quant weights with activations quantized to
  // Q8_K, Q4_0 weights with Q8_0 activations, and F16 weights with F16 activations).
  const eos = model.config.eosTokenId ?? null;
  for (const p of promptIds) ours.push(await generateGreedy(graph, p, { maxNewTokens: greedyTokens, eosTokenId: eos }));
  const agree = [];
  for (const [i, o] of ours.entries()) {
    const generated = o[o.length - 1] === eos ? o.slice(0, -1) : o;
    const theirs = llamaCpp.greedy[i];
    let k = 0;
    while (k < generated.length && k < theirs.length && generated[k] === theirs[k]) k++;
    if (k === generated.length && k === theirs.length) {
      agree.push(`${k}/${k}${generated.length < o.length ? ' (to EOS)' : ''}`);
      continue;
    }
    const seq = [...promptIds[i], ...generated.slice(0, k)];
    const logits = await graph.forward([seq]);
    const vocab = logits.shape[1];
    let a = -Infinity;
    let b = -Infinity;
    for (const v of logits.data.subarray((seq.length - 1) * vocab, seq.length * vocab)) if (v > a) (b = a), (a = v); else if (v > b) b = v;
    agree.push(`${k} of ${Math.max(generated.length, theirs.length)} (gap ${(a - b).toFixed(3)})`);
  }
  const sumNll = (r) => r.perWindow.nll.reduce((s, v) => s + v, 0);
  const sumTokens = (r) => r.perWindow.tokens.reduce((s, v) => s + v, 0);
  rows.push({ ...a, bytes, llamaCpp, bitsmith, agree, llamaPpl: Math.exp(sumNll(llamaCpp) / sumTokens(llamaCpp)) });
}

// ---------------------------------------------------------------- report
const base = rows.find((r) => r.id === baselineId);
const asResult = (r) => ({ perWindow: r.perWindow, nll: 0 });
const fmt = (x, d = 3) => Number(x).toFixed(d);
const lines = [
  `model ${modelDir}; eval ${evalPath} (first ${evalChars} characters: ${ids.length} tokens, ${windows.length} windows of [BOS] + ${ctx - 1}); calibration ${calibration} (${samples} x ${seqLen} tokens)`,
  `float model (bitsmith): perplexity ${fmt(Math.exp(floatNll.reduce((a, b) => a + b, 0) / floatTokens.reduce((a, b) => a + b, 0)))}`,
  '',
  '| artifact | file MiB | ppl llama.cpp | ppl bitsmith (same weights) | ppl ratio vs llama-quantize Q4_K_M (95% paired bootstrap over windows, llama.cpp) | KL to float (nats/token, llama.cpp vs bitsmith float) | top-1 agreement with float | greedy tokens equal, llama.cpp vs bitsmith (up to 32 or EOS, 3 prompts; at a difference, the top-2 logit gap in bitsmith) | tokens/s, llama-bench tg128, 2 threads |',
  '|---|---|---|---|---|---|---|---|---|',
];
for (const r of rows) {
  const vs = base && r !== base ? perplexityRatioInterval(asResult(base.llamaCpp), asResult(r.llamaCpp)) : undefined;
  lines.push(
    `| ${r.label} | ${fmt(r.bytes / 2 ** 20, 2)} | ${fmt(r.llamaPpl)} | ${fmt(r.bitsmith.perplexity)} | ${vs ? `${fmt(vs.ratio, 4)} [${fmt(vs.low, 4)}, ${fmt(vs.high, 4)}]` : '-'} | ${fmt(r.llamaCpp.kl, 4)} | ${fmt(r.llamaCpp.top1, 4)} | ${r.agree.join(', ')} | ${Number.isFinite(r.llamaCpp.tokensPerSecond) ? fmt(r.llamaCpp.tokensPerSecond, 0) : '- (no llama-bench)'} |`,
  );
}
const check = await byteCheck;
lines.push('', `bitsmith's Q4_K_M with the imatrix vs llama-quantize --imatrix: ${check.error ? check.error : `${check.same}/${check.total} tensors byte-identical${check.differing.length ? `; differing: ${check.differing.join(', ')}` : ''}`}`);
console.log(lines.join('\n'));
writeFileSync(join(out, 'results.md'), `${lines.join('\n')}\n`);
await llama.dispose?.();
