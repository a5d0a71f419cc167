import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, InvalidFileError, parseSafetensorsHeader, readSafetensorsHeaderLength } from '@bitsmith/core';
import { readChecked, readCheckedSync } from './checked-read.js';
import {
  checkpointJsonFiles,
  checkpointMetadata,
  compressedTensorsCheckpoint,
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
import { planSafetensorsShards, SAFETENSORS_INDEX_FILE, writeSafetensorsStream } from './safetensors-shards.js';
import { STORED_DTYPE_BYTES, type StoredDType, type StoredTensor } from './stored-tensor.js';

// Node only (exported from the package's `node` entry): checkpoint folders on disk.

/** Writes one safetensors file tensor by tensor through a file handle (never one buffer of the whole file). */
async function writeSafetensorsFile(path: string, tensors: ReadonlyMap<string, StoredTensor>, metadata: Readonly<Record<string, string>>): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await writeSafetensorsStream(
      {
        write: async (bytes, position) => {
          let written = 0;
          while (written < bytes.byteLength) {
            const { bytesWritten } = await handle.write(bytes, written, bytes.byteLength - written, position + written);
            written += bytesWritten;
          }
        },
      },
      tensors,
      metadata,
    );
  } finally {
    await handle.close();
  }
}

async function writeCheckpoint(outDir: string, ckpt: Checkpoint, options: CheckpointOptions, content: string): Promise<SavedCheckpoint> {
  await mkdir(outDir, { recursive: true });
  const { shards, index } = planSafetensorsShards(ckpt.tensors, options.maxShardBytes);
  const metadata = checkpointMetadata({ content, ...(options.metadata ? { metadata: options.metadata } : {}) });
  const names: string[] = [];
  for (const shard of shards) {
    await writeSafetensorsFile(join(outDir, shard.file), shard.tensors, metadata);
    names.push(shard.file);
  }
  for (const [name, bytes] of checkpointJsonFiles(ckpt, index)) {
    await writeFile(join(outDir, name), bytes);
    names.push(name);
  }
  return { files: names.map((f) => join(outDir, f)), quantizationConfig: ckpt.config.quantization_config as Record<string, unknown>, warnings: ckpt.warnings };
}

/**
 * Writes a compressed-tensors model folder (`model.safetensors`, `config.json`; see `compressedTensorsCheckpoint`:
 * packed weights, or unpacked ones with `input_activations` and `kv_cache_scheme`), loadable by
 * transformers / vLLM through the compressed-tensors library. Copy tokenizer files yourself (the CLI does).
 * The safetensors data is written tensor by tensor (no buffer of the whole file); past `maxShardBytes` (5 GB) it is
 * split into shards with `model.safetensors.index.json`, as transformers does.
 *
 * @example
 * ```ts
 * await saveCompressedTensors('out/ct', { tensors: graph.tensors(), quantized, config });
 * ```
 */
export async function saveCompressedTensors(outDir: string, model: QuantizedModelExport, options: CheckpointOptions = {}): Promise<SavedCheckpoint> {
  const ckpt = compressedTensorsCheckpoint(model, options);
  return writeCheckpoint(outDir, ckpt, options, `compressed-tensors ${String((ckpt.config.quantization_config as Record<string, unknown>).format)}`);
}

/**
 * Writes a GPTQ model folder (`model.safetensors`, `config.json` with `quantization_config`, `quantize_config.json`)
 * in v1 (`gptq`, AutoGPTQ) or v2 (`gptq_v2`, GPTQModel) layout. Written tensor by tensor, sharded past
 * `maxShardBytes` (5 GB) as {@link saveCompressedTensors} is.
 *
 * @example
 * ```ts
 * await saveGptq('out/gptq', { tensors: graph.tensors(), quantized, config }, { checkpointFormat: 'gptq' });
 * ```
 */
export async function saveGptq(outDir: string, model: QuantizedModelExport, options: GptqOptions = {}): Promise<SavedCheckpoint> {
  return writeCheckpoint(outDir, gptqCheckpoint(model, options), options, `GPTQ ${options.checkpointFormat ?? 'gptq'}`);
}

/** Most bytes per positional read (Node reads at most 2 GiB - 1 per call). */
const READ_CHUNK = 1 << 30;

/**
 * Reads a safetensors file tensor by tensor through positional reads (no buffer of the whole file, so files past
 * Node's 2 GiB `readFile` limit load), with the checks of `decodeSafetensorsFile` (core's header parser).
 */
async function readSafetensorsFileTensors(path: string): Promise<{ tensors: Map<string, StoredTensor> }> {
  const handle = await open(path, 'r');
  try {
    const size = (await handle.stat()).size;
    const readAt = async (position: number, length: number): Promise<Uint8Array> => {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, Math.min(READ_CHUNK, length - done), position + done);
        if (bytesRead === 0) throw new InvalidFileError(path, `ended at byte ${position + done}; expected ${length - done} more bytes`);
        done += bytesRead;
      }
      return out;
    };
    const headerLength = readSafetensorsHeaderLength(await readAt(0, Math.min(8, size)), size, path);
    const header = parseSafetensorsHeader(await readAt(8, headerLength), size - 8 - headerLength, path);
    const tensors = new Map<string, StoredTensor>();
    for (const [name, e] of header.tensors) {
      if (!(e.dtype in STORED_DTYPE_BYTES)) throw new InvalidFileError(path, `tensor "${name}" has dtype ${e.dtype}; checkpoints hold ${Object.keys(STORED_DTYPE_BYTES).join(', ')}`);
      const [begin, end] = e.dataOffsets;
      tensors.set(name, { dtype: e.dtype as StoredDType, shape: [...e.shape], bytes: await readAt(header.dataStart + begin, end - begin) });
    }
    return { tensors };
  } finally {
    await handle.close();
  }
}

