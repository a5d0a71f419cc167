import type { io } from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from '@bitsmith/core';
import { fileErrorReason, ModelFileError } from './model-file-error.js';
import type { ModelFolder } from './model-folder.js';
import { decodeJsonFile } from './text-file.js';
import type { TfjsWeightSpec } from './tfjs-weights.js';

// Browser-safe: tfjs models read from a ModelFolder and written to bytes in memory. The `node` entry adds the
// path-taking forms (tfjs-graph-model-io-node.ts).

/** The parts of a tfjs `model.json` that bitsmith reads and writes. */
export interface TfjsModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: unknown;
  weightsManifest: Array<{ paths: string[]; weights: TfjsWeightSpec[] }>;
  signature?: unknown;
  userDefinedMetadata?: Record<string, unknown>;
  modelInitializer?: unknown;
}

/** Bytes one manifest entry takes in the weight stream, or undefined where it cannot be known (strings). @internal */
export function tfjsStoredBytes(spec: TfjsWeightSpec): number | undefined {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  const q = spec.quantization;
  if (q) return count * (q.dtype === 'uint8' ? 1 : 2);
  if (spec.dtype === 'string') return undefined;
  return count * (spec.dtype === 'bool' ? 1 : spec.dtype === 'complex64' ? 8 : 4);
}

/**
 * Reads and parses a tfjs `model.json` from a {@link ModelFolder}, with a {@link ModelFileError} naming the file when
 * it is missing, not JSON, or not a tfjs model (no `modelTopology` / `weightsManifest`).
 *
 * @param modelJson The file's name in the folder. Default `'model.json'`.
 * @example
 * ```ts
 * const json = await readTfjsModelJsonFrom(modelFolderFromFiles(droppedFiles));
 * json.weightsManifest[0].paths; // ['group1-shard1of7', ...]
 * ```
 */
export async function readTfjsModelJsonFrom(folder: ModelFolder, modelJson = 'model.json'): Promise<TfjsModelJson> {
  const path = folder.path(modelJson);
  const json = decodeJsonFile(await folder.readBytes(modelJson), path) as TfjsModelJson | null;
  if (typeof json !== 'object' || json === null || !Array.isArray(json.weightsManifest) || json.modelTopology === undefined) {
    throw new ModelFileError(path, "has no 'modelTopology' and 'weightsManifest'; expected a tfjs graph model.json");
  }
  return json;
}

/**
 * Model artifacts (topology, weight specs and one concatenated weight buffer) of a tfjs model in a
 * {@link ModelFolder}: every group's shards are read (through `folder.readBytes`) in order and the groups
 * concatenated, as tfjs' own loaders do. A missing shard is a {@link ModelFileError} naming it; shards shorter than
 * the manifest's weights need are one too ("truncated shard?").
 *
 * @param modelJson The name of `model.json` in the folder. Default `'model.json'`.
 * @param json The parsed `model.json`, when the caller has it already.
 * @example
 * ```ts
 * import { loadGraphModel } from '@tensorflow/tfjs-converter';
 * import { io } from '@tensorflow/tfjs-core';
 * const graph = await loadGraphModel(io.fromMemory(await readTfjsArtifactsFrom(folder)));
 * ```
 */
export async function readTfjsArtifactsFrom(folder: ModelFolder, modelJson = 'model.json', json?: TfjsModelJson): Promise<io.ModelArtifacts> {
  const manifest = json ?? (await readTfjsModelJsonFrom(folder, modelJson));
  // Shard paths are relative to model.json (`sub/model.json` lists `group1-shard1of1` for `sub/group1-shard1of1`).
  const base = modelJson.includes('/') ? modelJson.slice(0, modelJson.lastIndexOf('/') + 1) : '';
  const specs: io.WeightsManifestEntry[] = [];
  const buffers: Uint8Array[] = [];
  let needed = 0;
  for (const group of manifest.weightsManifest) {
    specs.push(...(group.weights as io.WeightsManifestEntry[]));
    for (const spec of group.weights) needed += tfjsStoredBytes(spec) ?? 0;
    for (const p of group.paths) {
      const name = base + p;
      try {
        buffers.push(await folder.readBytes(name));
      } catch (cause) {
        throw new ModelFileError(folder.path(name), `weight shard listed in ${folder.path(modelJson)} cannot be read (${fileErrorReason(cause, folder.path(name))})`, { cause });
      }
    }
  }
  const total = buffers.reduce((a, b) => a + b.length, 0);
  if (total < needed) {
    throw new ModelFileError(folder.path(modelJson), `the weights of its manifest need ${needed} bytes but its shards hold ${total} (truncated shard?)`);
  }
  const data = new Uint8Array(total);
  let offset = 0;
  for (const b of buffers) {
    data.set(b, offset);
    offset += b.length;
  }
  return {
    modelTopology: manifest.modelTopology as io.ModelArtifacts['modelTopology'],
    weightSpecs: specs,
    weightData: data.buffer,
    ...(manifest.format ? { format: manifest.format } : {}),
    ...(manifest.generatedBy ? { generatedBy: manifest.generatedBy } : {}),
    ...(manifest.convertedBy ? { convertedBy: manifest.convertedBy } : {}),
    ...(manifest.signature ? { signature: manifest.signature as object } : {}),
    ...(manifest.userDefinedMetadata ? { userDefinedMetadata: manifest.userDefinedMetadata as { [key: string]: {} } } : {}),
  };
}

