import { describe, expect, it } from 'vitest';
import {
  ActivationObserver,
  activationQuantizer,
  activationQuantizerFromDescription,
  composeInputTransforms,
  fakeQuantizeActivations,
  type ActivationScheme,
} from './activation-quantization.js';
import { InvalidArgumentError, NumericalError } from './errors.js';
import { parseFormat } from './number-format.js';

/** A seeded generator of normal-ish values (independent of the code under test). */
function randomValues(n: number, seed: number, scale = 1): Float32Array {
  let state = seed >>> 0;
  const uniform = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 0.5) / 2 ** 32;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

/** Nearest value of `levels` (sorted ascending) to x; ties to the level with the even index. */
function nearest(levels: readonly number[], x: number): number {
  let best = 0;
  for (let i = 1; i < levels.length; i++) {
    const d = Math.abs(levels[i]! - x) - Math.abs(levels[best]! - x);
    if (d < 0 || (d === 0 && i % 2 === 0)) best = i;
  }
  return levels[best]!;
}

/** Every finite FP8 E4M3 value, from the OCP definition (bias 7, subnormals, S.1111.111 is NaN), ascending. */
function e4m3Values(): number[] {
  const positive: number[] = [];
  for (let e = 0; e < 16; e++) {
    for (let m = 0; m < 8; m++) {
      if (e === 15 && m === 7) continue;
      positive.push(e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7));
    }
  }
  const all = [...positive.slice(1).map((v) => -v).reverse(), ...positive];
  return all;
}

/** The smallest float32 at or above x (scales are held in float32, rounded up so the extreme value never saturates). */
function float32AtOrAbove(x: number): number {
  const f = new Float32Array([x]);
  if (f[0]! < x) new Uint32Array(f.buffer)[0]! += 1;
  return f[0]!;
}

/** Symmetric b-bit integer round trip with compressed-tensors' scale absmax / (2^(b-1) - 1/2), held in float32. */
function symmetricIntOracle(values: readonly number[], bits: number): number[] {
  const absmax = Math.max(...values.map(Math.abs));
  const s = float32AtOrAbove(absmax / (2 ** (bits - 1) - 0.5));
  const levels = Array.from({ length: 2 ** bits }, (_, k) => (k - 2 ** (bits - 1)) * s);
  return values.map((x) => nearest(levels, x));
}

const close = (actual: Float32Array, expected: readonly number[], tolerance: number): void => {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThanOrEqual(tolerance);
};

