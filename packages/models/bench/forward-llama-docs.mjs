// Forward-pass speed on llama-docs-29m against onnxruntime-node running the float ONNX export of the same model
// (@bitsmith/formats' exporter) on the same tokens, in one run; and the batched calibration pass's GFLOP/s against
// the machine's float32 GEMM throughput measured in the same run.
// The reference pass is also run with the ort backend's helper threads off (referenceThreads 1), in alternating rounds.
// Usage: node packages/models/bench/forward-llama-docs.mjs [--windows 8] [--ctx 512] [--batch 8] [--rounds 5]   (after building)
// Skips with a message when ../shared/models/llama-docs-29m, onnxruntime-node or @bitsmith/formats is missing.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { StatisticsCollector } from '@bitsmith/core';
import { blockWithHessians } from './hessian-pass.mjs';
import { createBackend } from '@bitsmith/linalg';
import { evaluateLanguageModel, evaluationWindows, loadLlamaModel } from '@bitsmith/models';

// As the `bitsmith` command runs: on glibc, once more in a child process with the allocator settings of
// packages/cli/src/malloc-tunables.ts (most fresh-page faults spared); BITSMITH_MALLOC_TUNABLES=0 measures without.
const tunables = await import(new URL('../../cli/dist/malloc-tunables.js', import.meta.url).href).catch(() => undefined);
if (tunables && !(await tunables.relaunchWithMallocTunables())) await tunables.watchParent();

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const windowCount = Number(args.windows ?? 8);
const ctx = Number(args.ctx ?? 512);
const batch = Number(args.batch ?? 8);
const rounds = Number(args.rounds ?? 5);
const shared = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(dirname(fileURLToPath(import.meta.url)), '../../../../shared');
const dir = join(shared, 'models', 'llama-docs-29m');
const textPath = join(shared, 'data', 'dev-heldout.txt');

async function optional(specifier) {
  try {
    const module = await import(specifier);
    return module.InferenceSession ? module : (module.default ?? module);
  } catch {
    return undefined;
  }
}

// The collector, for a full collection between timed rounds (the flag set at run time, as `node --expose-gc` would).
v8.setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc');

const seconds = (t) => (performance.now() - t) / 1000;
const loadAverage = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
async function best(runs, fn) {
  let min = Infinity;
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    await fn();
    min = Math.min(min, seconds(t));
  }
  return min;
}

