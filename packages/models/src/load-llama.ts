import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { assertFinite, type Tensor } from '@bitsmith/core';
import { readJsonFile } from './json-file.js';
import { parseLlamaConfig, type LlamaConfig } from './llama-config.js';
import { createLlamaGraph, type LlamaGraph, type LlamaGraphOptions } from './llama-graph.js';
import { ModelFileError } from './model-file-error.js';
import { openSafetensors } from './safetensors-reader.js';
import { loadTokenizer, type TextTokenizer } from './tokenizer.js';

/**
 * Reads and normalizes `config.json` of a model folder.
 *
 * @example
 * ```ts
 * const config = await loadLlamaConfig('models/tinystories-656k');
 * ```
 */
export async function loadLlamaConfig(dir: string): Promise<LlamaConfig> {
  const path = join(dir, 'config.json');
  return parseLlamaConfig(await readJsonFile(path), path);
}

/**
 * Reads every tensor of a model folder's weights as float32: `model.safetensors`, or the shards listed in
 * `model.safetensors.index.json`. Files are read one tensor at a time. A NaN or infinity in any tensor throws core's
 * `NonFiniteError` naming the file, the tensor and the element.
 *
 * @example
 * ```ts
 * const weights = await loadSafetensorsWeights('models/tinystories-656k');
 * weights.get('lm_head.weight')?.shape; // [2048, 128]
 * ```
 */
export async function loadSafetensorsWeights(dir: string): Promise<Map<string, Tensor<'float32'>>> {
  const single = join(dir, 'model.safetensors');
  const index = join(dir, 'model.safetensors.index.json');
  let files: string[];
  if (existsSync(single)) files = [single];
  else if (existsSync(index)) {
    const parsed = (await readJsonFile(index)) as { weight_map?: Record<string, string> };
    if (typeof parsed?.weight_map !== 'object' || parsed.weight_map === null) throw new ModelFileError(index, 'has no "weight_map" object');
    files = [...new Set(Object.values(parsed.weight_map))].map((f) => join(dirname(index), f));
  } else {
    throw new ModelFileError(single, 'file not found (nor model.safetensors.index.json)');
  }
  const weights = new Map<string, Tensor<'float32'>>();
  for (const path of files) {
    const file = await openSafetensors(path);
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
 * @example
 * ```ts
 * const graph = await loadLlamaGraph('models/tinystories-656k');
 * ```
 */
export async function loadLlamaGraph(dir: string, options: LoadLlamaOptions = {}): Promise<LlamaGraph> {
  const config = await loadLlamaConfig(dir);
  const weights = await loadSafetensorsWeights(dir);
  const requested = new Set<string>();
  const { onWarning, ...graphOptions } = options;
  const graph = await createLlamaGraph(
    config,
    (name) => {
      requested.add(name);
      return weights.get(name);
    },
    graphOptions,
    join(dir, 'model.safetensors'),
  );
  const unused = [...weights.keys()].filter((name) => !requested.has(name)).sort();
  if (unused.length > 0) {
    onWarning?.({
      file: dir,
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
 * @example
 * ```ts
 * const { graph, tokenizer } = await loadLlamaModel('models/tinystories-656k');
 * const logits = await graph.forward([tokenizer.encode('Once upon a time', { bos: true })]);
 * ```
 */
export async function loadLlamaModel(dir: string, options: LoadLlamaOptions = {}): Promise<LlamaModel> {
  if (!existsSync(dir)) throw new ModelFileError(dir, 'model folder not found');
  const warnings: ModelLoadWarning[] = [];
  const graph = await loadLlamaGraph(dir, {
    ...options,
    onWarning: (w) => {
      warnings.push(w);
      options.onWarning?.(w);
    },
  });
  const tokenizer = await loadTokenizer(dir);
  return { dir, config: graph.config, graph, tokenizer, warnings };
}
