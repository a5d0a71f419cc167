import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, InvalidFileError } from '@bitsmith/core';
import { readChecked, readCheckedSync } from './checked-read.js';
import {
  compressedTensorsCheckpoint,
  encodeCheckpointFiles,
  gptqCheckpoint,
  readCompressedTensorsCheckpoint,
  readGptqCheckpoint,
  type Checkpoint,
  type CheckpointOptions,
  type GptqOptions,
  type LoadedCheckpoint,
  type QuantizedModelExport,
  type SavedCheckpoint,
} from './hf-checkpoint.js';
import { decodeSafetensorsFile, type StoredTensor } from './stored-tensor.js';

// Node only (exported from the package's `node` entry): checkpoint folders on disk.

async function writeCheckpoint(outDir: string, ckpt: Checkpoint, options: CheckpointOptions, content: string): Promise<SavedCheckpoint> {
  await mkdir(outDir, { recursive: true });
  const files = encodeCheckpointFiles(ckpt, { content, ...(options.metadata ? { metadata: options.metadata } : {}) });
  for (const [name, bytes] of files) await writeFile(join(outDir, name), bytes);
  return { files: [...files.keys()].map((f) => join(outDir, f)), quantizationConfig: ckpt.config.quantization_config as Record<string, unknown>, warnings: ckpt.warnings };
}

/**
 * Writes a compressed-tensors `pack-quantized` model folder (`model.safetensors`, `config.json`), loadable by
 * transformers / vLLM through the compressed-tensors library. Copy tokenizer files yourself (the CLI does).
 *
 * @example
 * ```ts
 * await saveCompressedTensors('out/ct', { tensors: graph.tensors(), quantized, config });
 * ```
 */
export async function saveCompressedTensors(outDir: string, model: QuantizedModelExport, options: CheckpointOptions = {}): Promise<SavedCheckpoint> {
  return writeCheckpoint(outDir, compressedTensorsCheckpoint(model, options), options, 'compressed-tensors pack-quantized');
}

/**
 * Writes a GPTQ model folder (`model.safetensors`, `config.json` with `quantization_config`, `quantize_config.json`)
 * in v1 (`gptq`, AutoGPTQ) or v2 (`gptq_v2`, GPTQModel) layout.
 *
 * @example
 * ```ts
 * await saveGptq('out/gptq', { tensors: graph.tensors(), quantized, config }, { checkpointFormat: 'gptq' });
 * ```
 */
export async function saveGptq(outDir: string, model: QuantizedModelExport, options: GptqOptions = {}): Promise<SavedCheckpoint> {
  return writeCheckpoint(outDir, gptqCheckpoint(model, options), options, `GPTQ ${options.checkpointFormat ?? 'gptq'}`);
}

async function readFolder(dir: string): Promise<{ tensors: Map<string, StoredTensor>; config: Record<string, unknown> }> {
  const file = join(dir, 'model.safetensors');
  if (!existsSync(file)) throw new InvalidArgumentError('dir', `${dir} has no model.safetensors (sharded checkpoints are not read yet)`);
  const { tensors } = await readChecked(file, 'a safetensors file', async () => decodeSafetensorsFile(new Uint8Array(await readFile(file)), file));
  const configPath = join(dir, 'config.json');
  const config = existsSync(configPath) ? await readJsonObject(configPath) : {};
  return { tensors, config };
}

/** Reads a JSON file that must hold an object, with errors naming the file. */
export async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  const value = await readChecked(path, 'a JSON object', async () => JSON.parse(await readFile(path, 'utf8')) as unknown);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidFileError(path, `holds ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}; expected a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * Loads a compressed-tensors `pack-quantized` model folder (`model.safetensors` + `config.json`).
 *
 * @example
 * ```ts
 * const { quantized, tensors } = await loadCompressedTensors('out/ct');
 * ```
 */
export async function loadCompressedTensors(dir: string): Promise<LoadedCheckpoint> {
  const { tensors, config } = await readFolder(dir);
  const qc = config.quantization_config as Record<string, unknown> | undefined;
  if (!qc) throw new InvalidArgumentError('config.json', `${dir}/config.json has no quantization_config`);
  return readCheckedSync(join(dir, 'model.safetensors'), 'a compressed-tensors pack-quantized checkpoint matching its quantization_config', () => readCompressedTensorsCheckpoint(tensors, qc, config));
}

/**
 * Loads a GPTQ model folder (`model.safetensors` + `config.json`'s `quantization_config` or `quantize_config.json`).
 *
 * @example
 * ```ts
 * const { quantized } = await loadGptq('out/gptq');
 * ```
 */
export async function loadGptq(dir: string): Promise<LoadedCheckpoint> {
  const { tensors, config } = await readFolder(dir);
  let qc = config.quantization_config as Record<string, unknown> | undefined;
  if (!qc && existsSync(join(dir, 'quantize_config.json'))) qc = await readJsonObject(join(dir, 'quantize_config.json'));
  if (!qc) throw new InvalidArgumentError('config.json', `${dir} has neither quantization_config nor quantize_config.json`);
  return readCheckedSync(join(dir, 'model.safetensors'), 'a GPTQ checkpoint matching its quantization config', () => readGptqCheckpoint(tensors, qc, config));
}
