import { InvalidArgumentError } from '@bitsmith/core';
import { mulberry32 } from '@bitsmith/linalg';
import type { EvaluationResult } from './evaluate.js';

/** Options of {@link perplexityRatioInterval}. */
export interface PerplexityIntervalOptions {
  /** Two-sided confidence level. Default 0.95. */
  confidence?: number;
  /** Bootstrap resamples of the windows. Default 2000. */
  resamples?: number;
  /** Seed of the resampling. Default 0. */
  seed?: number;
}

/** A paired comparison of two evaluations of the same text: `b` relative to `a`. */
export interface PerplexityRatioInterval {
  /** `perplexity(b) / perplexity(a)` = `exp(nll_b - nll_a)`. */
  readonly ratio: number;
  /** Percentile-bootstrap interval of the ratio (windows resampled with replacement, the same windows for both). */
  readonly low: number;
  readonly high: number;
  /**
   * Standard error of `nll_b - nll_a` over windows (the ratio estimator's delta-method standard error, windows as
   * clusters, since tokens of one window are not independent).
   */
  readonly standardError: number;
  readonly confidence: number;
  readonly windows: number;
}

/**
 * How much of a perplexity difference is evaluation noise: a paired bootstrap over evaluation windows of the ratio
 * `perplexity(b) / perplexity(a)` for two models evaluated on the same tokens with the same protocol. An interval
 * that contains 1 means the text cannot tell the two models apart at that confidence. (It measures only the noise of
 * the evaluation text; the noise of calibration data or random seeds needs repeated runs.)
 *
 * @example
 * ```ts
 * const a = await evaluateLanguageModel(gptqGraph, ids, { reference });
 * const b = await evaluateLanguageModel(rotatedGraph, ids, { reference });
 * const { ratio, low, high } = perplexityRatioInterval(a, b); // e.g. 1.012 [0.998, 1.027]
 * ```
 */
export function perplexityRatioInterval(a: EvaluationResult, b: EvaluationResult, options: PerplexityIntervalOptions = {}): PerplexityRatioInterval {
  const confidence = options.confidence ?? 0.95;
  if (!(confidence > 0 && confidence < 1)) throw new InvalidArgumentError('confidence', `expected a number in (0, 1), got ${confidence}`);
  const resamples = options.resamples ?? 2000;
  if (!Number.isInteger(resamples) || resamples < 10) throw new InvalidArgumentError('resamples', `expected an integer >= 10, got ${resamples}`);
  const n = a.perWindow.nll.length;
  if (b.perWindow.nll.length !== n) throw new InvalidArgumentError('b', `has ${b.perWindow.nll.length} windows; a has ${n} (evaluate both on the same tokens and ctx)`);
  for (let w = 0; w < n; w++) {
    if (a.perWindow.tokens[w] !== b.perWindow.tokens[w]) throw new InvalidArgumentError('b', `window ${w} scores ${b.perWindow.tokens[w]} tokens; a's scores ${a.perWindow.tokens[w]} (evaluate both on the same tokens and ctx)`);
  }
  if (n < 2) throw new InvalidArgumentError('a', `needs at least 2 windows for an interval, got ${n}`);
  const diff = new Float64Array(n);
  let totalTokens = 0;
  let totalDiff = 0;
  for (let w = 0; w < n; w++) {
    diff[w] = b.perWindow.nll[w]! - a.perWindow.nll[w]!;
    totalDiff += diff[w]!;
    totalTokens += a.perWindow.tokens[w]!;
  }
  const meanDiff = totalDiff / totalTokens;
  let ss = 0;
  for (let w = 0; w < n; w++) {
    const r = diff[w]! - meanDiff * a.perWindow.tokens[w]!;
    ss += r * r;
  }
  const standardError = Math.sqrt((n / (n - 1)) * ss) / totalTokens;
  const random = mulberry32(options.seed ?? 0);
  const draws = new Float64Array(resamples);
  for (let s = 0; s < resamples; s++) {
    let d = 0;
    let t = 0;
    for (let k = 0; k < n; k++) {
      const w = Math.floor(random() * n);
      d += diff[w]!;
      t += a.perWindow.tokens[w]!;
    }
    draws[s] = d / t;
  }
  draws.sort();
  const tail = (1 - confidence) / 2;
  const at = (q: number) => draws[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))]!;
  return { ratio: Math.exp(meanDiff), low: Math.exp(at(tail)), high: Math.exp(at(1 - tail)), standardError, confidence, windows: n };
}
