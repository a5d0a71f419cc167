import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import { expect, it } from 'vitest';
import { describeWithBackends } from '../testing/describe-with-backends.js';
import { seededRandom } from './backend-oracle.js';

/** The definitions in float64 with Math.exp / Math.tanh. */
const silu = (x: number): number => x / (1 + Math.exp(-x));
const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

await describeWithBackends('gatedActivation', (backend) => {
  const rnd = seededRandom(5);
  // Typical pre-activations, the tails (silu -> 0 and -> x), exact zeros, and a length that is not a multiple of any vector width.
  const gate = Float32Array.from({ length: 4099 }, (_, i) => (i % 97 === 0 ? 0 : i % 13 === 0 ? 40 * rnd() : 8 * rnd()));
  const up = Float32Array.from({ length: gate.length }, () => 3 * rnd());
  for (const [activation, f] of [['silu', silu], ['gelu-tanh', geluTanh]] as const) {
    // The activation to 4e-6 (|act| + 1), times |up|: a few float32 ulps. onnxruntime's MLAS logistic and tanh are
    // approximations with absolute (not relative) error in the tails (measured over [-40, 40]: at most 2.2e-6 and
    // 5.7e-7 of |act| + 1 for SiLU and GELU); the JavaScript loop is within 1e-7 relative.
    it(`${activation}(gate) * up matches the definition to float32 precision, into a new array and in place`, async () => {
      const out = new Float32Array(gate.length).fill(Number.NaN);
      await backend.gatedActivation({ gate, up, out, activation });
      const inPlace = gate.slice();
      await backend.gatedActivation({ gate: inPlace, up, out: inPlace, activation });
      for (let i = 0; i < gate.length; i++) {
        const act = f(gate[i]!);
        expect(Math.abs(out[i]! - act * up[i]!)).toBeLessThanOrEqual(4e-6 * (Math.abs(act) + 1) * Math.abs(up[i]!));
        expect(inPlace[i]).toBe(out[i]);
      }
    });
  }

  it('honours length (elements past it untouched) and rejects short arrays and unknown activations', async () => {
    const out = new Float32Array(10).fill(7);
    await backend.gatedActivation({ gate: gate.subarray(0, 10), up: up.subarray(0, 10), out, length: 6, activation: 'silu' });
    expect(Array.from(out.subarray(6))).toEqual([7, 7, 7, 7]);
    expect(out[1]).toBeCloseTo(silu(gate[1]!) * up[1]!, 6);
    await expect(backend.gatedActivation({ gate, up: up.subarray(0, 5), out: gate.slice(), activation: 'silu' })).rejects.toSatisfy((e) => ShapeMismatchError.isInstance(e));
    await expect(backend.gatedActivation({ gate, up, out: gate.slice(), activation: 'relu' as never })).rejects.toSatisfy((e) => InvalidArgumentError.isInstance(e));
  });
});
