import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { STORED_KINDS } from '@bitsmith/core';
import type { QuantizedRun, RunExporter, RunExportResult } from '@bitsmith/formats';
import { writeSafetensors, type LlamaGraph } from '@bitsmith/models';
import { declareAddedBiases } from './added-biases.js';

/** Files copied from the run's source folder when present. */
const SOURCE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

/**
 * The `quantization_config` a fake-quant folder declares: the recipe, its bits per weight, the run-time input
 * transforms each listed layer applies (`bitsmith eval` and `installOnlineTransforms` read them back) and the
 * key/value-cache quantization of each block.
 */
export function fakeQuantizationConfig(run: QuantizedRun): Record<string, unknown> {
  const onlineTransforms = run.transforms.map((t) => ({ layer: t.layer, ...t.description }));
  const kvCache = run.kvCache.map((c) => ({ block: c.block, ...(c.keys ? { keys: c.keys } : {}), ...(c.values ? { values: c.values } : {}), hadamard: c.hadamard, pre_rope_keys: c.preRopeKeys }));
  return {
    quant_method: 'bitsmith',
    format: 'fake-quant',
    description: 'weights are dequantized float32 values on the quantization grid; any float runtime can load them',
    recipe: run.report.recipe,
    average_bits_per_weight: run.report.averageBitsPerWeight,
    online_transforms: onlineTransforms,
    ...(kvCache.length > 0 ? { kv_cache: kvCache } : {}),
    ...(onlineTransforms.length > 0
      ? { online_transforms_note: 'each listed layer multiplies its input by the described transform before its weight (x -> x H); runtimes that ignore this produce wrong outputs; bitsmith eval applies them' }
      : {}),
  };
}

/**
 * `--save fake`: a Hugging Face folder with every tensor of the run's graph as float32 (each quantized layer its
 * decoded stored form), zero biases declared where a step added biases to a config that has none, and a
 * `quantization_config` ({@link fakeQuantizationConfig}). Accepts every stored kind.
 *
 * @throws OptionError (from the check) when a step added biases to a non-Llama config, which cannot declare them.
 */
export const fakeQuantExporter: RunExporter<Record<string, never>, RunExportResult> = {
  name: 'fake',
  accepts: STORED_KINDS,
  check(run) {
    declareAddedBiases(run.graph as unknown as LlamaGraph, { ...run.config });
  },
  async save(outDir, run) {
    const config = { ...run.config };
    const graph = run.graph as unknown as LlamaGraph;
    const zeroBiases = declareAddedBiases(graph, config);
    await mkdir(outDir, { recursive: true });
    const files = [join(outDir, 'model.safetensors'), join(outDir, 'config.json')];
    await writeSafetensors(files[0]!, new Map([...graph.tensors(), ...zeroBiases]), { metadata: { format: 'pt', producer: 'bitsmith', content: 'fake-quant float32 weights' } });
    config.quantization_config = fakeQuantizationConfig(run);
    await writeFile(files[1]!, `${JSON.stringify(config, null, 2)}\n`);
    if (run.source !== undefined) {
      for (const name of SOURCE_FILES) {
        if (!existsSync(join(run.source, name))) continue;
        await copyFile(join(run.source, name), join(outDir, name));
        files.push(join(outDir, name));
      }
    }
    return { files, warnings: [] };
  },
};
