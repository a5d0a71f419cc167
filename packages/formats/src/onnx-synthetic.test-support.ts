import { dequantize, parseFormat, quantize, type Granularity, type QuantizedTensor, type Tensor } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { createLlamaGraph, parseLlamaConfig, type LlamaGraph } from '@bitsmith/models';

/** Test support: small deterministic random Llama-family models for the ONNX exporter's tests. */

export function random(length: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

/** A small random model of a family: every tensor the config asks for, deterministic. */
export async function syntheticGraph(raw: Record<string, unknown>): Promise<LlamaGraph> {
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
export function quantizeLayers(graph: LlamaGraph, choose: (name: string) => [string, Granularity] | undefined): Map<string, QuantizedTensor> {
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

