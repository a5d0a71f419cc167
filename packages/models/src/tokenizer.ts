import { Tokenizer } from '@huggingface/tokenizers';
import { ModelFileError } from './model-file-error.js';
import { modelFolderFromUrl, type ModelFolder } from './model-folder.js';
import { decodeJsonFile } from './text-file.js';

/** A text tokenizer with explicit control of the BOS token. */
export interface TextTokenizer {
  /** Text to token ids, without special tokens; `{ bos: true }` prepends the BOS id. */
  encode(text: string, options?: { bos?: boolean }): number[];
  /** Token ids to text; special tokens are skipped unless `skipSpecialTokens` is false. */
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  /** The token string of an id, or undefined. */
  idToToken(id: number): string | undefined;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  /** Number of ids (vocabulary plus added tokens). */
  readonly vocabSize: number;
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/**
 * Wraps a Hugging Face `tokenizer.json` (and optional `tokenizer_config.json`) in a {@link TextTokenizer}, using
 * `@huggingface/tokenizers` (BPE with byte fallback, SentencePiece-style normalizers, added tokens).
 *
 * @param tokenizerJson The parsed `tokenizer.json`.
 * @param tokenizerConfig The parsed `tokenizer_config.json` (default `{}`); its `bos_token`/`eos_token` name the special ids.
 * @param fallback Ids to use when the tokenizer files do not name BOS/EOS (e.g. from `config.json`).
 * @example
 * ```ts
 * const tok = createTokenizer(json, config);
 * tok.encode('Once upon a time', { bos: true }); // [1, 80, 147, 201, 282, 57]
 * ```
 */
export function createTokenizer(
  tokenizerJson: unknown,
  tokenizerConfig: unknown = {},
  fallback: { bosTokenId?: number | undefined; eosTokenId?: number | undefined } = {},
  path = 'tokenizer.json',
): TextTokenizer {
  if (typeof tokenizerJson !== 'object' || tokenizerJson === null || typeof (tokenizerJson as { model?: unknown }).model !== 'object') {
    throw new ModelFileError(path, 'not a Hugging Face tokenizer.json (no "model" object)');
  }
  const cfg = (typeof tokenizerConfig === 'object' && tokenizerConfig !== null ? tokenizerConfig : {}) as Record<string, unknown>;
  let inner: Tokenizer;
  try {
    inner = new Tokenizer(tokenizerJson, cfg);
  } catch (cause) {
    throw new ModelFileError(path, `cannot build the tokenizer (${(cause as Error).message})`, { cause });
  }
  const idOf = (key: string): number | undefined => {
    const content = tokenContent(cfg[key]);
    return content === undefined ? undefined : inner.token_to_id(content);
  };
  const bosTokenId = idOf('bos_token') ?? fallback.bosTokenId;
  const eosTokenId = idOf('eos_token') ?? fallback.eosTokenId;
  const vocabSize = inner.get_vocab(true).size;
  return {
    bosTokenId,
    eosTokenId,
    vocabSize,
    encode(text, options = {}) {
      const ids = text.length === 0 ? [] : inner.encode(text, { add_special_tokens: false }).ids;
      if (options.bos) {
        if (bosTokenId === undefined) throw new ModelFileError(path, 'the tokenizer defines no BOS token');
        return [bosTokenId, ...ids];
      }
      return ids;
    },
    decode(ids, options = {}) {
      return inner.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? true });
    },
    idToToken(id) {
      return inner.id_to_token(id);
    },
  };
}

/**
 * Loads the tokenizer of a Hugging Face model folder (`tokenizer.json`, plus `tokenizer_config.json` and the BOS/EOS
 * ids of `config.json` when present).
 *
 * @param source A {@link ModelFolder}, or a string: a base URL here, a directory in the `node` entry.
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer('models/tinystories-656k');
 * tok.decode([80, 147]); // 'Once upon'
 * ```
 */
export async function loadTokenizer(source: ModelFolder | string): Promise<TextTokenizer> {
  const folder = typeof source === 'string' ? modelFolderFromUrl(source) : source;
  const read = async (name: string) => decodeJsonFile(await folder.readBytes(name), folder.path(name));
  const path = folder.path('tokenizer.json');
  const json = await read('tokenizer.json');
  const optional = async (name: string): Promise<Record<string, unknown>> => {
    try {
      return (await read(name)) as Record<string, unknown>;
    } catch (error) {
      if (ModelFileError.isInstance(error) && error.message.endsWith('file not found')) return {};
      throw error;
    }
  };
  const tokenizerConfig = await optional('tokenizer_config.json');
  const modelConfig = await optional('config.json');
  const first = (v: unknown): number | undefined => (typeof v === 'number' ? v : Array.isArray(v) && typeof v[0] === 'number' ? v[0] : undefined);
  return createTokenizer(json, tokenizerConfig, { bosTokenId: first(modelConfig.bos_token_id), eosTokenId: first(modelConfig.eos_token_id) }, path);
}
