import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { activationQuantizer, dequantize, type Tensor } from '@bitsmith/core';
import { loadCompressedTensors, readJsonObject, runActivationQuantization, runTimeRecords, type ExportedActivationQuantization, type ExportedKvCacheQuantization, type LoadedCheckpoint } from '@bitsmith/formats';
import { createLlamaGraph, loadLlamaConfig, loadLlamaModel, loadTokenizer, ModelFileError, type LlamaGraph, type LlamaGraphOptions, type LlamaModel, type LoadLlamaOptions } from '@bitsmith/models';

/** The attention module of a block, as Hugging Face names it: `model.layers.3.self_attn`. */
function attentionModule(block: LlamaGraph['blocks'][number]): string {
  return block.selfAttention.kProj.name.replace(/\.k_proj$/, '');
}

/**
 * What a quantized graph quantizes at run time, in the form the compressed-tensors exporter takes: the input scheme
 * (and static scales) of every layer with an activation quantizer, and the KV-cache quantization of every block.
 *
 * @deprecated Use `runActivationQuantization(runTimeRecords(graph))` from `@bitsmith/formats` (or a `QuantizedRun`).
 * @throws ActivationSchemeRefusedError when a layer has another run-time input transform (an online Hadamard: no
 *   place in compressed-tensors), or a block's cache uses the Hadamard or pre-RoPE keys.
 * @example
 * ```ts
 * const { inputActivations, kvCache } = exportedActivations(graph);
 * ```
 */
export function exportedActivations(graph: LlamaGraph, exporter = 'compressed-tensors'): { inputActivations: Map<string, ExportedActivationQuantization>; kvCache: Map<string, ExportedKvCacheQuantization> } {
  return runActivationQuantization(runTimeRecords(graph), exporter);
}

/**
 * Installs what a compressed-tensors checkpoint quantizes at run time onto a graph: an activation quantizer on every
 * layer whose group has `input_activations` (with the stored `input_scale`), and FP8 key/value quantizers with the
 * stored `k_scale` / `v_scale` on every attention module of `kv_cache_scheme`. Returns the number of layers given an
 * input quantizer.
 *
 * @throws ModelFileError when the checkpoint names a layer or attention module the graph does not have.
 */
export function installCheckpointActivations(graph: LlamaGraph, loaded: Pick<LoadedCheckpoint, 'inputActivations' | 'kvCache'>, file: string): number {
  for (const [name, a] of loaded.inputActivations ?? []) {
    const layer = graph.linearLayers().find((l) => l.name === name);
    if (!layer) throw new ModelFileError(file, `input_activations for layer ${name}, which the model does not have`);
    layer.inputTransform = activationQuantizer(a.scheme, a.scales);
  }
  for (const [module, kv] of loaded.kvCache ?? []) {
    const block = graph.blocks.find((b) => attentionModule(b) === module);
    if (!block) throw new ModelFileError(file, `k_scale / v_scale for ${module}, which the model does not have`);
    block.kvCache = { keys: activationQuantizer(kv.keys.scheme, kv.keys.scales), values: activationQuantizer(kv.values.scheme, kv.values.scales) };
  }
  return loaded.inputActivations?.size ?? 0;
}

/** Whether a model folder holds a compressed-tensors checkpoint (`config.json`'s `quantization_config.quant_method`). */
export async function isCompressedTensorsFolder(dir: string): Promise<boolean> {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) return false;
  let config: Record<string, unknown>;
  try {
    config = await readJsonObject(path);
  } catch {
    return false; // the model loader reports a broken config.json in its own words
  }
  const qc = config.quantization_config as Record<string, unknown> | undefined;
  return qc?.quant_method === 'compressed-tensors';
}

/**
 * Loads a compressed-tensors model folder as the model it runs as: every quantized weight decoded from its stored
 * codes and scales, the float tensors as stored, and the checkpoint's input-activation and KV-cache quantization
 * installed (so `bitsmith eval` measures what vLLM would compute, up to kernel rounding).
 *
 * @example
 * ```ts
 * const { graph, tokenizer } = await loadCompressedTensorsModel('out/w8a8', { backend });
 * ```
 */
export async function loadCompressedTensorsModel(dir: string, options: LlamaGraphOptions = {}): Promise<LlamaModel> {
  const loaded = await loadCompressedTensors(dir);
  const config = await loadLlamaConfig(dir);
  const weights = new Map<string, Tensor<'float32'>>(loaded.tensors);
  for (const [layer, q] of loaded.quantized) weights.set(`${layer}.weight`, dequantize(q));
  const graph = await createLlamaGraph(config, (name) => weights.get(name), options, join(dir, 'model.safetensors'));
  installCheckpointActivations(graph, loaded, join(dir, 'config.json'));
  const tokenizer = await loadTokenizer(dir);
  return { dir, config, graph, tokenizer, warnings: [] };
}

/**
 * Loads any model folder `bitsmith eval` and `generate` accept: a compressed-tensors checkpoint through
 * {@link loadCompressedTensorsModel}, anything else through `loadLlamaModel` (fake-quant folders then get their
 * recorded run-time transforms from `installOnlineTransforms`).
 */
export async function loadModelFolder(dir: string, options: LoadLlamaOptions = {}): Promise<LlamaModel> {
  if (await isCompressedTensorsFolder(dir)) {
    const { onWarning: _ignored, ...graphOptions } = options;
    return loadCompressedTensorsModel(dir, graphOptions);
  }
  return loadLlamaModel(dir, options);
}
