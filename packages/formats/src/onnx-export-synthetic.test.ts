import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, parseFormat, quantize, UnsupportedFormatError, type Granularity } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { loadLlamaGraph, ropeInverseFrequencies } from '@bitsmith/models';
import { describe, expect, it } from 'vitest';
import { buildLlamaOnnx } from './onnx-export.js';
import { quantizeLayers, syntheticGraph } from './onnx-synthetic.test-support.js';
import { onnxRopeInverseFrequencies } from './onnx-llama-graph.js';
import { decoderShape, loadOrt, ortLogits, SESSION_OPTIONS } from './onnx-ort.test-support.js';
import { readMatMulNBits, saveOnnxModel } from './onnx-file.js';

const ort = await loadOrt();
const sequences = [
  [1, 5, 9, 13, 2, 40, 41, 7, 7, 3, 22, 30],
  [1, 49, 0, 8, 16, 33, 12, 11, 10, 4, 6, 25],
];

describe.skipIf(!ort)('ONNX export of synthetic Llama-family models in onnxruntime-node', () => {
  const families: Array<[string, Record<string, unknown>, (name: string) => [string, Granularity] | undefined]> = [
    ['llama, tied embeddings, float', { model_type: 'llama', tie_word_embeddings: true }, () => undefined],
    [
      'qwen2 (q/k/v biases), untied, int4-asym g16 attention, int8 per-channel MLP and LM head',
      { model_type: 'qwen2', tie_word_embeddings: false },
      (name) => (name.includes('self_attn') ? ['int4-asym', { type: 'group', size: 16 }] : ['int8', { type: 'channel' }]),
    ],
    ['mistral, sliding window 5, int2 g32 MLP', { model_type: 'mistral', sliding_window: 5, rope_theta: 500000 }, (name) => (name.includes('mlp') ? ['int2', { type: 'group', size: 32 }] : undefined)],
    [
      'llama with llama3 RoPE scaling and attention_bias, int4 g32 everywhere',
      { model_type: 'llama', attention_bias: true, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 } },
      () => ['int4', { type: 'group', size: 32 }],
    ],
  ];
  for (const [label, raw, choose] of families) {
    it(`${label}: logits match bitsmith's forward pass`, async () => {
      const graph = await syntheticGraph(raw);
      const quantized = quantizeLayers(graph, choose);
      const { bytes, matMulNBits } = await buildLlamaOnnx(graph, quantized);
      expect(matMulNBits.sort()).toEqual([...quantized.keys()].sort());
      const session = await ort!.InferenceSession.create(bytes, SESSION_OPTIONS);
      const onnx = await ortLogits(ort!, session, sequences, decoderShape(graph));
      await session.release();
      const ours = (await graph.forward(sequences)).data;
      let maxDiff = 0;
      for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(onnx[i]! - ours[i]!));
      expect(maxDiff).toBeLessThan(1e-4);
    });
  }
});

describe('ONNX export checks', () => {
  it('computes the same RoPE frequencies as @bitsmith/models', () => {
    for (const scaling of [{ type: 'none' }, { type: 'linear', factor: 4 }, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 }] as const) {
      expect(Array.from(onnxRopeInverseFrequencies(128, 500000, scaling))).toEqual(Array.from(ropeInverseFrequencies(128, 500000, scaling)));
    }
  });

  it('rejects unknown layer names, run-time input transforms and formats MatMulNBits cannot hold', async () => {
    const graph = await syntheticGraph({ model_type: 'llama' });
    const q = quantize(graph.lmHead.weight, { format: parseFormat('int4'), granularity: { type: 'group', size: 32 } });
    await expect(buildLlamaOnnx(graph, new Map([['model.layers.9.mlp.up_proj', q]]))).rejects.toThrow(InvalidArgumentError);
    const up = graph.blocks[0]!.mlp!.upProj;
    const int3 = quantize(up.weight, { format: parseFormat('int3'), granularity: { type: 'group', size: 32 } });
    await expect(buildLlamaOnnx(graph, new Map([[up.name, int3]]))).rejects.toThrow(/bits 2, 4 and 8/);
    up.inputTransform = { apply: () => undefined, describe: () => ({ type: 'hadamard' }) } as unknown as typeof up.inputTransform;
    await expect(buildLlamaOnnx(graph, new Map())).rejects.toThrow(UnsupportedFormatError);
  });

  it('saveOnnxModel writes outDir/model.onnx whose MatMulNBits tensors read back bit-exactly', async () => {
    const graph = await syntheticGraph({ model_type: 'llama' });
    const quantized = quantizeLayers(graph, (name) => (name.endsWith('down_proj') ? ['int4-asym', { type: 'channel' }] : ['int4', { type: 'group', size: 16 }]));
    const dir = await mkdtemp(join(tmpdir(), 'bitsmith-onnx-'));
    try {
      const result = await saveOnnxModel(join(dir, 'out'), graph, quantized);
      expect(result.path).toBe(join(dir, 'out', 'model.onnx'));
      const back = await readMatMulNBits(result.path);
      expect(back.size).toBe(quantized.size);
      for (const [name, q] of quantized) {
        const b = back.get(name)!;
        expect({ ...b, codes: Array.from(b.codes) }).toEqual({ ...q, codes: Array.from(q.codes) });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('buildLlamaOnnx: architectures it does not write', () => {
  it('refuses Qwen3, Gemma and mixtures of experts (their computation differs) before building anything', async () => {
    const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'test-fixtures', 'architectures');
    for (const name of ['qwen3', 'gemma2', 'qwen2-moe']) {
      const graph = await loadLlamaGraph(join(fixtures, name), { backend: createJsBackend() });
      await expect(buildLlamaOnnx(graph, new Map())).rejects.toThrow(/computes differently/);
    }
  });
});
