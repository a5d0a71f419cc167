import { assertFinite, type Tensor } from '@bitsmith/core';
import { modelFolderFromUrl, type ModelFolder } from './model-folder.js';
import { decodeJsonFile } from './text-file.js';
import { parseLlamaConfig, type LlamaConfig } from './llama-config.js';
import { createLlamaGraph, type LlamaGraph, type LlamaGraphOptions } from './llama-graph.js';
import { ModelFileError } from './model-file-error.js';
import type { RawSafetensor, SafetensorsFile, TensorByteReader } from './safetensors-reader.js';
import { decodeToFloat32 } from './safetensors-dtype.js';
import { loadTokenizer, type TextTokenizer } from './tokenizer.js';

/**
 * Where a model's files are: a {@link ModelFolder} (dropped files, buffers, a URL, a directory), or a string: a base
 * URL in the default (browser) entry, a directory path in the `node` entry.
 */
export type ModelSource = ModelFolder | string;

/** The folder of a source; in this (browser-safe) module a string is a base URL. @internal */
export function folderOf(source: ModelSource): ModelFolder {
  return typeof source === 'string' ? modelFolderFromUrl(source) : source;
}

async function readJson(folder: ModelFolder, name: string): Promise<unknown> {
  return decodeJsonFile(await folder.readBytes(name), folder.path(name));
}

/**
 * Reads and normalizes `config.json` of a model folder.
 *
 * @param source A {@link ModelFolder}, or a string: a base URL here, a directory in the `node` entry.
 * @example
 * ```ts
 * const config = await loadLlamaConfig('models/tinystories-656k'); // Node
 * const config2 = await loadLlamaConfig(modelFolderFromFiles(droppedFiles)); // browser
 * ```
 */
export async function loadLlamaConfig(source: ModelSource): Promise<LlamaConfig> {
  const folder = folderOf(source);
  return parseLlamaConfig(await readJson(folder, 'config.json'), folder.path('config.json'));
}

/**
 * Reads every tensor of a model folder's weights as float32: `model.safetensors`, or the shards listed in
 * `model.safetensors.index.json`. Files are read one tensor at a time. A NaN or infinity in any tensor throws core's
 * `NonFiniteError` naming the file, the tensor and the element.
 *
 * @param source A {@link ModelFolder}, or a string: a base URL here, a directory in the `node` entry.
 * @example
 * ```ts
 * const weights = await loadSafetensorsWeights('models/tinystories-656k');
 * weights.get('lm_head.weight')?.shape; // [2048, 128]
 * ```
 */
export async function loadSafetensorsWeights(source: ModelSource): Promise<Map<string, Tensor<'float32'>>> {
  const weights = new Map<string, Tensor<'float32'>>();
  await readSafetensorsWeights(source, undefined, (name, tensor) => void weights.set(name, tensor));
  return weights;
}

/** The weight files of a model folder: `model.safetensors` or the shards its index lists. */
async function weightFiles(folder: ModelFolder): Promise<string[]> {
  const single = 'model.safetensors';
  const index = 'model.safetensors.index.json';
  if (await folder.has(single)) return [single];
  if (await folder.has(index)) {
    const parsed = (await readJson(folder, index)) as { weight_map?: Record<string, string> };
    if (typeof parsed?.weight_map !== 'object' || parsed.weight_map === null) throw new ModelFileError(folder.path(index), 'has no "weight_map" object');
    return [...new Set(Object.values(parsed.weight_map))];
  }
  throw new ModelFileError(folder.path(single), 'file not found (nor model.safetensors.index.json)');
}

/**
 * Reads every tensor of a model folder, one at a time, checking each for NaN/Inf: a tensor for which `keepRaw(name,
 * dtype, shape)` is true is handed over as its stored bytes (`onRaw`), every other one as float32 (`onTensor`).
 */
async function readSafetensorsWeights(
  source: ModelSource,
  keepRaw: ((name: string, dtype: string, shape: readonly number[]) => 'memory' | 'disk' | false) | undefined,
  onTensor: (name: string, tensor: Tensor<'float32'>) => void,
  onRaw?: (name: string, raw: HeldTensorBytes) => void,
): Promise<void> {
  const folder = folderOf(source);
  for (const file of await weightFiles(folder)) {
    const path = folder.path(file);
    const opened = await folder.openSafetensors(file);
    try {
      for (const name of opened.names) {
        const entry = opened.entry(name);
        const keep = onRaw ? keepRaw?.(name, entry.dtype, entry.shape) : false;
        if (keep && onRaw) {
          const reader = keep === 'disk' ? opened.detachedReader(name) : undefined;
          if (reader) {
            // Checked once here, a chunk at a time; then read again from the file, a chunk at a time, when decoded.
            await assertFiniteOnDisk(opened, name, reader, entry.dataOffsets[1] - entry.dataOffsets[0], path);
            onRaw(name, diskTensor(entry.dtype, entry.shape, reader));
            continue;
          }
          const raw = await opened.readRaw(name);
          assertFiniteHalf(raw, name, path);
          onRaw(name, {
            dtype: raw.dtype,
            shape: raw.shape,
            onDisk: false,
            decode: (start, end, out) => decodeToFloat32(raw.bytes.subarray(start * 2, end * 2), raw.dtype, out),
          });
          continue;
        }
        const tensor = await opened.readTensor(name);
        assertFinite(tensor.data, { what: `tensor ${name}`, shape: tensor.shape, file: path });
        onTensor(name, tensor);
      }
    } finally {
      await opened.close();
    }
  }
}

