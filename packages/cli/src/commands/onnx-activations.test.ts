import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onnxDecoderFeeds } from '@bitsmith/formats';
import { evaluateLanguageModel, evaluationWindows } from '@bitsmith/models';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultRegistry } from '../default-registry.js';
import { runQuantizeJob, writeQuantizedModel } from './quantize.js';

// W8A8 recipes (`inputActivations`) written with --save onnx: the activation quantizers become QDQ / float nodes in
// the graph, and perplexity through onnxruntime-node equals bitsmith's simulation of the same run (tinystories-656k).
const SHARED = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(dirname(fileURLToPath(import.meta.url)), '../../../../../shared');
const MODEL = join(SHARED, 'models', 'tinystories-656k');
const SKIP = !existsSync(join(MODEL, 'model.safetensors')) && process.env.CI !== 'true';
if (SKIP) console.warn(`[bitsmith] skipping the W8A8 ONNX check: ${MODEL} not found (in CI it runs)`);
const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-onnx-w8a8-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const quiet = { stdout: () => undefined, stderr: () => undefined };

async function loadOrt(): Promise<any> {
  try {
    const specifier: string = 'onnxruntime-node';
    const module = (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;
    return module.InferenceSession ? module : module.default;
  } catch {
    return undefined;
  }
}
const ort = await loadOrt();

describe.skipIf(SKIP || !ort)('--save onnx of W8A8 recipes (tinystories-656k, onnxruntime-node)', () => {
  it.each([
    ['static per-tensor int8 (QuantizeLinear/DequantizeLinear)', '{ format: int8, granularity: tensor, dynamic: false }'],
    ['dynamic per-token int8', '{ format: int8, granularity: token, dynamic: true }'],
  ])('%s: perplexity through onnxruntime equals bitsmith\'s simulation within 1e-3', async (_label, activations) => {
    const recipe = join(tmp, `w8a8-${activations.includes('true') ? 'dynamic' : 'static'}.yaml`);
    writeFileSync(recipe, `name: w8a8\ninputActivations: ${activations}\nsteps:\n  - rtn: { bits: 8, granularity: channel }\n`);
    const options = { model: MODEL, recipe, calibration: join(SHARED, 'data', 'calib.txt'), out: join(tmp, `out-${activations.length}`), samples: '4', seqLen: '64' };
    const job = await runQuantizeJob(options, defaultRegistry, quiet);
    await writeQuantizedModel(job, { ...options, save: 'onnx' }, quiet);
    const file = join(options.out, 'onnx', 'model_quantized.onnx');
    expect(existsSync(file)).toBe(true);
    const graph = job.loaded.graph;
    expect(graph.linearLayers().filter((l) => l.inputTransform).length).toBe(14);
    const ids = job.loaded.tokenizer.encode(readFileSync(join(SHARED, 'data', 'dev-heldout.txt'), 'utf8'), { bos: false }).slice(0, 1016);
    const bos = graph.config.bosTokenId ?? 1;
    const windows = evaluationWindows(ids, 128, bos);
    const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 2, interOpNumThreads: 1, logSeverityLevel: 3 });
    const shape = { layers: graph.blocks.length, numKeyValueHeads: graph.config.numKeyValueHeads, headDim: graph.config.headDim };
    const vocab = graph.config.vocabSize;
    let nll = 0;
    let scored = 0;
    for (const w of windows) {
      const logits = (await session.run(onnxDecoderFeeds(ort.Tensor, [w], shape))).logits.data as Float32Array;
      for (let p = 0; p < w.length - 1; p++) {
        let max = -Infinity;
        for (let j = 0; j < vocab; j++) max = Math.max(max, logits[p * vocab + j]!);
        let sum = 0;
        for (let j = 0; j < vocab; j++) sum += Math.exp(logits[p * vocab + j]! - max);
        nll -= logits[p * vocab + w[p + 1]!]! - max - Math.log(sum);
        scored++;
      }
    }
    await session.release();
    const ours = await evaluateLanguageModel(graph, ids, { ctx: 128, bosTokenId: bos });
    console.log(`${_label}: onnxruntime ${Math.exp(nll / scored).toFixed(6)}, bitsmith ${ours.perplexity.toFixed(6)} (${scored} tokens)`);
    expect(scored).toBe(ours.tokens);
    expect(Math.abs(Math.exp(nll / scored) - ours.perplexity) / ours.perplexity).toBeLessThan(1e-3);
  });
});