describe('fakeQuantizeActivations', () => {
  it('int8 per token (dynamic) equals a brute-force nearest-level search per row', () => {
    const rows = 7;
    const columns = 40;
    const x = randomValues(rows * columns, 1, 3);
    const expected: number[] = [];
    for (let r = 0; r < rows; r++) expected.push(...symmetricIntOracle(Array.from(x.subarray(r * columns, (r + 1) * columns)), 8));
    const scheme: ActivationScheme = { format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true };
    fakeQuantizeActivations(x, rows, columns, scheme);
    close(x, expected, 1e-5);
  });

  it('int4 per token and head (group of the head dimension) equals brute force per group', () => {
    const rows = 5;
    const heads = 3;
    const headDim = 16;
    const columns = heads * headDim;
    const x = randomValues(rows * columns, 2);
    const expected: number[] = [];
    for (let g = 0; g < rows * heads; g++) expected.push(...symmetricIntOracle(Array.from(x.subarray(g * headDim, (g + 1) * headDim)), 4));
    fakeQuantizeActivations(x, rows, columns, { format: parseFormat('int4'), granularity: { type: 'group', size: headDim }, dynamic: true });
    close(x, expected, 1e-5);
  });

  it('asymmetric int8 per tensor equals the min-max formula with an integer zero point', () => {
    const rows = 6;
    const columns = 32;
    const x = randomValues(rows * columns, 3);
    for (let i = 0; i < x.length; i++) x[i] = x[i]! + 1.5; // mostly positive: the zero point matters
    const values = Array.from(x);
    const lo = Math.min(0, ...values);
    const hi = Math.max(0, ...values);
    const s = (hi - lo) / 255;
    const z = Math.min(255, Math.max(0, Math.round(-lo / s)));
    const expected = values.map((v) => (Math.min(255, Math.max(0, Math.round(v / s) + z)) - z) * s);
    fakeQuantizeActivations(x, rows, columns, { format: parseFormat('int8-asym'), granularity: { type: 'tensor' }, dynamic: true });
    close(x, expected, 1e-5);
  });

  it('FP8 E4M3 per token equals the nearest E4M3 value (from the OCP definition) times absmax / 448', () => {
    const rows = 4;
    const columns = 64;
    const x = randomValues(rows * columns, 4, 10);
    const levels = e4m3Values();
    expect(Math.max(...levels)).toBe(448);
    const expected: number[] = [];
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * columns, (r + 1) * columns));
      const s = Math.max(...row.map(Math.abs)) / 448;
      expected.push(...row.map((v) => nearest(levels, v / s) * s));
    }
    fakeQuantizeActivations(x, rows, columns, { format: parseFormat('fp8-e4m3'), granularity: { type: 'token' }, dynamic: true });
    close(x, expected, 1e-4);
  });

  it('refuses NaN and infinities, naming the element', () => {
    const x = new Float32Array([1, 2, 3, Number.NaN]);
    const scheme: ActivationScheme = { format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true };
    expect(() => fakeQuantizeActivations(x, 2, 2, scheme)).toThrow(NumericalError);
    expect(() => fakeQuantizeActivations(x, 2, 2, scheme)).toThrow(/\[1, 1\] is NaN/);
  });

  it('refuses schemes that cannot run, saying what was expected', () => {
    const x = new Float32Array(12);
    const cases: [ActivationScheme, RegExp][] = [
      [{ format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: false }, /per-token scales can only be computed at run time/],
      [{ format: parseFormat('int8'), granularity: { type: 'channel' }, dynamic: true }, /per-channel activation scales must be static/],
      [{ format: parseFormat('nf4'), granularity: { type: 'token' }, dynamic: true }, /not supported/],
      [{ format: parseFormat('mxfp4'), granularity: { type: 'group', size: 32 }, dynamic: false }, /dynamic: true/],
      [{ format: parseFormat('mxfp4'), granularity: { type: 'token' }, dynamic: true }, /blocks of 32/],
      [{ format: parseFormat('int8'), granularity: { type: 'group', size: 5 }, dynamic: true }, /divisor of 4/],
      [{ format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false }, /needs calibrated scales/],
    ];
    for (const [scheme, message] of cases) {
      expect(() => fakeQuantizeActivations(x, 3, 4, scheme)).toThrow(InvalidArgumentError);
      expect(() => fakeQuantizeActivations(x, 3, 4, scheme)).toThrow(message);
    }
  });
});

describe('ActivationObserver', () => {
  const columns = 24;
  const a = randomValues(10 * columns, 5, 2);
  const b = randomValues(6 * columns, 6, 5);
  const both = new Float32Array([...a, ...b]);

  it('static per-channel min-max: scales are absmax / 127.5 per channel over every batch, and batches compose', () => {
    const scheme: ActivationScheme = { format: parseFormat('int8'), granularity: { type: 'channel' }, dynamic: false };
    const split = new ActivationObserver(scheme, columns);
    split.observe(a, 10);
    split.observe(b, 6);
    const whole = new ActivationObserver(scheme, columns);
    whole.observe(both, 16);
    expect(split.tokens).toBe(16);
    expect(Array.from(split.scales().scales)).toEqual(Array.from(whole.scales().scales));
    const scales = split.scales().scales;
    for (let c = 0; c < columns; c++) {
      let absmax = 0;
      for (let r = 0; r < 16; r++) absmax = Math.max(absmax, Math.abs(both[r * columns + c]!));
      expect(scales[c]! / (absmax / 127.5)).toBeCloseTo(1, 6);
    }
  });

  it('static scales saturate values beyond the calibrated range at the extreme levels', () => {
    const scheme: ActivationScheme = { format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false };
    const observer = new ActivationObserver(scheme, 4);
    observer.observe(new Float32Array([-1, 0.5, 1, 0.25]), 1);
    const scales = observer.scales();
    const s = scales.scales[0]!;
    const x = new Float32Array([10, -10, 0.5, 0]);
    fakeQuantizeActivations(x, 1, 4, scheme, scales);
    expect(x[0]).toBeCloseTo(127 * s, 6);
    expect(x[1]).toBeCloseTo(-128 * s, 6);
    expect(x[2]).toBeCloseTo(Math.round(0.5 / s) * s, 6);
    expect(x[3]).toBe(0);
  });

  it('percentile: 100 equals min-max, 50 gives the median of |x|', () => {
    const percentile100 = new ActivationObserver({ format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false, observer: 'percentile', percentile: 100 }, columns);
    const minmax = new ActivationObserver({ format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false }, columns);
    percentile100.observe(both, 16);
    minmax.observe(both, 16);
    expect(percentile100.scales().scales[0]).toBe(minmax.scales().scales[0]);

    const median = new ActivationObserver({ format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false, observer: 'percentile', percentile: 50 }, 1);
    const values = new Float32Array(101);
    for (let i = 0; i < 101; i++) values[i] = (i % 2 === 0 ? 1 : -1) * (i + 1); // |x| = 1..101, median 51
    median.observe(values, 101);
    expect(median.scales().scales[0]! / (51 / 127.5)).toBeCloseTo(1, 6);
  });

  it('mse picks the clip factor with the least squared error among those it tries (brute force), below min-max with an outlier', () => {
    const values = randomValues(2000, 7);
    values[17] = 40; // one outlier
    const format = parseFormat('int4');
    const observer = new ActivationObserver({ format, granularity: { type: 'tensor' }, dynamic: false, observer: 'mse' }, 1, { mseSteps: 20, minClip: 0.1 });
    observer.observe(values, values.length);
    const scales = observer.scales();
    const errorWith = (s: number): number => {
      let e = 0;
      for (const v of values) e += (Math.min(7, Math.max(-8, Math.round(v / s))) * s - v) ** 2;
      return e;
    };
    const chosen = errorWith(scales.scales[0]!);
    for (let step = 0; step <= 20; step++) {
      const c = 1 - (0.9 * step) / 20;
      expect(chosen).toBeLessThanOrEqual(errorWith((40 * c) / 7.5) * (1 + 1e-6));
    }
    expect(chosen).toBeLessThan(errorWith(40 / 7.5));
  });

  it('refuses a dynamic scheme and an empty calibration', () => {
    expect(() => new ActivationObserver({ format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true }, 4)).toThrow(/expected a static scheme/);
    const observer = new ActivationObserver({ format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false }, 4);
    expect(() => observer.scales()).toThrow(/observed no activations/);
  });
});

