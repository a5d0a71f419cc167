import { assertFinite, InvalidArgumentError } from '@bitsmith/core';
import { sequenceBatches } from './hidden-states.js';
import type { LlamaGraph } from './llama-graph.js';

/** Options of {@link evaluateLanguageModel}. */
export interface EvaluateOptions {
  /** Window length in tokens, BOS included. Default 128. */
  ctx?: number;
  /** BOS id that starts every window. Default: the config's `bos_token_id` (required one way or the other). */
  bosTokenId?: number;
  /** A reference model (e.g. the float original) for KL divergence and top-1 agreement. Default none. */
  reference?: LlamaGraph;
  /** Windows per forward pass (bounds memory: `batchSize * ctx * vocabSize` logits). Default 8. */
  batchSize?: number;
  signal?: AbortSignal;
  /** Called after each batch with windows done and total. */
  onProgress?: (done: number, total: number) => void;
}

/** Result of {@link evaluateLanguageModel}; `protocol` says exactly how the figures were computed. */
export interface EvaluationResult {
  /** Text tokens scored (every token of the text once). */
  readonly tokens: number;
  readonly windows: number;
  readonly ctx: number;
  /** Mean negative log-likelihood per scored token (natural log). */
  readonly nll: number;
  /** `exp(nll)`. */
  readonly perplexity: number;
  /** Mean KL(reference || model) of the next-token distribution over the scored positions (nats); with a reference only. */
  readonly kl?: number;
  /** Fraction of scored positions where the model's and the reference's most likely next token agree; with a reference only. */
  readonly top1Agreement?: number;
  /**
   * Per window, in window order: the summed negative log-likelihood of its scored tokens (natural log), their count,
   * and with a reference the summed KL; for confidence intervals over windows ({@link perplexityRatioInterval}).
   */
  readonly perWindow: { readonly nll: Float64Array; readonly tokens: Int32Array; readonly kl?: Float64Array };
  readonly protocol: string;
}

/** The evaluation protocol, in words (also written into every result). */
export function evaluationProtocol(ctx: number, withReference: boolean): string {
  const base =
    `text encoded without special tokens; split into consecutive non-overlapping chunks of ctx-1 = ${ctx - 1} text tokens (the last chunk may be shorter); ` +
    `each window = [BOS] + chunk (at most ctx = ${ctx} tokens), positions restarting at 0; every text token is scored exactly once, ` +
    `predicted from BOS and the earlier tokens of its window (the prediction after a window's last token is not used); ` +
    `nll = mean negative natural-log likelihood over scored tokens; perplexity = exp(nll)`;
  return withReference
    ? `${base}; kl = mean over the same positions of KL(reference || model) = sum_v p_ref(v) (log p_ref(v) - log p_model(v)) in nats; ` +
        `top1Agreement = fraction of those positions where argmax p_model = argmax p_ref (ties: lowest id)`
    : base;
}

/**
 * Splits text tokens into evaluation windows: `[BOS] + next ctx-1 tokens`, non-overlapping.
 *
 * @example
 * ```ts
 * evaluationWindows([5, 6, 7, 8, 9], 3, 1); // [[1, 5, 6], [1, 7, 8], [1, 9]]
 * ```
 */
export function evaluationWindows(tokenIds: ArrayLike<number>, ctx: number, bosTokenId: number): number[][] {
  if (!Number.isInteger(ctx) || ctx < 2) throw new InvalidArgumentError('ctx', `must be an integer >= 2, got ${ctx}`);
  const windows: number[][] = [];
  for (let start = 0; start < tokenIds.length; start += ctx - 1) {
    const end = Math.min(tokenIds.length, start + ctx - 1);
    const w = [bosTokenId];
    for (let i = start; i < end; i++) w.push(tokenIds[i]!);
    windows.push(w);
  }
  return windows;
}

/** Log-softmax of one row into `out` (float64); returns the argmax. */
function logSoftmax(logits: Float32Array, offset: number, n: number, out: Float64Array): number {
  let max = -Infinity;
  let arg = 0;
  for (let j = 0; j < n; j++) {
    const v = logits[offset + j]!;
    if (v > max) {
      max = v;
      arg = j;
    }
  }
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(logits[offset + j]! - max);
  const lse = max + Math.log(sum);
  for (let j = 0; j < n; j++) out[j] = logits[offset + j]! - lse;
  return arg;
}

/**
 * Evaluates a causal language model on token ids: perplexity over non-overlapping BOS-prefixed windows and, with a
 * reference model, mean KL divergence of the next-token distributions and top-1 agreement. The exact protocol is
 * returned in `protocol` (see {@link evaluationProtocol}); it matches the `devHeldout` figures of the shared
 * `reference.json`.
 *
 * @param tokenIds The text's tokens, without special tokens.
 * @param options `ctx` (128), `bosTokenId` (config), `reference`, `batchSize` (8), `signal`, `onProgress`.
 * @example
 * ```ts
 * const ids = tokenizer.encode(await readFile('dev.txt', 'utf8'));
 * const { perplexity, kl, top1Agreement } = await evaluateLanguageModel(quantized, ids, { reference: original });
 * ```
 */
