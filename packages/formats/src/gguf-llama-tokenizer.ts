import { UnsupportedFormatError } from '@bitsmith/core';
import { GGUF_TOKEN_TYPE } from './gguf-constants.js';
import type { GgufValue } from './gguf-metadata.js';

/** Which llama.cpp tokenizer a GGUF file asks for, and why. */
export interface GgufTokenizerMetadata {
  /** `'llama'` (SentencePiece-style: ▁ for spaces, score-ordered merging, `<0xXX>` byte fallback) or `'gpt2'` (byte-level BPE with merges). */
  readonly model: 'llama' | 'gpt2';
  readonly entries: readonly (readonly [string, GgufValue])[];
}

interface HfAddedToken { id: number; content: string; special?: boolean }

function tokenId(config: Record<string, unknown>, key: string, vocab: Map<string, number>): number | undefined {
  const v = config[key];
  const content = typeof v === 'string' ? v : typeof v === 'object' && v !== null ? (v as { content?: string }).content : undefined;
  return content === undefined ? undefined : vocab.get(content);
}

function mentions(node: unknown, type: string): boolean {
  if (typeof node !== 'object' || node === null) return false;
  if ((node as { type?: unknown }).type === type) return true;
  return Object.values(node).some((v) => (Array.isArray(v) ? v.some((x) => mentions(x, type)) : mentions(v, type)));
}

/**
 * Builds the `tokenizer.ggml.*` metadata of a Hugging Face BPE `tokenizer.json`.
 *
 * - SentencePiece-like BPE (a `▁` normalizer or Metaspace pre-tokenizer, no ByteLevel): `tokenizer.ggml.model =
 *   "llama"`. llama.cpp's SPM tokenizer repeatedly merges the adjacent pair whose concatenation has the highest
 *   score; with score = -(rank of the merge that creates the token) that is exactly the BPE merge order, so the
 *   tokenization matches Hugging Face's. Tokens no merge creates get scores below every merge.
 * - Byte-level BPE (ByteLevel pre-tokenizer): `"gpt2"` with `tokenizer.ggml.merges` and `tokenizer.ggml.pre = "default"`.
 *
 * Token types: added special tokens are CONTROL, the unknown token UNKNOWN, `<0xXX>` BYTE, the rest NORMAL.
 *
 * @param json The parsed `tokenizer.json`.
 * @param config The parsed `tokenizer_config.json` (default `{}`).
 * @param vocabSize The model's vocabulary size, when it exceeds the tokenizer's (padding tokens are added).
 * @example
 * ```ts
 * const { model, entries } = ggufTokenizerMetadataFromJson(tokenizerJson, tokenizerConfig); // model 'llama'
 * ```
 */
export function ggufTokenizerMetadataFromJson(json: Record<string, unknown>, config: Record<string, unknown> = {}, vocabSize?: number): GgufTokenizerMetadata {
  const model = json.model as { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; unk_token?: string } | undefined;
  if (!model || model.type !== 'BPE' || typeof model.vocab !== 'object') {
    throw new UnsupportedFormatError(`tokenizer.json: only BPE models are exported to GGUF (got ${String(model?.type)})`);
  }
  const vocab = new Map<string, number>(Object.entries(model.vocab));
  const added = (Array.isArray(json.added_tokens) ? json.added_tokens : []) as HfAddedToken[];
  for (const t of added) vocab.set(t.content, t.id);
  let size = 0;
  for (const id of vocab.values()) size = Math.max(size, id + 1);
  if (vocabSize !== undefined) size = Math.max(size, vocabSize);
  const tokens: string[] = new Array<string>(size);
  for (const [text, id] of vocab) tokens[id] = text;
  for (let i = 0; i < size; i++) if (tokens[i] === undefined) tokens[i] = `[PAD${i}]`;
  const special = new Set(added.filter((t) => t.special !== false).map((t) => t.id));
  const unkId = model.unk_token !== undefined ? vocab.get(model.unk_token) : undefined;
  const tokenType = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    const text = tokens[i]!;
    if (i === unkId) tokenType[i] = GGUF_TOKEN_TYPE.unknown;
    else if (special.has(i)) tokenType[i] = GGUF_TOKEN_TYPE.control;
    else if (/^<0x[0-9A-F]{2}>$/.test(text)) tokenType[i] = GGUF_TOKEN_TYPE.byte;
    else if (text.startsWith('[PAD') && !vocab.has(text)) tokenType[i] = GGUF_TOKEN_TYPE.unused;
    else tokenType[i] = GGUF_TOKEN_TYPE.normal;
  }
  const merges = (model.merges ?? []).map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));
  const byteLevel = mentions(json.pre_tokenizer, 'ByteLevel');
  const entries: [string, GgufValue][] = [];
  const kind: 'llama' | 'gpt2' = byteLevel ? 'gpt2' : 'llama';
  entries.push(['tokenizer.ggml.model', { type: 'string', value: kind }]);
  if (kind === 'gpt2') entries.push(['tokenizer.ggml.pre', { type: 'string', value: 'default' }]);
  entries.push(['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }]);
  if (kind === 'llama') {
    // score = -(rank of the merge creating the token); single characters 0; other tokens below every merge
    const scores = new Float32Array(size);
    for (let i = 0; i < size; i++) scores[i] = [...tokens[i]!].length > 1 ? -(merges.length + i) : 0;
    merges.forEach((m, rank) => {
      const id = vocab.get(m.replace(' ', ''));
      if (id !== undefined && scores[id]! < -rank) scores[id] = -rank;
    });
    for (const id of special) scores[id] = 0;
    entries.push(['tokenizer.ggml.scores', { type: 'array', itemType: 'float32', value: scores }]);
  }
  entries.push(['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: tokenType }]);
  if (kind === 'gpt2') entries.push(['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: merges }]);
  const bos = tokenId(config, 'bos_token', vocab);
  const eos = tokenId(config, 'eos_token', vocab);
  const pad = tokenId(config, 'pad_token', vocab);
  if (bos !== undefined) entries.push(['tokenizer.ggml.bos_token_id', { type: 'uint32', value: bos }]);
  if (eos !== undefined) entries.push(['tokenizer.ggml.eos_token_id', { type: 'uint32', value: eos }]);
  if (unkId !== undefined) entries.push(['tokenizer.ggml.unknown_token_id', { type: 'uint32', value: unkId }]);
  if (pad !== undefined) entries.push(['tokenizer.ggml.padding_token_id', { type: 'uint32', value: pad }]);
  entries.push(['tokenizer.ggml.add_bos_token', { type: 'bool', value: config.add_bos_token !== false && bos !== undefined }]);
  entries.push(['tokenizer.ggml.add_eos_token', { type: 'bool', value: config.add_eos_token === true }]);
  if (kind === 'llama') entries.push(['tokenizer.ggml.add_space_prefix', { type: 'bool', value: mentions(json.normalizer, 'Prepend') || mentions(json.pre_tokenizer, 'Metaspace') }]);
  return { model: kind, entries };
}