describe('activationQuantizer and composeInputTransforms', () => {
  it('the input transform fake-quantizes as fakeQuantizeActivations does and describes its static scales', () => {
    const scheme: ActivationScheme = { format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false };
    const scales = { scales: Float32Array.of(0.01) };
    const transform = activationQuantizer(scheme, scales);
    const x = randomValues(32, 8);
    const y = x.slice();
    transform.apply(x, 4, 8);
    fakeQuantizeActivations(y, 4, 8, scheme, scales);
    expect(Array.from(x)).toEqual(Array.from(y));
    expect(transform.describe()).toMatchObject({ kind: 'activation-quantization', format: 'int8', granularity: 'tensor', dynamic: false, scales: [Math.fround(0.01)] });
  });

  it('rebuilds the same quantizer from its description (as saved in config.json), and refuses a malformed one', () => {
    const scheme: ActivationScheme = { format: parseFormat('int8-asym'), granularity: { type: 'group', size: 4 }, dynamic: false, observer: 'minmax' };
    const observer = new ActivationObserver(scheme, 8);
    observer.observe(randomValues(40, 9), 5);
    const original = activationQuantizer(scheme, observer.scales());
    const rebuilt = activationQuantizerFromDescription(JSON.parse(JSON.stringify(original.describe())));
    const x = randomValues(24, 10, 2);
    const y = x.slice();
    original.apply(x, 3, 8);
    rebuilt.apply(y, 3, 8);
    expect(Array.from(y)).toEqual(Array.from(x));
    expect(activationQuantizerFromDescription({ kind: 'activation-quantization', format: 'fp8-e4m3', granularity: 'token', dynamic: true }).describe()).toMatchObject({ format: 'fp8-e4m3', dynamic: true });
    expect(() => activationQuantizerFromDescription({ kind: 'activation-quantization', format: 'int8', granularity: 'row', dynamic: true })).toThrow(/expected tensor, token, channel or g<size>/);
    expect(() => activationQuantizerFromDescription({ kind: 'activation-quantization', format: 'int8', granularity: 'tensor', dynamic: false, scales: ['x'] })).toThrow(/finite numbers/);
  });

  it('composes transforms in the order given', async () => {
    const double = { name: 'double', apply: (v: Float32Array) => v.forEach((x, i) => (v[i] = 2 * x)), describe: () => ({ kind: 'double' }) };
    const addOne = { name: 'add-one', apply: (v: Float32Array) => v.forEach((x, i) => (v[i] = x + 1)), describe: () => ({ kind: 'add-one' }) };
    const x = Float32Array.of(1, 2);
    await composeInputTransforms(double, undefined, addOne)!.apply(x, 1, 2);
    expect(Array.from(x)).toEqual([3, 5]);
    expect(composeInputTransforms(undefined, double)).toBe(double);
    expect(composeInputTransforms(double, addOne)!.describe()).toEqual({ kind: 'sequence', transforms: [{ kind: 'double' }, { kind: 'add-one' }] });
  });
});
