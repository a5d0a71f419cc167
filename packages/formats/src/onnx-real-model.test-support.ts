/**
 * Test support shared by the vitest check and `bench/onnx-check.mjs`'s logic: tinystories-656k exported to ONNX (float
 * and GPTQ w4 g32 MatMulNBits), run in onnxruntime-node and compared with bitsmith's own forward pass.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { QuantizedTensor } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { evaluateLanguageModel, evaluationWindows, llamaQuantizableModel, loadLlamaModel, type LlamaGraph } from '@bitsmith/models';
import { runRecipe } from '@bitsmith/recipe';
import { gptq } from '@bitsmith/solvers';
import { buildLlamaOnnx } from './onnx-export.js';
import { decoderShape, ortLogits, SESSION_OPTIONS, type OrtLike } from './onnx-ort.test-support.js';
import type { OnnxDecoderShape } from './onnx-decoder-feeds.js';

export const SHARED_DIR = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(dirname(fileURLToPath(import.meta.url)), '../../../../shared');
export const TINYSTORIES_DIR = join(SHARED_DIR, 'models', 'tinystories-656k');
export const CALIBRATION_TEXT = join(SHARED_DIR, 'data', 'calib.txt');
export const DEV_TEXT = join(SHARED_DIR, 'data', 'dev-heldout.txt');
/** Outside CI a missing shared folder skips real-model tests (with a message); in CI they run. */
export const SKIP_SHARED = !existsSync(join(TINYSTORIES_DIR, 'model.safetensors')) && process.env.CI !== 'true';
if (SKIP_SHARED) console.warn(`[bitsmith] skipping real-model ONNX tests: ${TINYSTORIES_DIR} not found (in CI these tests run)`);

/** Loads tinystories-656k on the js backend with its tokenizer and the dev text's token ids. */
export async function loadTinyStories() {
  const backend = createJsBackend();
  const model = await loadLlamaModel(TINYSTORIES_DIR, { backend });
  const devIds = model.tokenizer.encode(readFileSync(DEV_TEXT, 'utf8'), { bos: false });
  return { backend, model, graph: model.graph, devIds };
}

/**
 * Quantizes the graph in place with GPTQ w4 g32 (symmetric int4, float16 scales) through `runRecipe`, calibrated on
 * `sequences` BOS + 127-token windows of calib.txt, and returns the quantized tensors by layer name.
 */
export async function quantizeGptqW4G32(graph: LlamaGraph, sequences = 16): Promise<Map<string, QuantizedTensor>> {
  const backend = graph.backend;
  const { tokenizer } = await loadLlamaModel(TINYSTORIES_DIR, { backend });
  const ids = tokenizer.encode(readFileSync(CALIBRATION_TEXT, 'utf8'), { bos: false });
  const bos = graph.config.bosTokenId ?? 1;
  const calibration = Array.from({ length: sequences }, (_, i) => [bos, ...ids.slice(i * 127, (i + 1) * 127)]);
  const quantized = new Map<string, QuantizedTensor>();
  const step = gptq({ format: 'int4', granularity: { type: 'group', size: 32 }, backend });
  await runRecipe(llamaQuantizableModel(graph), [step], calibration, { backend, onQuantized: (name, q) => void quantized.set(name, q) });
  return quantized;
}

/** Largest |a - b| and the index where it occurs. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Logits of ONNX vs bitsmith on `count` full dev windows ([BOS] + 127 tokens), run as one batch; returns the largest
 * absolute difference and the largest |logit|.
 */
export async function compareLogits(ort: OrtLike, bytes: Uint8Array, graph: LlamaGraph, devIds: ArrayLike<number>, count: number) {
  const windows = evaluationWindows(devIds, 128, graph.config.bosTokenId ?? 1)
    .filter((w) => w.length === 128)
    .slice(0, count);
  const session = await ort.InferenceSession.create(bytes, SESSION_OPTIONS);
  try {
    const onnxLogits = await ortLogits(ort, session, windows, decoderShape(graph));
    const ours = (await graph.forward(windows)).data;
    let maxLogit = 0;
    for (const v of ours) maxLogit = Math.max(maxLogit, Math.abs(v));
    return { maxDiff: maxAbsDiff(onnxLogits, ours), maxLogit, windows: windows.length, tokens: windows.length * 128 };
  } finally {
    await session.release();
  }
}

