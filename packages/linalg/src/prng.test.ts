import { describe, expect, it } from 'vitest';
import { createRandom, fillNormal, mulberry32 } from './prng.js';

describe('createRandom', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = createRandom(42);
    const b = createRandom(42);
    const c = createRandom(43);
    const xa = Array.from({ length: 8 }, () => a.uint32());
    expect(Array.from({ length: 8 }, () => b.uint32())).toEqual(xa);
    expect(Array.from({ length: 8 }, () => c.uint32())).not.toEqual(xa);
  });

  it('uniform lies in [0, 1) with mean 1/2 and variance 1/12', () => {
    const r = createRandom(1);
    let s = 0;
    let s2 = 0;
    const count = 200_000;
    for (let i = 0; i < count; i++) {
      const u = r.uniform();
      expect(u >= 0 && u < 1).toBe(true);
      s += u;
      s2 += u * u;
    }
    expect(s / count).toBeCloseTo(0.5, 2);
    expect(s2 / count - (s / count) ** 2).toBeCloseTo(1 / 12, 2);
  });

  it('normal has mean 0, variance 1 and the Gaussian fourth moment 3', () => {
    const x = fillNormal(new Float64Array(200_000), 7);
    let m1 = 0;
    let m2 = 0;
    let m4 = 0;
    for (const v of x) {
      m1 += v;
      m2 += v * v;
      m4 += v ** 4;
    }
    expect(m1 / x.length).toBeCloseTo(0, 2);
    expect(m2 / x.length).toBeCloseTo(1, 1);
    expect(m4 / x.length).toBeGreaterThan(2.9);
    expect(m4 / x.length).toBeLessThan(3.1);
  });
});

describe('mulberry32', () => {
  it('is deterministic per seed, stays in [0, 1), and is uniform (mean 1/2, variance 1/12, even deciles)', () => {
    const a = mulberry32(7);
    const b = mulberry32(7);
    const c = mulberry32(8);
    const first = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(first);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(first);
    const next = mulberry32(1);
    const n = 200_000;
    const deciles = new Array(10).fill(0);
    let m1 = 0;
    let m2 = 0;
    for (let i = 0; i < n; i++) {
      const u = next();
      expect(u >= 0 && u < 1).toBe(true);
      m1 += u;
      m2 += u * u;
      deciles[Math.floor(u * 10)]++;
    }
    expect(m1 / n).toBeCloseTo(0.5, 2);
    expect(m2 / n - (m1 / n) ** 2).toBeCloseTo(1 / 12, 3);
    for (const d of deciles) expect(Math.abs(d / n - 0.1)).toBeLessThan(0.005);
  });
});
