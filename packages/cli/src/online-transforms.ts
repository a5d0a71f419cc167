import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { activationQuantizerFromDescription, channelShiftFromDescription, composeInputTransforms, outlierPassthroughQuantizerFromDescription, UnsupportedFormatError, type RuntimeInputTransform } from '@bitsmith/core';
import { ModelFileError, readJsonFile, type LlamaGraph } from '@bitsmith/models';
import { hadamardInputTransform } from '@bitsmith/rotation';

type Description = { kind: string; order?: number; transforms?: Description[] } & Record<string, unknown>;

/** Rebuilds one recorded transform: an online Hadamard, an activation quantizer, an OS+ channel shift, or a sequence of them. */
function rebuild(description: Description, layer: string, graph: LlamaGraph, file: string): RuntimeInputTransform {
  switch (description.kind) {
    case 'hadamard':
      if (typeof description.order !== 'number') break;
      return hadamardInputTransform(description.order, { backend: graph.backend });
    case 'activation-quantization':
      return activationQuantizerFromDescription(description);
    case 'channel-shift':
      return channelShiftFromDescription(description);
    case 'llm-int8-activations':
      return outlierPassthroughQuantizerFromDescription(description);
    case 'sequence':
      if (!Array.isArray(description.transforms) || description.transforms.length === 0) break;
      return composeInputTransforms(...description.transforms.map((t) => rebuild(t, layer, graph, file)))!;
  }
  throw new UnsupportedFormatError(`${file}: online transform of kind '${description.kind}' on ${layer} is not supported (expected 'hadamard' with an order, 'activation-quantization', 'channel-shift', 'llm-int8-activations', or a 'sequence' of them)`);
}

/**
 * Re-installs the run-time transforms that `bitsmith quantize` recorded in a model folder's `config.json`
 * (`quantization_config.online_transforms`: online Hadamards and activation quantizers; `quantization_config.kv_cache`:
 * key/value-cache quantizers), so the quantized model computes what it was calibrated to compute. Returns the number
 * of layers given an input transform. When the folder's
 * `quantization.json` (written by `bitsmith quantize`) records run-time transforms that `config.json` no longer lists,
 * throws a `ModelFileError`: without them the model computes something else (perplexity in the hundreds of
 * thousands), silently.
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
  const recordPath = join(modelDir, 'quantization.json');
  if (existsSync(recordPath)) {
    const record = (await readJsonFile(recordPath)) as { onlineTransforms?: Array<{ layer: string }> };
    const recorded = Array.isArray(record?.onlineTransforms) ? record.onlineTransforms : [];
    const listed = new Set(transforms.map((t) => t.layer));
    const missing = recorded.filter((t) => !listed.has(t.layer));
    if (missing.length > 0) {
      throw new ModelFileError(
        join(modelDir, 'config.json'),
        `quantization.json records ${recorded.length} run-time input transform(s) (e.g. on ${missing[0]!.layer}) that config.json's quantization_config.online_transforms does not list (${missing.length} missing); the model computes wrong outputs without them. Restore quantization_config from the quantize run`,
      );
    }
  }
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
