import { describe, expect, it } from 'vitest';
import { scaleRangeAnomalies } from './scale-range-anomalies.js';
import type { Matrix } from './tensor.js';
import type { QuantizedTensor } from './quantized-tensor.js';

// The float32 fast path (runs of consecutive columns per group) against the generic visit, which float64 weights take.
describe('scaleRangeAnomalies: float32 fast path equals the generic path', () => {
  it('counts clamped groups, the largest clamped weight, zeroed groups and lost weights alike, per group and per channel', () => {
    const rows = 4;
    const columns = 64;
    const weight = Float32Array.from({ length: rows * columns }, (_, i) => (i % 5 === 0 ? 0 : Math.sin(i) * (i % 3 === 0 ? 1e-3 : 1)));
    const result = Float32Array.from(weight, (v, i) => (i % 7 === 0 || (i >= 64 && i < 80) ? 0 : v));
    for (let i = 80; i < 96; i++) weight[i] = 0; // a group of zeros (not zeroed: nothing was nonzero)
    for (const granularity of [{ type: 'group' as const, size: 16 }, { type: 'channel' as const }]) {
      const groups = granularity.type === 'group' ? (rows * columns) / 16 : rows;
      const scales = Float32Array.from({ length: groups }, (_, g) => (g % 4 === 1 ? 65504 : 0.01));
      const quantized = { shape: [rows, columns], format: { type: 'int', bits: 4, symmetric: true }, granularity, codes: new Uint8Array(rows * columns), scales, scaleEncoding: 'float16' } as unknown as QuantizedTensor;
      const f32 = (data: Float32Array): Matrix => ({ dtype: 'float32', shape: [rows, columns], data });
      const f64 = (data: Float32Array): Matrix => ({ dtype: 'float64', shape: [rows, columns], data: Float64Array.from(data) }) as unknown as Matrix;
      const fast = scaleRangeAnomalies(f32(weight), f32(result), quantized);
      const generic = scaleRangeAnomalies(f64(weight), f64(result), quantized);
      expect(fast).toEqual(generic);
      expect(fast.clampedGroups).toBeGreaterThan(0);
      expect(fast.largestClampedWeight).toBeGreaterThan(0);
      expect(fast.zeroedWeights).toBeGreaterThan(0);
      if (granularity.type === 'group') expect(fast.zeroedGroups).toBe(1); // columns 0-15 of row 1
    }
  });
});
