import { open, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { readChecked } from './checked-read.js';
import { ggufLlamaFile, type GgufLlamaSource, type SaveGgufOptions, type SaveGgufResult } from './gguf-llama-export.js';
import { ggufTokenizerMetadataFromJson, type GgufTokenizerMetadata } from './gguf-llama-tokenizer.js';
import { parseGguf, type GgufFile } from './gguf-reader.js';
import { plan, type GgufFileInput } from './gguf-writer.js';

// Node only (exported from the package's `node` entry): GGUF files on disk.

/**
 * Reads and parses a GGUF file (see {@link parseGguf}); every problem is an error naming the file (core's
 * `InvalidFileError` for malformed content, `UnsupportedFormatError` for unsupported versions or types).
 *
 * @example
 * ```ts
 * const file = await readGguf('model.Q4_0.gguf');
 * file.tensors.map((t) => `${t.name} ${t.type} [${t.shape}]`);
 * ```
 */
export async function readGguf(path: string): Promise<GgufFile> {
  return readChecked(path, 'a GGUF v2/v3 file', async () => {
    const buf = await readFile(path);
    return parseGguf(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  });
}

/**
 * Writes a GGUF v3 file (see {@link encodeGguf}), streaming tensor data to disk one tensor at a time.
 *
 * @example
 * ```ts
 * await writeGguf('model.gguf', { metadata, tensors });
 * ```
 */
export async function writeGguf(path: string, input: GgufFileInput): Promise<void> {
  const p = plan(input);
  const file = await open(path, 'w');
  try {
    await file.write(p.header, 0, p.header.length, 0);
    let position = p.header.length;
    for (let i = 0; i < input.tensors.length; i++) {
      const t = input.tensors[i]!;
      const start = p.header.length + p.offsets[i]!;
      if (start > position) await file.write(new Uint8Array(start - position), 0, start - position, position);
      await file.write(t.data, 0, t.data.byteLength, start);
      position = start + t.data.byteLength;
    }
    const end = p.header.length + p.dataBytes;
    if (end > position) await file.write(new Uint8Array(end - position), 0, end - position, position);
  } finally {
    await file.close();
  }
}

/**
 * Builds the `tokenizer.ggml.*` metadata of a model folder's `tokenizer.json` (and `tokenizer_config.json` when
 * present); see {@link ggufTokenizerMetadataFromJson}.
 *
 * @param tokenizerDir Folder with `tokenizer.json` and optionally `tokenizer_config.json`.
 * @example
 * ```ts
 * const { model, entries } = await ggufTokenizerMetadata('models/tinystories-656k'); // model 'llama'
 * ```
 */
export async function ggufTokenizerMetadata(tokenizerDir: string, vocabSize?: number): Promise<GgufTokenizerMetadata> {
  const json = JSON.parse(await readFile(join(tokenizerDir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  let config: Record<string, unknown> = {};
  try {
    config = JSON.parse(await readFile(join(tokenizerDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    config = {};
  }
  return ggufTokenizerMetadataFromJson(json, config, vocabSize);
}

/**
 * Saves a Llama-family model graph (float weights, e.g. after GPTQ updated them) as a GGUF file that llama.cpp loads:
 * llama.cpp tensor names, q/k rows permuted for GGML's RoPE, 2-D weights encoded with ggml's reference quantizer of
 * the requested type (1-D norms and biases F32), `llama.*` hyperparameters and the tokenizer.
 *
 * With `options.stored` (the recipe's stored forms) grids are written from their codes and scales where the type
 * holds them, k-quant scales re-derived from them, else re-quantized with a warning; every tensor reports its `path`
 * (see `ggufLlamaFile`). Layers without a calibrated result are quantized with ggml's quantizers (importance-weighted
 * with `options.importance`). Rows whose length is not a multiple of the block size fall back as llama.cpp's quantize
 * does (Q4_K to Q5_0, Q6_K to Q8_0; legacy types to F16), reported in `warnings`. Lookup-table, codebook, low-rank
 * and sparse-outlier layers are refused with `StoredFormRefusedError` before anything is written.
 *
 * @param outPath File to write.
 * @param graph The model (a `LlamaGraph`).
 * @param tokenizerDir Folder with `tokenizer.json` (and `tokenizer_config.json`).
 * @param options `type` of the weights; `name` (default: the tokenizer folder's name).
 * @throws UnsupportedFormatError for model types other than llama/mistral, llama3 RoPE scaling, or run-time input
 *   transforms (online rotations) that GGUF cannot express.
 * @example
 * ```ts
 * const graph = await loadLlamaGraph('models/tinystories-656k');
 * await saveGgufModel('tinystories.Q8_0.gguf', graph, 'models/tinystories-656k', { type: 'Q8_0' });
 * ```
 */
export async function saveGgufModel(outPath: string, graph: GgufLlamaSource, tokenizerDir: string, options: SaveGgufOptions): Promise<SaveGgufResult> {
  const tokenizer = await ggufTokenizerMetadata(tokenizerDir, graph.config.vocabSize);
  const { file, ...result } = ggufLlamaFile(graph, tokenizer, { ...options, name: options.name ?? basename(tokenizerDir) });
  await writeGguf(outPath, file);
  return result;
}