/**
 * A tfjs `io.IOHandler` that loads a graph model (`model.json` + binary shards) from a {@link ModelFolder}: dropped
 * `File`s, buffers, a URL or (Node) a directory. `loadGraphModel` then needs neither `@tensorflow/tfjs-node` nor tfjs'
 * own `http` handler. `transform` may rewrite the artifacts before tfjs sees them (the fast-kernel rewrite uses it).
 *
 * @param modelJson The name of `model.json` in the folder. Default `'model.json'`.
 * @example
 * ```ts
 * import { loadGraphModel } from '@tensorflow/tfjs-converter';
 * const graph = await loadGraphModel(folderIOHandler(modelFolderFromFiles(event.dataTransfer.files)));
 * ```
 */
export function folderIOHandler(folder: ModelFolder, modelJson = 'model.json', transform?: (artifacts: io.ModelArtifacts) => io.ModelArtifacts): io.IOHandler {
  return {
    load: async () => {
      const artifacts = await readTfjsArtifactsFrom(folder, modelJson);
      return transform ? transform(artifacts) : artifacts;
    },
  };
}

/** One weight to write with {@link encodeTfjsModel} / `writeTfjsModel`: its data in the tensor's tfjs layout. */
export interface TfjsWeightToWrite {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'float32' | 'int32' | 'bool';
  readonly data: Float32Array | Int32Array | Uint8Array;
}

/** Options of {@link encodeTfjsModel} and `writeTfjsModel`. */
export interface WriteTfjsModelOptions {
  /** Largest shard in bytes. Default 4 MiB (tfjs' converter default). */
  shardBytes?: number;
  /** Merged into `userDefinedMetadata` of `model.json` (for example a `quantization` description). */
  metadata?: Record<string, unknown>;
}

/** The files of a tfjs graph model, as {@link encodeTfjsModel} gives them. */
export interface TfjsModelFiles {
  /** Every file by name: `model.json` first, then the shards. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  /** Names of the shards, in manifest order. */
  readonly shards: readonly string[];
  /** Bytes of all shards. */
  readonly weightBytes: number;
}

/**
 * Encodes a tfjs graph model in memory: `model.json` (the given topology, a weights manifest in one group) and
 * float32/int32/bool shards of at most `shardBytes` (4 MiB) named `group1-shardNofM.bin`, as bytes by file name (to
 * offer as downloads, to zip, or to load back with `modelFolderFromFiles`). tfjs' `loadGraphModel` loads the result.
 *
 * @example
 * ```ts
 * const { files } = encodeTfjsModel(json, weights, { metadata: { quantization: 'int4 g32 (fake-quant)' } });
 * const again = await TfjsGraphModel.load(modelFolderFromFiles(files));
 * ```
 */
export function encodeTfjsModel(json: Omit<TfjsModelJson, 'weightsManifest'>, weights: readonly TfjsWeightToWrite[], options: WriteTfjsModelOptions = {}): TfjsModelFiles {
  const shardBytes = options.shardBytes ?? 4 * 1024 * 1024;
  if (!Number.isInteger(shardBytes) || shardBytes < 1) throw new InvalidArgumentError('shardBytes', `expected a positive integer, got ${shardBytes}`);
  const total = weights.reduce((a, w) => a + w.data.byteLength, 0);
  const stream = new Uint8Array(total);
  let offset = 0;
  for (const w of weights) {
    stream.set(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength), offset);
    offset += w.data.byteLength;
  }
  const count = Math.max(1, Math.ceil(total / shardBytes));
  const paths = Array.from({ length: count }, (_, i) => `group1-shard${i + 1}of${count}.bin`);
  const out: TfjsModelJson = {
    ...json,
    weightsManifest: [{ paths, weights: weights.map((w) => ({ name: w.name, shape: [...w.shape], dtype: w.dtype })) }],
    ...(options.metadata ? { userDefinedMetadata: { ...(json.userDefinedMetadata ?? {}), ...options.metadata } } : {}),
  };
  const files = new Map<string, Uint8Array>([['model.json', new TextEncoder().encode(JSON.stringify(out))]]);
  paths.forEach((p, i) => files.set(p, stream.subarray(i * shardBytes, Math.min(total, (i + 1) * shardBytes))));
  return { files, shards: paths, weightBytes: total };
}
