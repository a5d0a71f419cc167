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

  it('splits x exactly as with Math.round (ties toward +infinity), so its bits match the WebAssembly kernels', () => {
    // The definition written with Math.round: the oracle for the rounding without the call.
    const fractions = Float64Array.from({ length: 64 }, (_, j) => 2 ** (j / 64));
    const powers = Float64Array.from({ length: 2200 }, (_, i) => 2 ** (i - 1100));
    const withMathRound = (x: number): number => {
      const n = Math.round(x * (64 / Math.LN2));
      const r = x - n * (Math.LN2 / 64);
      const j = n & 63;
      return powers[(n - j) / 64 + 1100]! * fractions[j]! * (1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24)))));
    };
    const mismatches: number[] = [];
    const check = (x: number) => {
      if (!Object.is(fastExp(x), withMathRound(x))) mismatches.push(x);
    };
    let ties = 0;
    for (let k = -68000; k <= 65000; k++) {
      // x whose scaled value is exactly k + 1/2 (where float64 allows), and its neighbours.
      const x = (k + 0.5) / (64 / Math.LN2);
      if (x * (64 / Math.LN2) === k + 0.5) ties++;
      for (const value of [x, x * (1 + 2 ** -52), x * (1 - 2 ** -52)]) {
        if (value > -745 && value <= 709.78) check(value);
      }
    }
    expect(ties).toBeGreaterThan(10_000); // exact ties were exercised
    let s = 3;
    for (let i = 0; i < 100_000; i++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      check((s / 2147483648 - 0.5) * 1400);
    }
    expect(mismatches).toEqual([]);
  });
});
