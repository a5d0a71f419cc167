import { describe, expect, it } from 'vitest';
import { sotuSentenceSplits, splitSentences } from './sotu-sentences.js';

describe('State of the Union sentences', () => {
  it('splits at sentence ends followed by a capital', () => {
    expect(splitSentences('We met.  The U.S. economy grew! Did it?  "Yes," he said. ok')).toEqual(['We met.', 'The U.S. economy grew!', 'Did it?', '"Yes," he said. ok']);
  });

  it('gives disjoint, seeded calibration and held-out sets', async () => {
    const a = await sotuSentenceSplits({ calibration: 20, evaluation: 20, seed: 3, years: [2000, 2003] });
    const b = await sotuSentenceSplits({ calibration: 20, evaluation: 20, seed: 3, years: [2000, 2003] });
    expect(a.calibration).toEqual(b.calibration);
    expect(a.calibration).toHaveLength(20);
    const held = new Set(a.evaluation);
    expect(a.calibration.some((s) => held.has(s))).toBe(false);
    expect((await sotuSentenceSplits({ calibration: 20, evaluation: 20, seed: 4, years: [2000, 2003] })).calibration).not.toEqual(a.calibration);
  });
});