export async function evaluateLanguageModel(graph: LlamaGraph, tokenIds: ArrayLike<number>, options: EvaluateOptions = {}): Promise<EvaluationResult> {
  const ctx = options.ctx ?? 128;
  const bos = options.bosTokenId ?? graph.config.bosTokenId;
  if (bos === undefined) throw new InvalidArgumentError('bosTokenId', 'the config names no bos_token_id; pass bosTokenId');
  if (tokenIds.length === 0) throw new InvalidArgumentError('tokenIds', 'no tokens to evaluate');
  const reference = options.reference;
  const vocab = graph.lmHead.outFeatures;
  if (reference && reference.lmHead.outFeatures !== vocab) {
    throw new InvalidArgumentError('reference', `vocabulary sizes differ (${vocab} vs ${reference.lmHead.outFeatures})`);
  }
  const maxPositions = graph.config.maxPositionEmbeddings;
  if (ctx > maxPositions) throw new InvalidArgumentError('ctx', `${ctx} tokens exceed the model's max_position_embeddings (${maxPositions}); positions beyond it were never trained and give a wrong perplexity. Use ctx <= ${maxPositions}`);
  const windows = evaluationWindows(tokenIds, ctx, bos);
  const lp = new Float64Array(vocab);
  const lpRef = new Float64Array(vocab);
  let nllSum = 0;
  let klSum = 0;
  let agree = 0;
  let scored = 0;
  const windowNll = new Float64Array(windows.length);
  const windowTokens = new Int32Array(windows.length);
  const windowKl = reference ? new Float64Array(windows.length) : undefined;
  const batches = sequenceBatches(windows.length, options.batchSize ?? 8);
  let logitsBuffer = new Float32Array(0);
  let refBuffer = new Float32Array(0);
  let done = 0;
  for (const [start, end] of batches) {
    options.signal?.throwIfAborted();
    const batch = windows.slice(start, end);
    // One logits array per model for all batches (the largest batch's size): mapping fresh memory for each batch's
    // logits cost more than its head GEMM on a VM (about 4 ms per MiB against a few for reuse).
    const rows = batch.reduce((n, w) => n + w.length, 0);
    if (logitsBuffer.length < rows * vocab) logitsBuffer = new Float32Array(rows * vocab);
    if (reference && refBuffer.length < rows * vocab) refBuffer = new Float32Array(rows * vocab);
    const logits = (await graph.forward(batch, { signal: options.signal, logits: logitsBuffer })).data;
    const refLogits = reference ? (await reference.forward(batch, { signal: options.signal, logits: refBuffer })).data : undefined;
    assertFinite(logits, { what: `the logits of evaluation windows ${start}..${end - 1}`, shape: [logits.length / vocab, vocab] });
    if (refLogits) assertFinite(refLogits, { what: `the reference model's logits of evaluation windows ${start}..${end - 1}`, shape: [refLogits.length / vocab, vocab] });
    let row = 0;
    let index = start;
    for (const w of batch) {
      // Position p (0 .. len-2) predicts token w[p + 1]; the last position predicts beyond the window.
      for (let p = 0; p < w.length - 1; p++, row++) {
        const offset = row * vocab;
        const arg = logSoftmax(logits, offset, vocab, lp);
        nllSum -= lp[w[p + 1]!]!;
        windowNll[index] -= lp[w[p + 1]!]!;
        windowTokens[index]++;
        if (refLogits) {
          const argRef = logSoftmax(refLogits, offset, vocab, lpRef);
          let kl = 0;
          for (let j = 0; j < vocab; j++) {
            const l = lpRef[j]!;
            kl += Math.exp(l) * (l - lp[j]!);
          }
          klSum += kl;
          windowKl![index] += kl;
          if (arg === argRef) agree++;
        }
        scored++;
      }
      row++; // skip the window's last position
      index++;
    }
    done += batch.length;
    options.onProgress?.(done, windows.length);
  }
  const nll = nllSum / scored;
  const result: EvaluationResult = {
    tokens: scored,
    windows: windows.length,
    ctx,
    nll,
    perplexity: Math.exp(nll),
    ...(reference ? { kl: klSum / scored, top1Agreement: agree / scored } : {}),
    perWindow: { nll: windowNll, tokens: windowTokens, ...(windowKl ? { kl: windowKl } : {}) },
    protocol: evaluationProtocol(ctx, reference !== undefined),
  };
  return result;
}