/** A 16-bit tensor kept in its stored bytes: in memory, or on disk (read from the file on each use). */
interface HeldTensorBytes {
  readonly dtype: RawSafetensor['dtype'];
  readonly shape: readonly number[];
  /** Whether `read` reads the file (nothing held in memory). */
  readonly onDisk: boolean;
  /** Elements `[start, end)` as float32, into `out` when given. */
  decode(start: number, end: number, out?: Float32Array): Float32Array;
}

/** Bytes read from a file at a time when a tensor kept on disk is checked or decoded (reused: no garbage per read). */
const DISK_CHUNK_BYTES = 1 << 23;
let diskChunk: Uint8Array | undefined;
const chunkBuffer = () => (diskChunk ??= new Uint8Array(DISK_CHUNK_BYTES));

/** A 16-bit tensor left in its file: every read goes to the file, decoding a chunk at a time through one scratch buffer. */
function diskTensor(dtype: RawSafetensor['dtype'], shape: readonly number[], reader: TensorByteReader): HeldTensorBytes {
  const size = 2;
  return {
    dtype,
    shape,
    onDisk: true,
    decode(start, end, out) {
      const result = out ? out.subarray(0, end - start) : new Float32Array(end - start);
      const scratch = chunkBuffer();
      const step = DISK_CHUNK_BYTES / size;
      for (let at = start; at < end; at += step) {
        const stop = Math.min(end, at + step);
        decodeToFloat32(reader(at * size, stop * size, scratch), dtype, result.subarray(at - start, stop - start));
      }
      return result;
    },
  };
}

/** {@link assertFiniteHalf} over a tensor left on disk, a chunk at a time (the whole tensor read only to name a bad element). */
async function assertFiniteOnDisk(file: SafetensorsFile, name: string, reader: TensorByteReader, length: number, path: string): Promise<void> {
  const scratch = chunkBuffer();
  const dtype = file.entry(name).dtype;
  for (let at = 0; at < length; at += DISK_CHUNK_BYTES) {
    const chunk = reader(at, Math.min(length, at + DISK_CHUNK_BYTES), scratch);
    if (!isFiniteHalf(chunk, dtype)) assertFiniteHalf(await file.readRaw(name), name, path);
  }
}

/** Whether bfloat16/float16 bytes hold no NaN or infinity (exponent bits all ones). */
function isFiniteHalf(bytes: Uint8Array, dtype: string): boolean {
  const mask = dtype === 'BF16' ? 0x7f80 : 0x7c00;
  const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  for (let i = 0; i < bits.length; i++) if ((bits[i]! & mask) === mask) return false;
  return true;
}

/** Checks bfloat16/float16 bytes for NaN and infinity (exponent bits all ones) without decoding them. */
function assertFiniteHalf(raw: RawSafetensor, name: string, file: string): void {
  const mask = raw.dtype === 'BF16' ? 0x7f80 : 0x7c00;
  const bytes = raw.bytes.byteOffset % 2 === 0 ? raw.bytes : raw.bytes.slice();
  const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  for (let i = 0; i < bits.length; i++) {
    // Rare: decode the whole tensor so that the error names the element as for float32 tensors.
    if ((bits[i]! & mask) === mask) assertFinite(decodeToFloat32(raw.bytes, raw.dtype), { what: `tensor ${name}`, shape: raw.shape, file });
  }
}

/**
 * Loads a Hugging Face Llama-family model folder (`config.json` + safetensors weights) as a {@link LlamaGraph}.
 *
 * @param options `backend`: default `await defaultBackend()`.
 * @param source A {@link ModelFolder}, or a string: a base URL here, a directory in the `node` entry.
 * @example
 * ```ts
 * const graph = await loadLlamaGraph('models/tinystories-656k');
 * ```
 */
