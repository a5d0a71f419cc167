import { assertFinite, InvalidArgumentError } from '@bitsmith/core';
import type { LlamaGraph } from './llama-graph.js';

/** Options of {@link generateGreedy}. */
export interface GenerateOptions {
  /** New tokens to produce at most. Default 32. */
  maxNewTokens?: number;
  /** Stop after producing this id (it is included in the result). Default: the config's `eos_token_id`; `null` never stops early. */
  eosTokenId?: number | null;
  signal?: AbortSignal;
  /** Called with each new token id as it is produced. */
  onToken?: (id: number) => void;
}

/**
 * Greedy decoding: repeatedly appends the most likely next token (ties: the lowest id). Recomputes the whole
 * sequence at each step (no key/value cache), which is fine for short continuations and keeps the graph stateless.
 *
 * @param promptIds The prompt, including BOS if the model expects it.
 * @returns The new token ids (without the prompt).
 * @example
 * ```ts
 * const ids = await generateGreedy(graph, tokenizer.encode('Once upon a time', { bos: true }), { maxNewTokens: 40 });
 * console.log(tokenizer.decode(ids));
 * ```
 */
export async function generateGreedy(graph: LlamaGraph, promptIds: readonly number[], options: GenerateOptions = {}): Promise<number[]> {
  const maxNewTokens = options.maxNewTokens ?? 32;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new InvalidArgumentError('maxNewTokens', `must be a non-negative integer, got ${maxNewTokens}`);
  if (promptIds.length === 0) throw new InvalidArgumentError('promptIds', 'the prompt is empty; pass at least the BOS token');
  const maxPositions = graph.config.maxPositionEmbeddings;
  if (promptIds.length + maxNewTokens > maxPositions) {
    throw new InvalidArgumentError('maxNewTokens', `the prompt's ${promptIds.length} tokens plus ${maxNewTokens} new ones exceed the model's max_position_embeddings (${maxPositions}); ask for at most ${Math.max(0, maxPositions - promptIds.length)} new tokens`);
  }
  const eos = options.eosTokenId === undefined ? graph.config.eosTokenId : options.eosTokenId ?? undefined;
  const sequence = [...promptIds];
  const produced: number[] = [];
  for (let step = 0; step < maxNewTokens; step++) {
    options.signal?.throwIfAborted();
    const logits = await graph.forward([sequence], { lastTokenOnly: true, signal: options.signal });
    const row = logits.data;
    assertFinite(row, { what: `the logits after ${sequence.length} tokens (generation step ${step})` });
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
    sequence.push(best);
    produced.push(best);
    options.onToken?.(best);
    if (best === eos) break;
  }
  return produced;
}
