import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dequantize, InvalidArgumentError, parseFormat, quantize, UnsupportedFormatError, type Granularity, type QuantizedTensor, type Tensor } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { createLlamaGraph, loadLlamaGraph, parseLlamaConfig, ropeInverseFrequencies, type LlamaGraph } from '@bitsmith/models';
import { describe, expect, it } from 'vitest';
import { buildLlamaOnnx } from './onnx-export.js';
import { onnxRopeInverseFrequencies } from './onnx-llama-graph.js';
import { loadOrt, ortLogits, SESSION_OPTIONS } from './onnx-ort.test-support.js';
import { readMatMulNBits, saveOnnxModel } from './onnx-file.js';

function random(length: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

/** A small random model of a family: every tensor the config asks for, deterministic. */
async function syntheticGraph(raw: Record<string, unknown>): Promise<LlamaGraph> {
  const config = parseLlamaConfig({ hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 50, bos_token_id: 1, ...raw });
  let seed = 1;
  const tensor = (name: string): Tensor<'float32'> | undefined => {
    const { hiddenSize: h, intermediateSize: m, vocabSize: v, numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: hd } = config;
    const shapes: Array<[RegExp, number[]]> = [
      [/embed_tokens\.weight$|lm_head\.weight$/, [v, h]],
      [/layernorm\.weight$|norm\.weight$/, [h]],
      [/q_proj\.weight$/, [nh * hd, h]],
      [/[kv]_proj\.weight$/, [nkv * hd, h]],
      [/q_proj\.bias$/, [nh * hd]],
      [/[kv]_proj\.bias$/, [nkv * hd]],
      [/o_proj\.weight$/, [h, nh * hd]],
      [/o_proj\.bias$/, [h]],
      [/(gate|up)_proj\.weight$/, [m, h]],
      [/down_proj\.weight$/, [h, m]],
    ];
    const shape = shapes.find(([re]) => re.test(name))?.[1];
    if (!shape) return undefined;
    const size = shape.reduce((a, b) => a * b, 1);
    const data = name.includes('norm') ? Float32Array.from(random(size, seed++, 0.2), (x) => 1 + x) : random(size, seed++, name.includes('embed') ? 1 : 0.25);
    return { dtype: 'float32', shape, data };
  };
  return createLlamaGraph(config, tensor, { backend: createJsBackend() });
}

/** Quantizes some layers in place (the graph keeps the dequantized weights) and returns their tensors. */
function quantizeLayers(graph: LlamaGraph, choose: (name: string) => [string, Granularity] | undefined): Map<string, QuantizedTensor> {
  const out = new Map<string, QuantizedTensor>();
  for (const layer of [...graph.linearLayers(), graph.lmHead]) {
    const pick = choose(layer.name);
    if (!pick) continue;
    const q = quantize(layer.weight, { format: parseFormat(pick[0]), granularity: pick[1] });
    layer.weight = dequantize(q);
    out.set(layer.name, q);
  }
  return out;
}

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
      const onnx = await ortLogits(ort!, session, sequences);
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
