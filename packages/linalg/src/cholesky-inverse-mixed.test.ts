import { describe, expect, it } from 'vitest';
import { choleskyInverseUpper } from './cholesky-inverse-upper.js';
import { createBackend } from './select-backend.js';
import { randomSpd, relativeError } from './testing/fixtures.js';

// Above n = 2048 only (the mixed path's threshold): one factor of 2100 on the fastest native backend.
const backend = await createBackend('ort').catch(() => undefined);

describe.skipIf(!backend)('choleskyInverseUpper with precision mixed above n = 2048 (ort backend)', () => {
  const n = 2100;
  const h = randomSpd(n, n + 100, 0.1);
  it('agrees with the float64 factor to float32 accuracy, and falls back to it exactly when the probe is refused', async () => {
    const exact = await choleskyInverseUpper(h, { backend: backend! });
    const mixed = await choleskyInverseUpper(h, { backend: backend!, precision: 'mixed' });
    const error = relativeError(mixed.data, exact.data);
    expect(error).toBeLessThan(1e-5);
    expect(error).toBeGreaterThan(0);
    const refused = await choleskyInverseUpper(h, { backend: backend!, precision: 'mixed', mixedTolerance: 0 });
    expect(Array.from(refused.data.subarray(0, 50_000))).toEqual(Array.from(exact.data.subarray(0, 50_000)));
    expect(relativeError(refused.data, exact.data)).toBe(0);
    // inPlace has no effect on the mixed path: the input is kept, the factor is a new matrix (also after a fallback).
    const input = { ...h, data: h.data.slice() };
    const inPlace = await choleskyInverseUpper(input, { backend: backend!, precision: 'mixed', mixedTolerance: 0, inPlace: true });
    expect(inPlace).not.toBe(input);
    expect(relativeError(inPlace.data, exact.data)).toBe(0);
    expect(relativeError(input.data, h.data)).toBe(0);
    // A shift (GPTQ's dampening) is the same as shifting the input, on the mixed path too.
    const shifted = { ...h, data: h.data.slice() };
    for (let i = 0; i < n; i++) shifted.data[i * n + i] += 0.25;
    const viaShift = await choleskyInverseUpper(h, { backend: backend!, precision: 'mixed', shift: 0.25 });
    const explicit = await choleskyInverseUpper(shifted, { backend: backend!, precision: 'mixed' });
    expect(relativeError(viaShift.data, explicit.data)).toBe(0);
  });
});
