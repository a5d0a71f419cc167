import { describe, expect, it } from 'vitest';
import type { EvaluationResult } from './evaluate.js';
import { perplexityRatioInterval } from './perplexity-interval.js';

function result(nll: number[], tokens: number[]): EvaluationResult {
  const total = tokens.reduce((a, t) => a + t, 0);
  const sum = nll.reduce((a, v) => a + v, 0);
  return {
    tokens: total,
    windows: nll.length,
    ctx: 128,
    nll: sum / total,
    perplexity: Math.exp(sum / total),
    perWindow: { nll: Float64Array.from(nll), tokens: Int32Array.from(tokens) },
    protocol: 'test',
  };
}

/** Box-Muller normals from a small LCG. */
function normals(n: number, seed: number): number[] {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

describe('perplexityRatioInterval', () => {
  it('a constant per-token shift c gives ratio exp(c) with a zero-width interval', () => {
    const tokens = [127, 127, 127, 60];
    const a = result([300, 280, 310, 150], tokens);
    const b = result(a.perWindow.nll.map((v, w) => v + 0.05 * tokens[w]!) as unknown as number[], tokens);
    const r = perplexityRatioInterval(a, b);
    expect(r.ratio).toBeCloseTo(Math.exp(0.05), 12);
    expect(r.low).toBeCloseTo(Math.exp(0.05), 12);
    expect(r.high).toBeCloseTo(Math.exp(0.05), 12);
    expect(r.standardError).toBeCloseTo(0, 12);
  });

  it('the bootstrap interval matches the normal approximation exp(d ± 1.96 SE) from the closed-form cluster SE', () => {
    const n = 400;
    const tokens = Array.from({ length: n }, () => 100);
    const noise = normals(n, 3);
    const a = result(tokens.map((t) => 3.8 * t), tokens);
    // Per-window mean difference 0.02 + 0.1 z: SE of the mean difference = 0.1 / sqrt(n) = 0.005.
    const b = result(tokens.map((t, w) => (3.8 + 0.02 + 0.1 * noise[w]!) * t), tokens);
    const r = perplexityRatioInterval(a, b, { resamples: 4000, seed: 1 });
    const mean = noise.reduce((x, z) => x + z, 0) / n;
    const sd = Math.sqrt(noise.reduce((x, z) => x + (z - mean) ** 2, 0) / (n - 1));
    expect(r.standardError).toBeCloseTo((0.1 * sd) / Math.sqrt(n), 9);
    expect(Math.log(r.ratio)).toBeCloseTo(0.02 + 0.1 * mean, 9);
    expect(Math.log(r.low)).toBeCloseTo(Math.log(r.ratio) - 1.96 * r.standardError, 3);
    expect(Math.log(r.high)).toBeCloseTo(Math.log(r.ratio) + 1.96 * r.standardError, 3);
    expect(r.low).toBeGreaterThan(1); // 0.02 is four standard errors away from 0
  });

  it('rejects evaluations of different texts and bad options by name', () => {
    const a = result([1, 2, 3], [10, 10, 10]);
    expect(() => perplexityRatioInterval(a, result([1, 2], [10, 10]))).toThrow(/windows/);
    expect(() => perplexityRatioInterval(a, result([1, 2, 3], [10, 10, 9]))).toThrow(/window 2/);
    expect(() => perplexityRatioInterval(a, a, { confidence: 1 })).toThrow(/confidence/);
    expect(() => perplexityRatioInterval(a, a, { resamples: 3 })).toThrow(/resamples/);
  });
});
