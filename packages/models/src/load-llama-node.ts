import { existsSync } from 'node:fs';
import type { Tensor } from '@bitsmith/core';
import type { LlamaConfig } from './llama-config.js';
import type { LlamaGraph } from './llama-graph.js';
import * as browser from './load-llama.js';
import type { LlamaModel, LoadLlamaOptions, ModelSource } from './load-llama.js';
import { ModelFileError } from './model-file-error.js';
import { modelFolderFromDirectory } from './model-folder-node.js';
import type { ModelFolder } from './model-folder.js';
import type { TextTokenizer } from './tokenizer.js';
import { loadTokenizer as loadTokenizerFrom } from './tokenizer.js';

// Node only: the loaders of the `node` entry, where a string source is a directory on disk.

function folderOf(source: ModelSource): ModelFolder {
  return typeof source === 'string' ? modelFolderFromDirectory(source) : source;
}

/**
 * Reads and normalizes `config.json` of a model folder (a directory, or any {@link ModelFolder}).
 *
 * @example
 * ```ts
 * const config = await loadLlamaConfig('models/tinystories-656k');
 * ```
 */
export function loadLlamaConfig(source: ModelSource): Promise<LlamaConfig> {
  return browser.loadLlamaConfig(folderOf(source));
}

/**
 * Reads every tensor of a model folder's weights as float32: `model.safetensors`, or the shards listed in
 * `model.safetensors.index.json`, one tensor at a time through positional reads. A NaN or infinity in any tensor
 * throws core's `NonFiniteError` naming the file, the tensor and the element.
 *
 * @example
 * ```ts
 * const weights = await loadSafetensorsWeights('models/tinystories-656k');
 * weights.get('lm_head.weight')?.shape; // [2048, 128]
 * ```
 */
export function loadSafetensorsWeights(source: ModelSource): Promise<Map<string, Tensor<'float32'>>> {
  return browser.loadSafetensorsWeights(folderOf(source));
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
export function loadLlamaGraph(source: ModelSource, options: LoadLlamaOptions = {}): Promise<LlamaGraph> {
  return browser.loadLlamaGraph(folderOf(source), options);
}

/**
 * Loads graph and tokenizer of a Hugging Face Llama-family model folder; a missing directory is a
 * {@link ModelFileError} ("model folder not found").
 *
 * @example
 * ```ts
 * const { graph, tokenizer } = await loadLlamaModel('models/tinystories-656k');
 * const logits = await graph.forward([tokenizer.encode('Once upon a time', { bos: true })]);
 * ```
 */
export function loadLlamaModel(source: ModelSource, options: LoadLlamaOptions = {}): Promise<LlamaModel> {
  if (typeof source === 'string' && !existsSync(source)) return Promise.reject(new ModelFileError(source, 'model folder not found'));
  return browser.loadLlamaModel(folderOf(source), options);
}

/**
 * Loads the tokenizer of a Hugging Face model folder (`tokenizer.json`, plus `tokenizer_config.json` and the BOS/EOS
 * ids of `config.json` when present).
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer('models/tinystories-656k');
 * tok.decode([80, 147]); // 'Once upon'
 * ```
 */
export function loadTokenizer(source: ModelSource): Promise<TextTokenizer> {
  return loadTokenizerFrom(folderOf(source));
}
