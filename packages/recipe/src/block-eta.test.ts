import { describe, expect, it } from 'vitest';
import { BlockEta, formatDuration } from './block-eta.js';

describe('BlockEta', () => {
  it('has no estimate before a block finished, then mean x blocks left less the time in the current block', () => {
    const eta = new BlockEta(10);
    expect(eta.remaining(0)).toBeUndefined();
    expect(eta.blockRemaining(1)).toBeUndefined();
    eta.finished(0, 4);
    eta.finished(1, 6);
    // mean 5 s; blocks 2..9 left (8 blocks) = 40 s, 1.5 s already spent on block 2.
    expect(eta.remaining(2, 1.5)).toBe(38.5);
    expect(eta.blockRemaining(1.5)).toBe(3.5);
    expect(eta.blockRemaining(9)).toBe(0);
    expect(eta.remaining(10)).toBe(0);
  });

  it('counts only the blocks finished in this process (a resumed run starting at block 6)', () => {
    const eta = new BlockEta(8);
    eta.finished(6, 3);
    expect(eta.remaining(7)).toBe(3);
    expect(eta.remaining(8)).toBe(0);
  });
});

describe('formatDuration', () => {
  it('writes seconds, minutes and hours', () => {
    expect(formatDuration(undefined)).toBe('?');
    expect(formatDuration(42.4)).toBe('42 s');
    expect(formatDuration(185)).toBe('3 min 05 s');
    expect(formatDuration(2 * 3600 + 7 * 60 + 10)).toBe('2 h 07 min');
  });
});
