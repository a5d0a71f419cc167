import { describe, expect, it } from 'vitest';
import { fastExp } from './fast-exp.js';

describe('fastExp', () => {
  it('agrees with Math.exp to 2e-13 relative over the whole finite range', () => {
    let worst = 0;
    for (let i = 0; i <= 200000; i++) {
      const x = -744 + (i / 200000) * (709.7 + 744);
      const e = Math.exp(x);
      if (e < 1e-300) continue; // subnormal results carry fewer significant bits
      worst = Math.max(worst, Math.abs(fastExp(x) - e) / e);
    }
    expect(worst).toBeLessThan(2e-13);
    for (const x of [0, -1e-9, 1e-9, -0.5, 0.5, -30, 30]) expect(Math.fround(fastExp(x))).toBe(Math.fround(Math.exp(x)));
  });

  it('handles the ends: 0 below -745, Infinity above 709.78, NaN through', () => {
    expect(fastExp(-746)).toBe(0);
    expect(fastExp(-Infinity)).toBe(0);
    expect(fastExp(710)).toBe(Infinity);
    expect(fastExp(Infinity)).toBe(Infinity);
    expect(fastExp(Number.NaN)).toBeNaN();
    expect(fastExp(0)).toBe(1);
  });
});
