import { describe, expect, it } from 'vitest';
import { BitsmithError } from './errors.js';
import { assertFinite, firstNonFinite, NonFiniteError } from './non-finite.js';
import { quantize, dequantize } from './quantize.js';
import { parseFormat } from './number-format.js';
import { scaleRangeAnomalies } from './scale-range-anomalies.js';
import type { Matrix } from './tensor.js';

describe('firstNonFinite / assertFinite', () => {
  it('float32 and float64 arrays (tested by exponent bits, in blocks) agree with the element-wise test at every position and length', () => {
    for (let n = 0; n <= 21; n++) {
      for (let at = -1; at < n; at++) {
        for (const bad of [NaN, Infinity, -Infinity, -NaN]) {
          const backing = Float32Array.from({ length: n + 2 }, (_, i) => (i % 3 === 0 ? 3.4e38 : -1e-45 * i));
          if (at >= 0) backing[at + 1] = bad;
          backing[n + 1] = NaN; // past the view: never seen
          const view = backing.subarray(1, n + 1);
          expect(firstNonFinite(view)).toBe(firstNonFinite(Array.from(view)));
          expect(firstNonFinite(view)).toBe(at);
          const wide = Float64Array.from(backing, (v, i) => (i === at + 1 ? v : v * 1e269));
          expect(firstNonFinite(wide.subarray(1, n + 1))).toBe(at);
        }
      }
    }
  });

  it('finds the first NaN or infinity and nothing in finite data (extremes included)', () => {
    expect(firstNonFinite(Float32Array.of(0, -0, 3.4e38, -3.4e38, 1e-45))).toBe(-1);
    expect(firstNonFinite(Float32Array.of(1, 2, NaN, Infinity))).toBe(2);
    expect(firstNonFinite([1, -Infinity])).toBe(1);
    expect(firstNonFinite(new Float64Array(0))).toBe(-1);
  });

  it('names the tensor, the element as [row, column], the layer, the step and how many more', () => {
    const data = new Float32Array(12);
    data[7] = NaN;
    data[9] = Infinity;
    let error: unknown;
    try {
      assertFinite(data, { what: 'weight of model.layers.0.mlp.up_proj', shape: [3, 4], layer: 'model.layers.0.mlp.up_proj', step: 'gptq', file: 'm.safetensors' });
    } catch (e) {
      error = e;
    }
    expect(NonFiniteError.isInstance(error)).toBe(true);
    expect(BitsmithError.isInstance(error)).toBe(true);
    const e = error as NonFiniteError;
    expect(e.index).toBe(7);
    expect(e.value).toBeNaN();
    expect(e.step).toBe('gptq');
    expect(e.message).toBe("m.safetensors: weight of model.layers.0.mlp.up_proj after step 'gptq' holds NaN at element [1, 3] and 1 more non-finite value(s); expected finite numbers");
  });
});

describe('scaleRangeAnomalies', () => {
  const weight = (values: number[], rows: number, columns: number): Matrix => ({ dtype: 'float32', shape: [rows, columns], data: Float32Array.from(values) });

  it('counts a 1e30 weight: its group clamped at the float16 maximum and the group’s other weights zeroed', () => {
    // Two rows of two groups of 4; one group holds 1e30 next to ordinary weights.
    const w = weight([0.1, -0.2, 0.3, 1e30, 0.5, 0.6, -0.7, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 2, 8);
    const q = quantize(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 4 }, scaleEncoding: 'float16' });
    const a = scaleRangeAnomalies(w, dequantize(q), q);
    expect(a.groups).toBe(4);
    expect(a.clampedGroups).toBe(1);
    expect(a.largestClampedWeight).toBeCloseTo(1e30, -25);
    // 65504 x 7 cannot reach 1e30 and 0.1..0.3 / 65504 round to code 0: three weights lost.
    expect(a.zeroedWeights).toBe(3);
    expect(a.zeroedGroups).toBe(0);
    // The identity permutation takes the per-element group lookup: the same counts as the direct walk of groups.
    const identity = { ...q, permutation: Int32Array.from({ length: 8 }, (_, i) => i) };
    expect(scaleRangeAnomalies(w, dequantize(q), identity)).toEqual(a);
  });

  it('counts a group of tiny weights that all decode to zero, and nothing on ordinary weights', () => {
    const w = weight([1e-12, -2e-12, 3e-12, 1e-12, 0.5, 0.25, -0.75, 1], 2, 4);
    const q = quantize(w, { format: parseFormat('int4'), granularity: { type: 'channel' }, scaleEncoding: 'float16' });
    const a = scaleRangeAnomalies(w, dequantize(q), q);
    expect(a).toEqual({ groups: 2, clampedGroups: 0, largestClampedWeight: 0, zeroedGroups: 1, zeroedWeights: 4 });
    const ordinary = weight([0.1, -0.2, 0.3, 0.4, 0.5, 0.25, -0.75, 1], 2, 4);
    const q2 = quantize(ordinary, { format: parseFormat('int4'), granularity: { type: 'channel' }, scaleEncoding: 'float16' });
    expect(scaleRangeAnomalies(ordinary, dequantize(q2), q2)).toEqual({ groups: 2, clampedGroups: 0, largestClampedWeight: 0, zeroedGroups: 0, zeroedWeights: 0 });
  });
});