export async function loadLlamaGraph(source: ModelSource, options: LoadLlamaOptions = {}): Promise<LlamaGraph> {
  const folder = folderOf(source);
  const config = await loadLlamaConfig(folder);
  const weights = new Map<string, Tensor<'float32'>>();
  const raws = new Map<string, HeldTensorBytes>();
  // Block linear weights, the embedding and the head stored in 16 bits stay in their bytes until used
  // (keepStoredDtype); the block linears' bytes stay on disk where the folder reads files synchronously (Node), so the
  // loaded model holds the embedding and head (looked up row by row) and no block weight.
  const keepRaw = options.keepStoredDtype
    ? (name: string, dtype: string, shape: readonly number[]): 'memory' | 'disk' | false => {
        if (!(dtype === 'BF16' || dtype === 'F16') || shape.length !== 2) return false;
        if (/^model\.layers\.\d+\..*_proj\.weight$/.test(name)) return options.weightsOnDisk === false ? 'memory' : 'disk';
        return name === 'model.embed_tokens.weight' || name === 'lm_head.weight' ? 'memory' : false;
      }
    : undefined;
  await readSafetensorsWeights(folder, keepRaw, (name, tensor) => void weights.set(name, tensor), (name, raw) => void raws.set(name, raw));
  const requested = new Set<string>();
  const { onWarning, keepStoredDtype: _keep, weightsOnDisk: _disk, ...graphOptions } = options;
  const graph = await createLlamaGraph(
    config,
    (name) => {
      requested.add(name);
      const raw = raws.get(name);
      // A raw weight asked for eagerly (no graph builder does so for block projections now): decoded once here.
      return raw ? { dtype: 'float32', shape: [...raw.shape], data: raw.decode(0, raw.shape.reduce((a, b) => a * b, 1)) } : weights.get(name);
    },
    {
      ...graphOptions,
      lazyWeights: (name) => {
        const raw = raws.get(name);
        if (!raw) return undefined;
        requested.add(name);
        const columns = raw.shape[1]!;
        return {
          shape: raw.shape,
          source: () => raw.decode(0, raw.shape[0]! * columns),
          rows: (start: number, end: number, out: Float32Array) => void raw.decode(start * columns, end * columns, out),
        };
      },
    },
    folder.path('model.safetensors'),
  );
  const unused = [...weights.keys(), ...raws.keys()].filter((name) => !requested.has(name)).sort();
  if (unused.length > 0) {
    onWarning?.({
      file: folder.label,
      tensors: unused,
      message: `${unused.length} checkpoint tensor(s) are not used by the ${config.modelType} graph and were dropped: ${unused.slice(0, 8).join(', ')}${unused.length > 8 ? ', ...' : ''}`,
    });
  }
  return graph;
}

/** A recoverable problem met while loading a model (returned, never logged). */
export interface ModelLoadWarning {
  /** The model folder. */
  readonly file: string;
  readonly message: string;
  /** Tensors the warning is about (for example the unused ones). */
  readonly tensors?: readonly string[];
}

/** Options of {@link loadLlamaGraph} and {@link loadLlamaModel}. */
export interface LoadLlamaOptions extends Omit<LlamaGraphOptions, 'lazyWeights'> {
  /**
   * Keep the blocks' linear weights in their stored dtype (bfloat16/float16 bytes) and decode each to float32 only
   * when it is first used (`lazyLinearLayer`): half the memory of float32 until a block is worked on, and
   * `llamaQuantizableModel`'s `releaseBlock` drops them again once a block is finished. Default false.
   */
  keepStoredDtype?: boolean;
  /**
   * With `keepStoredDtype`: leave the blocks' 16-bit linear weights in the checkpoint's files and read each from its
   * file whenever it is decoded (at most once per block while the block is worked on; again only for untouched layers
   * of finished blocks that are read later), so memory holds no block weight outside the block in hand: what lets a
   * model larger than memory be quantized. Only where the folder can read files synchronously (a directory in Node);
   * elsewhere the bytes are held in memory as before. The files must not change while the model is in use (a changed
   * file is refused with a `ModelFileError` on the next read). Default true.
   */
  weightsOnDisk?: boolean;
  /** Receives load warnings, such as checkpoint tensors the graph does not use. `loadLlamaModel` also returns them. */
  onWarning?: (warning: ModelLoadWarning) => void;
}

/** A loaded model: its graph, tokenizer and config. */
export interface LlamaModel {
  /** The model folder: its path in Node, else the {@link ModelFolder}'s label. */
  readonly dir: string;
  readonly config: LlamaConfig;
  readonly graph: LlamaGraph;
  readonly tokenizer: TextTokenizer;
  /** Load warnings (checkpoint tensors the graph does not use, ...). */
  readonly warnings: readonly ModelLoadWarning[];
}

/**
 * Loads graph and tokenizer of a Hugging Face Llama-family model folder.
 *
 * @param source A {@link ModelFolder}, or a string: a base URL here, a directory in the `node` entry.
 * @example
 * ```ts
 * const { graph, tokenizer } = await loadLlamaModel('models/tinystories-656k');
 * const logits = await graph.forward([tokenizer.encode('Once upon a time', { bos: true })]);
 * ```
 */
export async function loadLlamaModel(source: ModelSource, options: LoadLlamaOptions = {}): Promise<LlamaModel> {
  const folder = folderOf(source);
  const warnings: ModelLoadWarning[] = [];
  const graph = await loadLlamaGraph(folder, {
    ...options,
    onWarning: (w) => {
      warnings.push(w);
      options.onWarning?.(w);
    },
  });
  const tokenizer = await loadTokenizer(folder);
  return { dir: folder.label, config: graph.config, graph, tokenizer, warnings };
}
