import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { activationQuantizerFromDescription, composeInputTransforms, UnsupportedFormatError, type RuntimeInputTransform } from '@bitsmith/core';
import type { LlamaGraph } from '@bitsmith/models';
import { hadamardInputTransform } from '@bitsmith/rotation';

type Description = { kind: string; order?: number; transforms?: Description[] } & Record<string, unknown>;

/** Rebuilds one recorded transform: an online Hadamard, an activation quantizer, or a sequence of them. */
function rebuild(description: Description, layer: string, graph: LlamaGraph, file: string): RuntimeInputTransform {
  switch (description.kind) {
    case 'hadamard':
      if (typeof description.order !== 'number') break;
      return hadamardInputTransform(description.order, { backend: graph.backend });
    case 'activation-quantization':
      return activationQuantizerFromDescription(description);
    case 'sequence':
      if (!Array.isArray(description.transforms) || description.transforms.length === 0) break;
      return composeInputTransforms(...description.transforms.map((t) => rebuild(t, layer, graph, file)))!;
  }
  throw new UnsupportedFormatError(`${file}: online transform of kind '${description.kind}' on ${layer} is not supported (expected 'hadamard' with an order, 'activation-quantization', or a 'sequence' of them)`);
}

/**
 * Re-installs the run-time transforms that `bitsmith quantize` recorded in a model folder's `config.json`
 * (`quantization_config.online_transforms`: online Hadamards and activation quantizers; `quantization_config.kv_cache`:
 * key/value-cache quantizers), so the quantized model computes what it was calibrated to compute. Returns the number
 * of layers given an input transform.
 *
 * @example
 * ```ts
 * await installOnlineTransforms(graph, 'out/gptq-w4');
 * ```
 */
export async function installOnlineTransforms(graph: LlamaGraph, modelDir: string): Promise<number> {
  let config: {
    quantization_config?: {
      online_transforms?: Array<{ layer: string } & Description>;
      kv_cache?: Array<{ block: number; keys?: Description; values?: Description; hadamard?: boolean; pre_rope_keys?: boolean }>;
    };
  };
  const file = join(modelDir, 'config.json');
  try {
    config = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    return 0;
  }
  const transforms = config.quantization_config?.online_transforms ?? [];
  for (const { layer, ...description } of transforms) {
    graph.linear(layer).inputTransform = rebuild(description as Description, layer, graph, file);
  }
  for (const cache of config.quantization_config?.kv_cache ?? []) {
    const block = graph.blocks[cache.block];
    if (!block) throw new UnsupportedFormatError(`${file}: kv_cache names block ${cache.block}, but the model has ${graph.blocks.length}`);
    block.kvCache = {
      ...(cache.keys ? { keys: activationQuantizerFromDescription(cache.keys) } : {}),
      ...(cache.values ? { values: activationQuantizerFromDescription(cache.values) } : {}),
      ...(cache.hadamard ? { hadamard: true } : {}),
      ...(cache.pre_rope_keys ? { preRopeKeys: true } : {}),
    };
  }
  return transforms.length;
}