/**
 * Perplexity in onnxruntime under the protocol of `evaluateLanguageModel` (ctx 128: non-overlapping [BOS] + 127-token
 * windows, each text token scored once, natural log), windows of one length run in batches of `batchSize`.
 */
export async function onnxPerplexity(ort: OrtLike, bytes: Uint8Array, tokenIds: ArrayLike<number>, vocab: number, bos: number, shape: OnnxDecoderShape, ctx = 128, batchSize = 16) {
  const windows = evaluationWindows(tokenIds, ctx, bos);
  const session = await ort.InferenceSession.create(bytes, SESSION_OPTIONS);
  let nll = 0;
  let scored = 0;
  try {
    for (let start = 0; start < windows.length; ) {
      const length = windows[start]!.length;
      let end = start;
      while (end < windows.length && end - start < batchSize && windows[end]!.length === length) end++;
      const batch = windows.slice(start, end);
      const logits = await ortLogits(ort, session, batch, shape);
      batch.forEach((w, b) => {
        for (let p = 0; p < w.length - 1; p++) {
          const o = (b * length + p) * vocab;
          let max = -Infinity;
          for (let j = 0; j < vocab; j++) max = Math.max(max, logits[o + j]!);
          let sum = 0;
          for (let j = 0; j < vocab; j++) sum += Math.exp(logits[o + j]! - max);
          nll -= logits[o + w[p + 1]!]! - max - Math.log(sum);
          scored++;
        }
      });
      start = end;
    }
  } finally {
    await session.release();
  }
  return { perplexity: Math.exp(nll / scored), tokens: scored, windows: windows.length };
}

/** Everything the check measures, for the test and the bench script. */
export async function runOnnxCheck(
  ort: OrtLike,
  options: { compareWindows?: number; calibrationSequences?: number; floatPerplexity?: boolean; perplexityTokens?: number; log?: (line: string) => void } = {},
) {
  const log = options.log ?? (() => {});
  const { graph, devIds } = await loadTinyStories();
  const vocab = graph.config.vocabSize;
  const bos = graph.config.bosTokenId ?? 1;
  const count = options.compareWindows ?? 8;

  const float = await buildLlamaOnnx(graph, new Map());
  const floatLogits = await compareLogits(ort, float.bytes, graph, devIds, count);
  log(`float export: ${float.bytes.length} bytes; logits max |diff| ${floatLogits.maxDiff.toExponential(3)} over ${floatLogits.tokens} tokens (max |logit| ${floatLogits.maxLogit.toFixed(2)})`);
  let floatPerplexity: { onnx: number; ours: number } | undefined;
  if (options.floatPerplexity !== false) {
    const onnx = (await onnxPerplexity(ort, float.bytes, devIds, vocab, bos, decoderShape(graph))).perplexity;
    const ours = (await evaluateLanguageModel(graph, devIds)).perplexity;
    floatPerplexity = { onnx, ours };
    log(`float perplexity: onnxruntime ${onnx.toFixed(6)}, bitsmith ${ours.toFixed(6)}`);
  }

  const quantized = await quantizeGptqW4G32(graph, options.calibrationSequences);
  const q4 = await buildLlamaOnnx(graph, quantized);
  const q4Logits = await compareLogits(ort, q4.bytes, graph, devIds, count);
  log(`GPTQ w4 g32 MatMulNBits export: ${q4.bytes.length} bytes, ${q4.matMulNBits.length} MatMulNBits nodes; logits max |diff| vs dequantized model ${q4Logits.maxDiff.toExponential(3)} over ${q4Logits.tokens} tokens`);
  // The test compares perplexity on a prefix (the agreement does not depend on the length); the bench on everything.
  const pplIds = options.perplexityTokens === undefined ? devIds : devIds.slice(0, options.perplexityTokens);
  const q4OnnxPpl = await onnxPerplexity(ort, q4.bytes, pplIds, vocab, bos, decoderShape(graph));
  const q4Ours = await evaluateLanguageModel(graph, pplIds);
  log(`GPTQ w4 g32 perplexity: onnxruntime ${q4OnnxPpl.perplexity.toFixed(6)}, bitsmith ${q4Ours.perplexity.toFixed(6)} (${q4Ours.tokens} tokens, ${q4Ours.windows} windows of ctx 128)`);
  return { float, floatLogits, floatPerplexity, quantized, q4, q4Logits, q4OnnxPpl, q4Ours, graph };
}
