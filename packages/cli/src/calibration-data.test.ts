import { describe, expect, it } from 'vitest';
import { calibrationSequences } from './calibration-data.js';

const ids = Array.from({ length: 1000 }, (_, i) => 10 + i); // token i is 10 + i: a window's offset is readable

describe('calibrationSequences', () => {
  it('without a seed: consecutive BOS-prefixed chunks from the start, fewer when the text is short', () => {
    const { sequences, protocol } = calibrationSequences(ids, { samples: 3, sequenceLength: 5, bosTokenId: 1, file: 'c.txt' });
    expect(sequences).toEqual([
      [1, 10, 11, 12, 13],
      [1, 14, 15, 16, 17],
      [1, 18, 19, 20, 21],
    ]);
    expect(protocol.tokens).toBe(15);
    const all = calibrationSequences(ids.slice(0, 10), { samples: 100, sequenceLength: 5, bosTokenId: 1, file: 'c.txt' });
    expect(all.sequences.flatMap((s) => s.slice(1))).toEqual(ids.slice(0, 8)); // a tail under min(8, 4) tokens is dropped
    const tail = calibrationSequences(ids.slice(0, 20), { samples: 100, sequenceLength: 17, bosTokenId: 1, file: 'c.txt' });
    expect(tail.sequences.map((s) => s.length)).toEqual([17]); // 4 left over, fewer than 8: dropped
  });

  it('with a seed: exactly `samples` contiguous windows inside the text, reproducible, different per seed', () => {
    const a = calibrationSequences(ids, { samples: 50, sequenceLength: 128, bosTokenId: 1, file: 'c.txt', seed: 7 });
    const again = calibrationSequences(ids, { samples: 50, sequenceLength: 128, bosTokenId: 1, file: 'c.txt', seed: 7 });
    const other = calibrationSequences(ids, { samples: 50, sequenceLength: 128, bosTokenId: 1, file: 'c.txt', seed: 8 });
    expect(a.sequences).toEqual(again.sequences);
    expect(a.sequences).not.toEqual(other.sequences);
    expect(a.sequences).toHaveLength(50);
    const starts = a.sequences.map((s) => {
      expect(s).toHaveLength(128);
      expect(s[0]).toBe(1);
      const start = s[1]! - 10;
      expect(s.slice(1)).toEqual(ids.slice(start, start + 127)); // contiguous text
      return start;
    });
    expect(Math.min(...starts)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...starts)).toBeLessThanOrEqual(1000 - 127);
    expect(new Set(starts).size).toBeGreaterThan(40); // spread over the text, not one offset
    expect(a.protocol.description).toContain('seed 7');
    expect(a.protocol.tokens).toBe(50 * 128);
  });

  it('names the bad option', () => {
    expect(() => calibrationSequences(ids, { samples: 2, sequenceLength: 1, bosTokenId: 1, file: 'c.txt' })).toThrow(/--seq-len/);
    expect(() => calibrationSequences(ids, { samples: 2, sequenceLength: 8, bosTokenId: 1, file: 'c.txt', seed: -1 })).toThrow(/--calibration-seed/);
    expect(() => calibrationSequences(ids.slice(0, 5), { samples: 2, sequenceLength: 8, bosTokenId: 1, file: 'c.txt', seed: 1 })).toThrow(/c\.txt holds 5 tokens/);
  });
});

describe('calibrationSequences warnings', () => {
  it('say how many sequences and tokens a short text yields, and nothing when the text suffices', () => {
    const short = calibrationSequences(ids.slice(0, 20), { samples: 4, sequenceLength: 9, bosTokenId: 1, file: 'c.txt' });
    // 20 tokens in chunks of 8: two full chunks and a 4-token tail (dropped, under 8).
    expect(short.sequences).toHaveLength(2);
    expect(short.warnings).toEqual(['c.txt yields 2 of the 4 requested sequences: 18 of 36 tokens (the text holds 20); calibration uses fewer tokens than asked']);
    expect(calibrationSequences(ids, { samples: 4, sequenceLength: 9, bosTokenId: 1, file: 'c.txt' }).warnings).toEqual([]);
    const seeded = calibrationSequences(ids.slice(0, 10), { samples: 5, sequenceLength: 9, bosTokenId: 1, file: 'c.txt', seed: 3 });
    expect(seeded.warnings).toEqual(['c.txt holds 10 tokens: only 3 distinct windows of 8 for the 5 requested samples; windows repeat']);
  });
});
