import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { quantizeTfjsWeights, type TfjsQuantizedWeight, type TfjsQuantizeOptions, type TfjsWeightInput } from './tfjs-manifest.js';

// Node only (exported from the package's `node` entry): tfjs models on disk.

/**
 * Writes a tfjs model folder: `model.json` (the given topology and format fields, one weights group) and its shard
 * `group1-shard1of1.bin`, with float32 weights quantized to uint8 or uint16 (`quantizeTfjsWeights`).
 *
 * @example
 * ```ts
 * await saveTfjsModel('out/tfjs', { modelTopology, format: 'graph-model', weights }, { dtype: 'uint8' });
 * ```
 */
export async function saveTfjsModel(
  outDir: string,
  model: { modelTopology?: unknown; format?: string; generatedBy?: string; convertedBy?: string; weights: readonly TfjsWeightInput[] },
  options: TfjsQuantizeOptions = {},
): Promise<{ files: string[]; quantized: Map<string, TfjsQuantizedWeight> }> {
  const { entries, bytes, quantized } = quantizeTfjsWeights(model.weights, options);
  await mkdir(outDir, { recursive: true });
  const shard = 'group1-shard1of1.bin';
  const json = {
    ...(model.format ? { format: model.format } : {}),
    generatedBy: model.generatedBy ?? 'bitsmith',
    convertedBy: model.convertedBy ?? 'bitsmith',
    modelTopology: model.modelTopology ?? null,
    weightsManifest: [{ paths: [shard], weights: entries }],
  };
  await writeFile(join(outDir, shard), bytes);
  await writeFile(join(outDir, 'model.json'), JSON.stringify(json));
  return { files: [join(outDir, 'model.json'), join(outDir, shard)], quantized };
}
