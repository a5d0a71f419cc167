import type { Tensor } from '@bitsmith/core';
import type { LlamaGraph } from '@bitsmith/models';
import { OptionError } from './command-output.js';

const FAMILIES = [
  { flag: 'attention_bias', kinds: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] },
  { flag: 'mlp_bias', kinds: ['gate_proj', 'up_proj', 'down_proj'] },
] as const;

/**
 * Linear biases that a step added to a model whose `config.json` declares none (Outlier Suppression+'s shift
 * compensation `W z`): sets Llama's `attention_bias` / `mlp_bias` in `config` and returns zero biases for the layers
 * of that family that have none, so the written folder is a Llama checkpoint that transformers and `bitsmith eval`
 * load with every bias. Nothing to do (an empty map) when no undeclared bias exists.
 *
 * @throws OptionError for architectures other than Llama, whose configs have no such flags.
 * @example
 * ```ts
 * const zeros = declareAddedBiases(graph, config);
 * await writeSafetensors(file, new Map([...graph.tensors(), ...zeros]));
 * ```
 */
export function declareAddedBiases(graph: LlamaGraph, config: Record<string, unknown>): Map<string, Tensor> {
  const extra = new Map<string, Tensor>();
  for (const family of FAMILIES) {
    const layers = graph.blocks.flatMap((b) => b.linears.filter((l) => (family.kinds as readonly string[]).includes(l.kind)));
    const declared = family.flag === 'attention_bias' ? graph.config.qkvBias && graph.config.outputBias : graph.config.mlpBias;
    if (declared || !layers.some((l) => l.bias)) continue;
    if (graph.config.modelType !== 'llama') {
      throw new OptionError('--save', `a step added biases to ${graph.config.modelType} linears whose config declares none (Outlier Suppression+'s shift); only Llama configs can declare them (${family.flag})`);
    }
    config[family.flag] = true;
    for (const l of layers) if (!l.bias) extra.set(`${l.name}.bias`, { dtype: 'float32', shape: [l.outFeatures], data: new Float32Array(l.outFeatures) });
  }
  return extra;
}
