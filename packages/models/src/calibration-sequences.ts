import { InvalidArgumentError } from '@bitsmith/core';
import { mulberry32 } from '@bitsmith/linalg';

/** How calibration sequences were cut from a text, recorded in `quantization.json`. */
export interface CalibrationProtocol {
  readonly file: string;
  readonly samples: number;
  readonly sequenceLength: number;
  readonly tokens: number;
  readonly description: string;
}

/**
 * Cuts calibration sequences from a token stream, each `[BOS] + sequenceLength - 1` text tokens:
 * - without `seed`: consecutive, non-overlapping chunks from the start, at most `samples` of them (fewer when the
 *   text is short, with a warning that says how many sequences and tokens it yields; a final chunk shorter than
 *   min(8, chunk length) tokens is dropped);
 * - with `seed`: exactly `samples` windows at seeded uniformly random offsets (they may overlap), the way GPTQ's data
 *   loaders sample calibration text; different seeds give different calibration sets, to measure how much a result
 *   depends on the calibration data (a warning when the text holds fewer distinct windows than `samples`).
 *
 * @example
 * ```ts
 * const { sequences } = calibrationSequences(tokenizer.encode(text, { bos: false }), { samples: 128, sequenceLength: 128, bosTokenId: 1, file });
 * ```
 */
export function calibrationSequences(
  ids: readonly number[],
  options: { samples: number; sequenceLength: number; bosTokenId: number | undefined; file: string; seed?: number },
): { sequences: number[][]; protocol: CalibrationProtocol; warnings: string[] } {
  const { samples, sequenceLength, bosTokenId, file, seed } = options;
  if (!Number.isInteger(sequenceLength) || sequenceLength < 2) throw new InvalidArgumentError('--seq-len', `must be an integer >= 2, got ${sequenceLength}`);
  const body = bosTokenId === undefined ? sequenceLength : sequenceLength - 1;
  if (seed !== undefined) {
    if (!Number.isInteger(seed) || seed < 0) throw new InvalidArgumentError('--calibration-seed', `must be a non-negative integer, got ${seed}`);
    if (!Number.isInteger(samples) || samples < 1) throw new InvalidArgumentError('--samples', `must be a positive integer, got ${samples}`);
    if (ids.length < body) throw new InvalidArgumentError('--calibration', `${file} holds ${ids.length} tokens, fewer than one window of ${body}`);
    const random = mulberry32(seed);
    const sequences = Array.from({ length: samples }, () => {
      const start = Math.floor(random() * (ids.length - body + 1));
      const chunk = ids.slice(start, start + body);
      return bosTokenId === undefined ? chunk : [bosTokenId, ...chunk];
    });
    const distinct = ids.length - body + 1;
    const warnings = distinct < samples ? [`${file} holds ${ids.length} tokens: only ${distinct} distinct windows of ${body} for the ${samples} requested samples; windows repeat`] : [];
    return {
      sequences,
      warnings,
      protocol: {
        file,
        samples,
        sequenceLength,
        tokens: samples * (body + (bosTokenId === undefined ? 0 : 1)),
        description: `${samples} sequences of ${sequenceLength} tokens (${bosTokenId === undefined ? '' : 'BOS + '}${body} consecutive text tokens at random offsets of ${file}, seed ${seed})`,
      },
    };
  }
  const sequences: number[][] = [];
  for (let start = 0; sequences.length < samples && start < ids.length; start += body) {
    const chunk = ids.slice(start, start + body);
    if (chunk.length < Math.min(body, 8)) break;
    sequences.push(bosTokenId === undefined ? chunk : [bosTokenId, ...chunk]);
  }
  if (sequences.length === 0) throw new InvalidArgumentError('--calibration', `${file} holds too few tokens (${ids.length}) for one sequence`);
  const tokens = sequences.reduce((a, s) => a + s.length, 0);
  const requested = samples * sequenceLength;
  const warnings =
    sequences.length < samples || tokens < requested
      ? [`${file} yields ${sequences.length} of the ${samples} requested sequences: ${tokens} of ${requested} tokens (the text holds ${ids.length}); calibration uses fewer tokens than asked`]
      : [];
  return {
    sequences,
    warnings,
    protocol: {
      file,
      samples: sequences.length,
      sequenceLength,
      tokens,
      description: `${sequences.length} sequences of up to ${sequenceLength} tokens (BOS + consecutive non-overlapping text tokens from the start of ${file})`,
    },
  };
}
