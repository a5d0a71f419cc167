// The `node` entry of @bitsmith/models (what `import '@bitsmith/models'` gives in Node, through the `node` export
// condition; also `@bitsmith/models/node`): everything of the browser-safe default entry, plus file access. Where a
// name exists in both, this entry's version takes a directory path where the default entry takes a base URL.
export * from './index.js';

// Files on disk
export { openSafetensors } from './safetensors-open.js';
export { writeSafetensors } from './safetensors-write-file.js';
export { readTextFile, readJsonFile, readFileBytes } from './json-file.js';
export { modelFolderFromDirectory } from './model-folder-node.js';
export { loadLlamaConfig, loadSafetensorsWeights, loadLlamaGraph, loadLlamaModel, loadTokenizer } from './load-llama-node.js';

// tfjs models on disk (load from a path, save to a directory) and sentence encoders (default: the USE lite package)
export type { WriteTfjsModelResult } from './tfjs-graph-model-io-node.js';
export { readTfjsModel, fileIOHandler, readTfjsArtifacts, readTfjsModelJson, writeTfjsModel, writeTfjsModelFiles } from './tfjs-graph-model-io-node.js';
export { TfjsGraphModel } from './tfjs-graph-model-node.js';
export type { SentenceEncoder } from './tfjs-graph-model-sentence-encoder-node.js';
export { loadSentenceEncoder, defaultSentenceEncoderPath } from './tfjs-graph-model-sentence-encoder-node.js';
