import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UnsupportedFormatError } from '@bitsmith/core';
import { ModelFileError, readJsonFile, type LlamaGraph } from '@bitsmith/models';
import { hadamardInputTransform } from '@bitsmith/rotation';

/**
 * Re-installs the run-time input transforms that `bitsmith quantize` recorded in a model folder's
 * `config.json` (`quantization_config.online_transforms`), so the quantized model computes what it was calibrated
 * to compute. Returns the number of transforms installed. When the folder's `quantization.json` (written by
 * `bitsmith quantize`) records run-time transforms that `config.json` no longer lists, throws a `ModelFileError`:
 * without them the model computes something else (perplexity in the hundreds of thousands), silently.
 *
 * @example
 * ```ts
 * await installOnlineTransforms(graph, 'out/gptq-w4');
 * ```
 */
export async function installOnlineTransforms(graph: LlamaGraph, modelDir: string): Promise<number> {
  let config: { quantization_config?: { online_transforms?: Array<{ layer: string; kind: string; order?: number }> } };
  try {
    config = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8'));
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
  for (const t of transforms) {
    if (t.kind !== 'hadamard' || typeof t.order !== 'number') {
      throw new UnsupportedFormatError(`${join(modelDir, 'config.json')}: online transform of kind '${t.kind}' on ${t.layer} is not supported (expected 'hadamard' with an order)`);
    }
    graph.linear(t.layer).inputTransform = hadamardInputTransform(t.order, { backend: graph.backend });
  }
  return transforms.length;
}
