import { createBackend } from '@bitsmith/linalg';
import { describe, expect, it } from 'vitest';
import { causalAttention } from './attention.js';
import { causalAttentionGemm } from './attention-gemm.js';

/** Brute force: explicit scores, mask and softmax per head and query, in float64. */
function bruteForce(q: Float32Array, k: Float32Array, v: Float32Array, lengths: number[], H: number, Hkv: number, d: number, window = Infinity): Float64Array {
  const out = new Float64Array(q.length);
  let start = 0;
  for (const n of lengths) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor((h * Hkv) / H);
      for (let i = 0; i < n; i++) {
        const allowed: number[] = [];
        for (let j = 0; j <= i; j++) if (i - j < window) allowed.push(j);
        const scores = allowed.map((j) => {
          let s = 0;
          for (let t = 0; t < d; t++) s += q[(start + i) * H * d + h * d + t]! * k[(start + j) * Hkv * d + kvh * d + t]!;
          return s / Math.sqrt(d);
        });
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < d; t++) {
          let acc = 0;
          allowed.forEach((j, x) => (acc += (e[x]! / z) * v[(start + j) * Hkv * d + kvh * d + t]!));
          out[(start + i) * H * d + h * d + t] = acc;
        }
      }
    }
    start += n;
  }
  return out;
}

describe('causalAttentionGemm', () => {
  const H = 6;
  const Hkv = 2;
  const d = 8;
  const lengths = [37, 11, 1, 20];
  const T = lengths.reduce((a, b) => a + b, 0);
  const fill = (n: number, seed: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 0.37) * 2.5);
  const q = fill(T * H * d, 1);
  const k = fill(T * Hkv * d, 2);
  const v = fill(T * Hkv * d, 3);

  for (const name of ['js', 'wasm'] as const) {
    it(`matches brute force over uneven sequences and query chunks (${name} backend)`, async () => {
      const backend = await createBackend(name);
      try {
        for (const chunk of [1, 5, 16, 128]) {
          const out = await causalAttentionGemm(q, k, v, lengths, { numHeads: H, numKvHeads: Hkv, headDim: d }, new Float32Array(T * H * d), backend, { chunk });
          const expected = bruteForce(q, k, v, lengths, H, Hkv, d);
          let worst = 0;
          expected.forEach((e, i) => (worst = Math.max(worst, Math.abs(out[i]! - e))));
          expect(worst).toBeLessThan(2e-5);
        }
      } finally {
        await backend.dispose();
      }
    });
  }

  it('applies a sliding window across chunk boundaries, as the scalar reference does', async () => {
    const backend = await createBackend('js');
    for (const window of [1, 3, 12]) {
      const shape = { numHeads: H, numKvHeads: Hkv, headDim: d, slidingWindow: window };
      const out = await causalAttentionGemm(q, k, v, lengths, shape, new Float32Array(T * H * d), backend, { chunk: 8 });
      const scalar = causalAttention(q, k, v, lengths, shape, new Float32Array(T * H * d));
      const expected = bruteForce(q, k, v, lengths, H, Hkv, d, window);
      expected.forEach((e, i) => {
        expect(Math.abs(out[i]! - e)).toBeLessThan(2e-5);
        expect(Math.abs(scalar[i]! - e)).toBeLessThan(2e-5);
      });
    }
    await backend.dispose();
  });
});
