import { describe, expect, it } from 'vitest';
import { scheduleFactor } from './learning-rate-schedule.js';
import { adam, signSgd } from './optimizer.js';

describe('scheduleFactor', () => {
  it('gives the closed forms of constant, linear, cosine and warmup', () => {
    expect(scheduleFactor('constant', 7, 10)).toBe(1);
    expect([0, 1, 5, 9].map((t) => scheduleFactor('linear', t, 10))).toEqual([1, 0.9, 0.5, 1 - 0.9]);
    expect(scheduleFactor('cosine', 0, 4)).toBe(1);
    expect(scheduleFactor('cosine', 2, 4)).toBeCloseTo(0.5, 15);
    expect(scheduleFactor('cosine', 3, 4)).toBeCloseTo((1 + Math.cos((3 * Math.PI) / 4)) / 2, 15);
    expect([0, 1, 2].map((t) => scheduleFactor({ type: 'linear', warmup: 2 }, t, 6))).toEqual([1 / 3, 2 / 3, 1]);
    expect(scheduleFactor({ type: 'linear', warmup: 2 }, 4, 6)).toBe(0.5);
  });

  it('rejects iterations outside the schedule', () => {
    expect(() => scheduleFactor('linear', 10, 10)).toThrow(/iteration/);
    expect(() => scheduleFactor('linear', 0, 0)).toThrow(/total/);
  });
});

describe('signSgd', () => {
  it('moves every coordinate by the scheduled step whatever the gradient scale (linear decay sums to lr (T + 1) / 2)', () => {
    // Far from the minimum of (x - 100)^2 the sign never changes, so after T steps x = lr * sum_t (1 - t/T).
    const T = 10;
    const opt = signSgd({ learningRate: 1, iterations: T });
    const x = new Float64Array([0, 0]);
    for (let t = 0; t < T; t++) opt.step(x, [2 * (x[0]! - 100), 1e-9 * (x[1]! - 100)]);
    expect(x[0]).toBeCloseTo(5.5, 12);
    expect(x[1]).toBeCloseTo(5.5, 12);
    expect(opt.iteration).toBe(T);
  });

  it('clamps to bounds and leaves zero-gradient coordinates alone', () => {
    const opt = signSgd({ learningRate: 0.3, iterations: 5, schedule: 'constant', bounds: [-0.5, 0.5] });
    const v = new Float32Array([0.4, 0, -0.4]);
    opt.step(v, [-1, 0, 1]);
    expect(Array.from(v)).toEqual([0.5, 0, -0.5]);
  });

  it('steps float32 offsets as the rounded step then the clamp (random signs, zeros, NaN, bounds not in float32)', () => {
    let s = 5;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648), s / 2147483648 - 0.5);
    for (const bounds of [[-0.5, 0.5], [-0.1, 0.3]] as const) {
      const lr = 0.0137;
      const opt = signSgd({ learningRate: lr, iterations: 3, schedule: 'constant', bounds: [bounds[0], bounds[1]] });
      const v = Float32Array.from({ length: 20_000 }, () => rnd() * 0.9);
      const grads = Float32Array.from({ length: v.length }, (_, i) => (i % 7 === 0 ? 0 : i % 101 === 0 ? Number.NaN : i % 53 === 0 ? -0 : rnd()));
      // The definition: step in float32, then clamp, then store.
      const expected = Float32Array.from(v, (x, i) => {
        const g = grads[i]!;
        const p = g > 0 ? Math.fround(x - lr) : g < 0 ? Math.fround(x + lr) : x;
        return Math.min(bounds[1], Math.max(bounds[0], p));
      });
      opt.step(v, grads);
      let mismatches = 0;
      for (let i = 0; i < v.length; i++) if (!Object.is(v[i], expected[i])) mismatches++;
      expect(mismatches).toBe(0);
    }
  });

  it('with float32, steps in float32 arithmetic (rate and bounds rounded to float32), as PyTorch steps a float32 tensor', () => {
    let s = 7;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648), s / 2147483648 - 0.5);
    const f = Math.fround;
    for (const bounds of [[-0.5, 0.5], [-0.1, 0.3]] as const) {
      const lr = 0.0137;
      const opt = signSgd({ learningRate: lr, iterations: 3, schedule: 'constant', bounds: [bounds[0], bounds[1]], float32: true });
      const v = Float32Array.from({ length: 20_000 }, () => rnd() * 0.9);
      v[3] = Number.NaN;
      v[5] = -0;
      const grads = Float32Array.from({ length: v.length }, (_, i) => (i % 7 === 0 ? 0 : i % 101 === 0 ? Number.NaN : i % 53 === 0 ? -0 : rnd()));
      grads[3] = 1;
      grads[5] = 0;
      // Float32 values: x - f(lr) and x + f(lr) rounded to float32, then the float32 bounds.
      const expected = Float32Array.from(v, (x, i) => {
        const g = grads[i]!;
        const p = g > 0 ? f(x - f(lr)) : g < 0 ? f(x + f(lr)) : x;
        return p < f(bounds[0]) ? f(bounds[0]) : p > f(bounds[1]) ? f(bounds[1]) : p;
      });
      const float64 = Float32Array.from(v, (x, i) => Math.min(bounds[1], Math.max(bounds[0], x - lr * (Number(grads[i]! > 0) - Number(grads[i]! < 0)))));
      opt.step(v, grads);
      let mismatches = 0;
      let fromFloat64 = 0;
      for (let i = 0; i < v.length; i++) {
        if (!Object.is(v[i], expected[i])) mismatches++;
        if (!Object.is(v[i], float64[i])) fromFloat64++;
      }
      expect(mismatches).toBe(0);
      expect(fromFloat64).toBeGreaterThan(0); // the rate 0.0137 is not a float32: the two arithmetics differ
      expect(v[3]).toBeNaN();
      expect(Object.is(v[5], -0)).toBe(true);
    }
  });
});

describe('adam', () => {
  it('takes a first step of exactly lr against the gradient (bias-corrected moments)', () => {
    const opt = adam({ learningRate: 0.1, iterations: 10, epsilon: 0 });
    const x = new Float64Array([1, -2, 3]);
    opt.step(x, [4, -0.001, 1e3]);
    expect(Array.from(x)).toEqual([1 - 0.1, -2 + 0.1, 3 - 0.1]);
  });

  it('matches a hand computation of the second step', () => {
    const opt = adam({ learningRate: 0.5, iterations: 10, beta1: 0.5, beta2: 0.75, epsilon: 0 });
    const x = new Float64Array([0]);
    opt.step(x, [2]);
    opt.step(x, [1]);
    // m = 0.5*(0.5*2) + 0.5*1 = 1, mhat = 1 / 0.75; v = 0.75*(0.25*4) + 0.25*1 = 1, vhat = 1 / (1 - 0.5625).
    const step2 = (0.5 * (1 / 0.75)) / Math.sqrt(1 / 0.4375);
    expect(x[0]).toBeCloseTo(-0.5 - step2, 14);
  });

  it('converges to the minimum of an ill-conditioned quadratic', () => {
    const a = [1, 100, 0.01];
    const c = [3, -1, 0.5];
    const opt = adam({ learningRate: 0.05, iterations: 3000, schedule: 'cosine' });
    const x = new Float64Array(3);
    for (let t = 0; t < 3000; t++) opt.step(x, a.map((ai, i) => ai * (x[i]! - c[i]!)));
    x.forEach((v, i) => expect(v).toBeCloseTo(c[i]!, 3));
  });
});