/**
 * The stored tensors of a model folder: `model.safetensors`, or every shard that `model.safetensors.index.json` names
 * (each tensor checked against the index), read tensor by tensor. `file` is the file to name in messages (the single
 * file or the index). Throws core's `InvalidFileError` naming the file on a corrupt or inconsistent one.
 *
 * @example
 * ```ts
 * const { tensors, file } = await readSafetensorsFolder('out/ct');
 * ```
 */
export async function readSafetensorsFolder(dir: string): Promise<{ tensors: Map<string, StoredTensor>; file: string }> {
  const { tensors, file } = await readFolder(dir);
  return { tensors, file };
}

/** Reads a folder's safetensors: `model.safetensors`, or the shards that `model.safetensors.index.json` names. */
async function readFolder(dir: string): Promise<{ tensors: Map<string, StoredTensor>; config: Record<string, unknown>; file: string }> {
  const single = join(dir, 'model.safetensors');
  const indexPath = join(dir, SAFETENSORS_INDEX_FILE);
  const tensors = new Map<string, StoredTensor>();
  let file = single;
  const readShard = async (path: string) => (await readChecked(path, 'a safetensors file', async () => readSafetensorsFileTensors(path))).tensors;
  if (existsSync(single)) {
    for (const [name, t] of await readShard(single)) tensors.set(name, t);
  } else if (existsSync(indexPath)) {
    file = indexPath;
    const index = await readJsonObject(indexPath);
    const map = index.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new InvalidFileError(indexPath, 'has no weight_map object');
    const files = [...new Set(Object.values(map as Record<string, unknown>))];
    for (const f of files) {
      if (typeof f !== 'string' || f.includes('/') || f.includes('\\')) throw new InvalidFileError(indexPath, `names shard ${JSON.stringify(f)}; expected a file name in the folder`);
      const shard = await readShard(join(dir, f));
      for (const [name, t] of shard) {
        if ((map as Record<string, unknown>)[name] !== f) throw new InvalidFileError(join(dir, f), `holds tensor "${name}", which the index places ${(map as Record<string, unknown>)[name] === undefined ? 'nowhere' : `in ${String((map as Record<string, unknown>)[name])}`}`);
        tensors.set(name, t);
      }
    }
    for (const name of Object.keys(map as Record<string, unknown>)) if (!tensors.has(name)) throw new InvalidFileError(indexPath, `maps tensor "${name}" to a shard that does not hold it`);
  } else {
    throw new InvalidArgumentError('dir', `${dir} has neither model.safetensors nor ${SAFETENSORS_INDEX_FILE}`);
  }
  const configPath = join(dir, 'config.json');
  const config = existsSync(configPath) ? await readJsonObject(configPath) : {};
  return { tensors, config, file };
}

/** Reads a JSON file that must hold an object, with errors naming the file. */
export async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  const value = await readChecked(path, 'a JSON object', async () => JSON.parse(await readFile(path, 'utf8')) as unknown);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidFileError(path, `holds ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}; expected a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * Loads a compressed-tensors model folder (`model.safetensors` or its shards and index, + `config.json`): quantized layers, the other tensors,
 * and the input-activation and KV-cache schemes (see `readCompressedTensorsCheckpoint`).
 *
 * @example
 * ```ts
 * const { quantized, tensors } = await loadCompressedTensors('out/ct');
 * ```
 */
export async function loadCompressedTensors(dir: string): Promise<LoadedCheckpoint> {
  const { tensors, config, file } = await readFolder(dir);
  const qc = config.quantization_config as Record<string, unknown> | undefined;
  if (!qc) throw new InvalidArgumentError('config.json', `${dir}/config.json has no quantization_config`);
  return readCheckedSync(file, 'a compressed-tensors checkpoint matching its quantization_config', () => readCompressedTensorsCheckpoint(tensors, qc, config));
}

/**
 * Loads a GPTQ model folder (`model.safetensors` or its shards and index, + `config.json`'s `quantization_config` or `quantize_config.json`).
 *
 * @example
 * ```ts
 * const { quantized } = await loadGptq('out/gptq');
 * ```
 */
export async function loadGptq(dir: string): Promise<LoadedCheckpoint> {
  const { tensors, config, file } = await readFolder(dir);
  let qc = config.quantization_config as Record<string, unknown> | undefined;
  if (!qc && existsSync(join(dir, 'quantize_config.json'))) qc = await readJsonObject(join(dir, 'quantize_config.json'));
  if (!qc) throw new InvalidArgumentError('config.json', `${dir} has neither quantization_config nor quantize_config.json`);
  return readCheckedSync(file, 'a GPTQ checkpoint matching its quantization config', () => readGptqCheckpoint(tensors, qc, config));
}