if (!existsSync(join(dir, 'model.safetensors')) || !existsSync(textPath)) {
  console.log(`forward (llama-docs-29m): skipped, ${dir} or ${textPath} is missing`);
} else {
  const backend = await createBackend('ort');
  const threads = backend.threads;
  const { graph, tokenizer } = await loadLlamaModel(dir, { backend });
  const c = graph.config;
  const ids = tokenizer.encode(readFileSync(textPath, 'utf8'));
  const windows = evaluationWindows(ids, ctx, c.bosTokenId ?? 1)
    .filter((w) => w.length === ctx)
    .slice(0, windowCount);
  const tokens = windows.length * ctx;
  const batches = [];
  for (let i = 0; i < windows.length; i += batch) batches.push(windows.slice(i, i + batch));
  console.log(`glibc malloc tunables: ${process.env.GLIBC_TUNABLES || 'none'}`);
  console.log(`llama-docs-29m: ${windows.length} windows of ${ctx} tokens (${tokens} tokens), batches of ${batch}, ${threads} threads; load average ${loadAverage()}`);

  // GEMM throughput of this machine now: float32 2048^3 through the same backend, best of 3.
  const g = 2048;
  const ga = new Float32Array(g * g).fill(0.5);
  const gc = new Float32Array(g * g);
  await backend.sgemm({ m: g, n: g, k: g, a: ga, b: ga, c: gc });
  const gemmGflops = (2 * g ** 3) / (await best(3, () => backend.sgemm({ m: g, n: g, k: g, a: ga, b: ga, c: gc }))) / 1e9;

  // bitsmith: the full forward (logits of every token), as evaluation runs it; warmed up on the first batch (as
  // onnxruntime below), so that both sides' one-time work (sessions, packed weights) is outside the timing.
  // As evaluation runs it: one logits array for every batch (evaluateLanguageModel's), as onnxruntime reuses its arena.
  const logits = new Float32Array(batch * ctx * c.vocabSize);
  await graph.forward(batches[0], { logits });
  const forwardOnce = async () => {
    for (const b of batches) await graph.forward(b, { logits });
  };

  // Calibration pass: embedding and every block with an observer on every linear input, no head.
  let observed = 0;
  const observer = (e) => {
    observed += e.input.data.length > 0 ? 1 : 0;
  };
  // As the calibration model runs it: the backend's reference attention and activation (bit for bit the same
  // statistics on every backend and release); the native kernels' time is printed beside it.
  const calibrationWith = (reference, runs) =>
    best(runs, async () => {
      for (const b of batches) {
        let h = graph.embed(b);
        for (const block of graph.blocks) h = await graph.runBlock(block.index, h, { observer, reference });
      }
    });
  const linearParameters = graph.linearLayers().reduce((s, l) => s + l.inFeatures * l.outFeatures, 0);
  // Useful flops: 2 per weight per token, plus the causal attention's two products (2 * i * d per head per query and product).
  let attentionFlops = 0;
  for (const w of windows) attentionFlops += c.numHiddenLayers * c.numAttentionHeads * 2 * 2 * ((w.length * (w.length + 1)) / 2) * c.headDim;
  const usefulFlops = 2 * linearParameters * tokens + attentionFlops;
  // A same-shape reference beside the 2048^3 one: the pass's own linear-layer products replayed alone, every block's
  // seven weights as the pass multiplies them (batch x ctx rows, the weight transposed, through the same sgemm, into
  // reused outputs), nothing else; its GFLOP/s says how fast these shapes run on this machine now.
  const linearShapes = graph.linearLayers().map((l) => ({ n: l.outFeatures, k: l.inFeatures, b: l.weight.data }));
  const replayRows = batch * ctx;
  const replayA = new Float32Array(replayRows * Math.max(...linearShapes.map((s) => s.k))).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const replayC = new Float32Array(replayRows * Math.max(...linearShapes.map((s) => s.n)));
  const replayFlops = linearShapes.reduce((f, s) => f + 2 * replayRows * s.n * s.k, 0);
  const replayLinears = async () => {
    for (const s of linearShapes) await backend.sgemm({ m: replayRows, n: s.n, k: s.k, a: replayA, b: s.b, c: replayC, transB: true });
  };
  await replayLinears();
  let replayBest = 0;
  // Rounds of (GEMM throughput, calibration pass) back to back, so that each ratio compares the two in the same phase
  // of a shared machine; the first pass (sessions, kernel memory) is a warm-up outside the rounds.
  await calibrationWith(true, 1);
  // The machine's GEMM throughput: the best of every 2048^3 measurement in the run. A measurement right after a pass
  // can be far lower (146-153 GFLOP/s after passes with Hessians against 230-311 elsewhere in one run: the allocator's
  // state), so ratios to the same round's GEMM flatter the pass; the ratio to the run's best does not.
  let gemmBest = gemmGflops;
  let calibration = Infinity;
  const calibrationRatios = [];
  for (let r = 0; r < rounds; r++) {
    const gemmNow = (2 * g ** 3) / (await best(2, () => backend.sgemm({ m: g, n: g, k: g, a: ga, b: ga, c: gc }))) / 1e9;
    gemmBest = Math.max(gemmBest, gemmNow);
    replayBest = Math.max(replayBest, replayFlops / (await best(1, replayLinears)) / 1e9);
    const pass = await calibrationWith(true, 1);
    calibration = Math.min(calibration, pass);
    calibrationRatios.push(usefulFlops / pass / 1e9 / gemmNow);
    console.log(`  calibration round ${r + 1}: GEMM ${gemmNow.toFixed(1)} GFLOP/s, pass ${pass.toFixed(2)} s (${(usefulFlops / pass / 1e9).toFixed(1)} GFLOP/s), ratio ${(usefulFlops / pass / 1e9 / gemmNow).toFixed(2)}`);
  }
  calibrationRatios.sort((a, b) => a - b);
  const calibrationMedianRatio = calibrationRatios[Math.floor(calibrationRatios.length / 2)];
  const calibrationNative = await calibrationWith(false, 3);
  const calibrationGflops = usefulFlops / calibration / 1e9;

  // The same reference pass with the backend's helper threads off (referenceThreads 1: attention's copies and softmax
  // rows and the SiLU gate on the calling thread alone, attention's products on every MLAS thread), in rounds
  // alternating with the default (helpers on), so that both see the same phases of a shared machine.
  let helpersLine = 'the pass without helper threads: skipped (one thread)';
  if (threads > 1) {
    const alone = await createBackend('ort', { referenceThreads: 1 });
    const { graph: graphAlone } = await loadLlamaModel(dir, { backend: alone });
    const passOn = (model) => async () => {
      for (const b of batches) {
        let h = model.embed(b);
        for (const block of model.blocks) h = await model.runBlock(block.index, h, { observer, reference: true });
      }
    };
    await best(1, passOn(graphAlone));
    let aloneBest = Infinity;
    let sharedBest = Infinity;
    for (let r = 0; r < Math.min(rounds, 3); r++) {
      aloneBest = Math.min(aloneBest, await best(1, passOn(graphAlone)));
      sharedBest = Math.min(sharedBest, await best(1, passOn(graph)));
    }
    await alone.dispose();
    helpersLine =
      `the same pass, best of alternating rounds: ${threads - 1} reference helper thread(s) ${sharedBest.toFixed(2)} s (${(usefulFlops / sharedBest / 1e9).toFixed(1)} GFLOP/s), ` +
      `calling thread alone (referenceThreads 1) ${aloneBest.toFixed(2)} s (${(usefulFlops / aloneBest / 1e9).toFixed(1)} GFLOP/s): ${(aloneBest / sharedBest).toFixed(2)}x`;
  }

  // The same pass as the recipe runner runs it for GPTQ: every block with @bitsmith/core's StatisticsCollector
  // (Hessians of the block's four distinct linear inputs, q/k/v and gate/up sharing one; finite-input checks) and the
  // reference kernels. Useful flops add 2 d^2 per token and distinct input, as the scale bench's bound counts them.
  const recipe = await optional('@bitsmith/recipe');
  let hessianLine = '@bitsmith/recipe not available: the pass with Hessians skipped';
  let hessianMedianRatio;
  let hessianBestRatio;
  if (recipe?.finiteInputs) {
    const qDim = c.numAttentionHeads * c.headDim;
    const hessianFlops = c.numHiddenLayers * 2 * tokens * (c.hiddenSize ** 2 + qDim ** 2 + c.hiddenSize ** 2 + c.intermediateSize ** 2);
    const withHessians = async () => {
      const t0 = performance.now();
      for (const b of batches) {
        let h = graph.embed(b);
        for (const block of graph.blocks) {
          // q/k/v and gate/up share one Hessian, declared as the runner declares them (sharedInputGroups).
          const pass = await blockWithHessians({ graph, block, h, backend, StatisticsCollector, recipe });
          h = pass.output;
          for (const name of pass.names) pass.collector.statistics(name);
        }
      }
      return seconds(t0);
    };
    await withHessians();
    const ratios = [];
    let bestPass = Infinity;
    for (let r = 0; r < rounds; r++) {
      const gemmNow = (2 * g ** 3) / (await best(2, () => backend.sgemm({ m: g, n: g, k: g, a: ga, b: ga, c: gc }))) / 1e9;
      gemmBest = Math.max(gemmBest, gemmNow);
      const pass = await withHessians();
      bestPass = Math.min(bestPass, pass);
      const gflops = (usefulFlops + hessianFlops) / pass / 1e9;
      ratios.push(gflops / gemmNow);
      console.log(`  with Hessians, round ${r + 1}: GEMM ${gemmNow.toFixed(1)} GFLOP/s, pass ${pass.toFixed(2)} s (${gflops.toFixed(1)} GFLOP/s), ratio ${(gflops / gemmNow).toFixed(2)}`);
    }
    ratios.sort((a, b) => a - b);
    hessianMedianRatio = ratios[Math.floor(ratios.length / 2)];
    hessianBestRatio = (usefulFlops + hessianFlops) / bestPass / 1e9 / gemmBest;
    hessianLine =
      `calibration pass with Hessians (the runner's StatisticsCollector, ${((usefulFlops + hessianFlops) / 1e9).toFixed(0)} GFLOP useful): best ${bestPass.toFixed(2)} s, ` +
      `${((usefulFlops + hessianFlops) / bestPass / 1e9).toFixed(1)} GFLOP/s, ratio to the run's best GEMM ${hessianBestRatio.toFixed(2)} (target >= 0.5); ` +
      `median of the rounds' ratios to the same round's GEMM ${hessianMedianRatio.toFixed(2)} (${ratios.map((x) => x.toFixed(2)).join(' ')})`;
  }

  // Evaluation of the whole text at this ctx (the `bitsmith eval` path: forward + log-softmax per token).
  let t = performance.now();
  const evaluation = await evaluateLanguageModel(graph, ids, { ctx, batchSize: batch });
  const evalTime = seconds(t);

  let ours = Infinity;
  let ortLine = 'onnxruntime-node or @bitsmith/formats not available: ORT comparison skipped';
  let ortTokensPerSecond;
  let pairedMedian;
  const ort = await optional('onnxruntime-node');
  const formats = await optional('@bitsmith/formats');
  if (ort && formats?.buildLlamaOnnx) {
    const { bytes } = await formats.buildLlamaOnnx(graph, new Map(), { maxPositions: ctx });
    // Idle threads block, as in bitsmith's ort backend: with onnxruntime's default spinning, its pool kept taking CPU
    // from the next round of bitsmith's forward (measured 2.1-2.3 s after an onnxruntime run against 1.8 s without
    // spinning) while its own time did not improve (1.5-2.5 s with, 1.5-1.8 s without).
    const session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    // The exporter's feeds (empty key/value cache, all-ones mask, positions), as transformers.js runs the model.
    const shape = { layers: c.numHiddenLayers, numKeyValueHeads: c.numKeyValueHeads, headDim: c.headDim };
    const feeds = batches.map((b) => formats.onnxDecoderFeeds(ort.Tensor, b, shape));
    await session.run(feeds[0]);
    // Alternate rounds (ours, theirs) so that both see the same phases of a shared machine; best round of each.
    let ortTime = Infinity;
    const paired = [];
    for (let r = 0; r < rounds; r++) {
      // Each side's garbage (onnxruntime-node hands its 134 MB of logits back as a new array every run; the phases
      // above leave theirs) is collected before the other side's timed round, not inside it.
      collectGarbage();
      const mine = await best(1, forwardOnce);
      collectGarbage();
      const theirs = await best(1, async () => {
        for (const f of feeds) await session.run(f);
      });
      ours = Math.min(ours, mine);
      ortTime = Math.min(ortTime, theirs);
      paired.push(theirs / mine);
      console.log(`  round ${r + 1}: bitsmith ${mine.toFixed(2)} s, onnxruntime ${theirs.toFixed(2)} s, tokens/s ratio ${(theirs / mine).toFixed(2)}`);
    }
    paired.sort((a, b) => a - b);
    pairedMedian = paired[Math.floor(paired.length / 2)];
    // Agreement check on the first batch.
    const theirs = (await session.run(feeds[0])).logits.data;
    const mine = (await graph.forward(batches[0])).data;
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < mine.length; i++) {
      diff = Math.max(diff, Math.abs(mine[i] - theirs[i]));
      scale = Math.max(scale, Math.abs(theirs[i]));
    }
    await session.release();
    ortTokensPerSecond = tokens / ortTime;
    ortLine = `onnxruntime-node ${ort.env?.versions?.common ?? ''} (float ONNX export, ${threads} threads): ${ortTokensPerSecond.toFixed(0)} tokens/s (${ortTime.toFixed(2)} s); max |logit diff| ${diff.toExponential(2)} of max |logit| ${scale.toFixed(1)}`;
  }
  if (!Number.isFinite(ours)) ours = await best(rounds, forwardOnce);
  const oursTokensPerSecond = tokens / ours;
  console.log(`bitsmith forward (ort backend): ${oursTokensPerSecond.toFixed(0)} tokens/s (${ours.toFixed(2)} s)`);
  console.log(ortLine);
  if (ortTokensPerSecond) console.log(`bitsmith / onnxruntime tokens/s: ${(oursTokensPerSecond / ortTokensPerSecond).toFixed(2)} best round against best round, ${pairedMedian.toFixed(2)} median of the rounds' ratios (target >= 0.8)`);
  console.log(
    `calibration pass (blocks with observers, batches of ${batch}): best ${calibration.toFixed(2)} s, ${calibrationGflops.toFixed(1)} GFLOP/s of useful work; ` +
      `float32 GEMM ${g}^3, best of the run: ${gemmBest.toFixed(1)} GFLOP/s; ratio ${(calibrationGflops / gemmBest).toFixed(2)} (target >= 0.5); ` +
      `median of the rounds' ratios to the same round's GEMM ${calibrationMedianRatio.toFixed(2)} (${calibrationRatios.map((x) => x.toFixed(2)).join(' ')})`,
  );
  console.log(
    `  (same-shape reference: the pass's ${linearShapes.length} linear products of ${replayRows} rows replayed alone, best of the rounds: ${replayBest.toFixed(1)} GFLOP/s; ` +
      `the pass's useful GFLOP/s / that ${(calibrationGflops / replayBest).toFixed(2)})`,
  );
  console.log(`  (the same pass on the backend's native attention and activation: ${calibrationNative.toFixed(2)} s, ${((calibrationGflops * calibration) / calibrationNative).toFixed(1)} GFLOP/s)`);
  console.log(`  (${helpersLine})`);
  console.log(hessianLine);
  console.log(`evaluate ${evaluation.tokens} tokens at ctx ${ctx}: ${evalTime.toFixed(1)} s, perplexity ${evaluation.perplexity.toFixed(4)}`);
  console.log(`load average at the end: ${loadAverage()}`);
  console.log(
    JSON.stringify({
      model: 'llama-docs-29m',
      threads,
      tokens,
      ctx,
      batch,
      oursTokensPerSecond,
      ortTokensPerSecond,
      ratio: ortTokensPerSecond ? oursTokensPerSecond / ortTokensPerSecond : undefined,
      pairedMedianRatio: pairedMedian,
      calibrationGflops,
      calibrationSeconds: calibration,
      calibrationMedianRatio,
      hessianMedianRatio,
      hessianBestRatio,
      gemmBestGflops: gemmBest,
      calibrationBestRatio: calibrationGflops / gemmBest,
      linearReplayGflops: replayBest,
      calibrationNativeSeconds: calibrationNative,
      gemmGflops,
      evalSeconds: evalTime,
      evalTokens: evaluation.tokens,
      perplexity: evaluation.perplexity,
      observedInputs: observed,
    }),
  );
  await backend.dispose();
}
