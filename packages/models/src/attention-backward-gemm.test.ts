import { describe, expect, it } from 'vitest';
import { createJsBackend } from '@bitsmith/linalg';
import { causalAttentionBackwardGemm } from './attention-backward-gemm.js';
import { causalAttentionBackward } from './block-backward-ops.js';

/** Seeded random queries, keys, values and output gradient for `lengths` tokens, uniform in [-1.5, 1.5). */
function randomInputs(seed: number, lengths: readonly number[], H: number, Hkv: number, d: number) {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648), s / 2147483648 - 0.5);
  const T = lengths.reduce((a, b) => a + b, 0);
  const fill = (n: number) => Float32Array.from({ length: n }, () => 3 * rnd());
  return { q: fill(T * H * d), k: fill(T * Hkv * d), v: fill(T * Hkv * d), dOut: fill(T * H * d) };
}

// Oracle: the scalar float64 backward, itself checked against central finite differences (block-backward-ops.test.ts).
describe('causalAttentionBackwardGemm', () => {
  const backend = createJsBackend();
  for (const { label, lengths, H, Hkv, d, window, chunk } of [
    { label: 'GQA 6:2, three sequences, chunks of 4', lengths: [9, 5, 1], H: 6, Hkv: 2, d: 8, window: undefined, chunk: 4 },
    { label: 'multi-head, one chunk', lengths: [7], H: 4, Hkv: 4, d: 4, window: undefined, chunk: 128 },
    { label: 'sliding window 3, chunks of 2', lengths: [8, 6], H: 4, Hkv: 2, d: 4, window: 3, chunk: 2 },
  ]) {
    it(`equals the scalar backward (${label})`, async () => {
      const { q, k, v, dOut } = randomInputs(7, lengths, H, Hkv, d);
      const shape = { numHeads: H, numKvHeads: Hkv, headDim: d, slidingWindow: window };
      const expected = { dq: new Float32Array(q.length), dk: new Float32Array(k.length), dv: new Float32Array(v.length) };
      causalAttentionBackward(q, k, v, lengths, shape, dOut, expected.dq, expected.dk, expected.dv);
      const got = { dq: new Float32Array(q.length).fill(NaN), dk: new Float32Array(k.length).fill(NaN), dv: new Float32Array(v.length).fill(NaN) };
      await causalAttentionBackwardGemm(q, k, v, lengths, shape, dOut, got.dq, got.dk, got.dv, backend, { chunk });
      for (const key of ['dq', 'dk', 'dv'] as const) {
        const e = expected[key];
        let scale = 0;
        for (const x of e) scale = Math.max(scale, Math.abs(x));
        got[key].forEach((x, i) => expect(Math.abs(x - e[i]!), `${key}[${i}]`).toBeLessThan(1e-5 * scale));
      }
    });
  }

  it('gives the same bits whatever the batching of (sequence, head) pairs and with a caller scratch', async () => {
    const lengths = [9, 9, 9, 5, 5, 1];
    const [H, Hkv, d] = [6, 2, 8];
    const { q, k, v, dOut } = randomInputs(11, lengths, H, Hkv, d);
    const shape = { numHeads: H, numKvHeads: Hkv, headDim: d };
    const run = async (options: Parameters<typeof causalAttentionBackwardGemm>[10]) => {
      const out = { dq: new Float32Array(q.length).fill(NaN), dk: new Float32Array(k.length).fill(NaN), dv: new Float32Array(v.length).fill(NaN) };
      await causalAttentionBackwardGemm(q, k, v, lengths, shape, dOut, out.dq, out.dk, out.dv, backend, options);
      return out;
    };
    const one = await run({ chunk: 4, scoreBytes: 1 }); // one pair per batch
    const arrays = new Map<string, Float32Array | Float64Array>();
    const scratch = {
      float32: (name: string, length: number) => (arrays.get(name) as Float32Array | undefined)?.subarray(0, length) ?? (arrays.set(name, new Float32Array(length).fill(NaN)), arrays.get(name) as Float32Array),
      float64: (name: string, length: number) => (arrays.get(name) as Float64Array | undefined)?.subarray(0, length) ?? (arrays.set(name, new Float64Array(length).fill(NaN)), arrays.get(name) as Float64Array),
    };
    for (const options of [{ chunk: 4 }, { chunk: 4, scoreBytes: 4 * 4 * 3 * 9 * 2 }, { chunk: 4, scratch }, { chunk: 4, scratch }]) {
      const got = await run(options);
      for (const key of ['dq', 'dk', 'dv'] as const) expect(Array.from(got[key]), key).toEqual(Array.from(one[key]));
    }
  });
});
