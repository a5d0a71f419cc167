import { assertFinite, type Tensor } from '@bitsmith/core';
import { modelFolderFromUrl, type ModelFolder } from './model-folder.js';
import { decodeJsonFile } from './text-file.js';
import { parseLlamaConfig, type LlamaConfig } from './llama-config.js';
import { createLlamaGraph, type LlamaGraph, type LlamaGraphOptions } from './llama-graph.js';
import { ModelFileError } from './model-file-error.js';
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
  const folder = folderOf(source);
  const single = 'model.safetensors';
  const index = 'model.safetensors.index.json';
  let files: string[];
  if (await folder.has(single)) files = [single];
  else if (await folder.has(index)) {
    const parsed = (await readJson(folder, index)) as { weight_map?: Record<string, string> };
    if (typeof parsed?.weight_map !== 'object' || parsed.weight_map === null) throw new ModelFileError(folder.path(index), 'has no "weight_map" object');
    files = [...new Set(Object.values(parsed.weight_map))];
  } else {
    throw new ModelFileError(folder.path(single), 'file not found (nor model.safetensors.index.json)');
  }
  const weights = new Map<string, Tensor<'float32'>>();
  for (const name of files) {
    const path = folder.path(name);
    const file = await folder.openSafetensors(name);
    try {
      for (const name of file.names) {
        const tensor = await file.readTensor(name);
        assertFinite(tensor.data, { what: `tensor ${name}`, shape: tensor.shape, file: path });
        weights.set(name, tensor);
      }
    } finally {
      await file.close();
    }
  }
  return weights;
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
  const weights = await loadSafetensorsWeights(folder);
  const requested = new Set<string>();
  const { onWarning, ...graphOptions } = options;
  const graph = await createLlamaGraph(
    config,
    (name) => {
      requested.add(name);
      return weights.get(name);
    },
    graphOptions,
    folder.path('model.safetensors'),
  );
  const unused = [...weights.keys()].filter((name) => !requested.has(name)).sort();
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
export interface LoadLlamaOptions extends LlamaGraphOptions {
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
