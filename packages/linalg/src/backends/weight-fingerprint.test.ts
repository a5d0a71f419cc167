import { describe, expect, it } from 'vitest';
import { seededRandom } from './backend-oracle.js';
import { weightFingerprint } from './weight-fingerprint.js';

describe('weightFingerprint', () => {
  const rnd = seededRandom(7);
  const base = Float32Array.from({ length: 37 }, rnd);

  it('is equal for equal contents, whatever array or offset holds them', () => {
    const copy = base.slice();
    const padded = new Float32Array(50);
    padded.set(base, 5);
    expect(weightFingerprint(copy)).toBe(weightFingerprint(base));
    expect(weightFingerprint(padded.subarray(5, 42))).toBe(weightFingerprint(base));
  });

  it('changes when any one element changes, in any bit (every position of an odd length)', () => {
    const seen = new Set([weightFingerprint(base)]);
    const bits = new Uint32Array(base.buffer.slice(0));
    for (let i = 0; i < base.length; i++) {
      for (const bit of [0, 13, 22, 31]) {
        const changed = new Uint32Array(bits);
        changed[i] = changed[i]! ^ (1 << bit);
        const print = weightFingerprint(new Float32Array(changed.buffer));
        expect(seen.has(print)).toBe(false);
        seen.add(print);
      }
    }
  });

  it('tells apart swapped elements, a prefix, and 0 from -0', () => {
    const swapped = base.slice();
    [swapped[3], swapped[4]] = [swapped[4]!, swapped[3]!];
    expect(weightFingerprint(swapped)).not.toBe(weightFingerprint(base));
    expect(weightFingerprint(base.subarray(0, 36))).not.toBe(weightFingerprint(base));
    expect(weightFingerprint(new Float32Array([0, 1]))).not.toBe(weightFingerprint(new Float32Array([-0, 1])));
  });
});
