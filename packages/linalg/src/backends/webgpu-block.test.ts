import { afterAll, describe, expect, it } from 'vitest';
import { randomArray } from '../testing/fixtures.js';
import { createJsBackend } from './js-backend.js';
import { tryCreateWebgpuBackend, type WebgpuBackend } from './webgpu-backend.js';
import { webgpuAttention, webgpuGatedActivation, webgpuRmsNorm, webgpuRope, webgpuSequences } from './webgpu-block.js';

// The block-forward kernels of the webgpu backend against CPU oracles: RMSNorm and RoPE against their float64
// definitions, the gated activation and attention against the js backend. Needs a WebGPU adapter; skipped elsewhere.
const { backend: gpu, reason } = await tryCreateWebgpuBackend({ minGpuWork: 0, threads: 1 });
if (!gpu) console.warn(`[bitsmith] skipping webgpu block-kernel tests: ${reason}`);

/** max |got - want| / max |want|. */
function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i]! - want[i]!));
    den = Math.max(den, Math.abs(want[i]!));
  }
  return num / den;
}

describe.skipIf(gpu === undefined)('webgpu block kernels', () => {
  afterAll(() => gpu?.dispose());
  const cpu = createJsBackend();

  it('rmsNorm (plain and with a gain offset, 1000 columns) equals the float64 definition to 1e-6', async () => {
    const [rows, columns, eps] = [7, 1000, 1e-5];
    const x = Float32Array.from(randomArray(rows * columns, 1), (v) => 3 * v);
    const gain = Float32Array.from(randomArray(columns, 2), (v) => 1 + 0.2 * v);
    for (const gainOffset of [0, 1]) {
      const gx = gpu!.upload(x, rows, columns);
      const gg = gpu!.upload(gain, 1, columns);
      const out = gpu!.zeros(rows, columns);
      webgpuRmsNorm(gpu!, { x: gx, gain: gg, out, eps, gainOffset });
      const got = await gpu!.read(out);
      const want = new Float64Array(rows * columns);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let j = 0; j < columns; j++) s += x[r * columns + j]! ** 2;
        const scale = 1 / Math.sqrt(s / columns + eps);
        for (let j = 0; j < columns; j++) want[r * columns + j] = x[r * columns + j]! * scale * (gainOffset + gain[j]!);
      }
      expect(relativeError(got, want)).toBeLessThan(1e-6);
      for (const m of [gx, gg, out]) gpu!.release(m);
    }
  });

  it('rope on two sequences (positions from 0 in each) equals the rotate-half definition to 1e-6', async () => {
    const [heads, headDim] = [3, 16];
    const half = headDim / 2;
    const lengths = [5, 9];
    const tokens = 14;
    const positions = 16;
    const cos = new Float32Array(positions * half);
    const sin = new Float32Array(positions * half);
    for (let p = 0; p < positions; p++) for (let i = 0; i < half; i++) {
      const angle = p / 10000 ** ((2 * i) / headDim);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
    const data = Float32Array.from(randomArray(tokens * heads * headDim, 3));
    const seq = webgpuSequences(gpu!, lengths);
    const gd = gpu!.upload(data, tokens, heads * headDim);
    const gc = gpu!.upload(cos, positions, half);
    const gs = gpu!.upload(sin, positions, half);
    webgpuRope(gpu!, { data: gd, cos: gc, sin: gs, heads, headDim, sequences: seq });
    const got = await gpu!.read(gd);
    const want = new Float64Array(data.length);
    for (let t = 0; t < tokens; t++) {
      const p = t < 5 ? t : t - 5;
      for (let h = 0; h < heads; h++) for (let i = 0; i < half; i++) {
        const o = t * heads * headDim + h * headDim;
        const [a, b, c, s] = [data[o + i]!, data[o + half + i]!, cos[p * half + i]!, sin[p * half + i]!];
        want[o + i] = a * c - b * s;
        want[o + half + i] = b * c + a * s;
      }
    }
    expect(relativeError(got, want)).toBeLessThan(1e-6);
    seq.release();
    for (const m of [gd, gc, gs]) gpu!.release(m);
  });

  for (const activation of ['silu', 'gelu-tanh'] as const) {
    it(`gated activation (${activation}, inputs over [-60, 60]) equals the js backend's to 1e-6 and stays finite`, async () => {
      const length = 5000;
      const gate = Float32Array.from(randomArray(length, 4), (v) => 60 * v);
      const up = Float32Array.from(randomArray(length, 5));
      const gg = gpu!.upload(gate, 1, length);
      const gu = gpu!.upload(up, 1, length);
      webgpuGatedActivation(gpu!, { gate: gg, up: gu, activation });
      const got = await gpu!.read(gg);
      const want = new Float32Array(length);
      await cpu.gatedActivation({ gate, up, out: want, activation });
      expect(got.every(Number.isFinite)).toBe(true);
      expect(relativeError(got, want)).toBeLessThan(1e-6);
      for (const m of [gg, gu]) gpu!.release(m);
    });
  }

  for (const [label, extra] of [
    ['causal, grouped-query (8 heads, 2 kv heads)', {}],
    ['with a sliding window of 7 and a soft-cap of 5', { slidingWindow: 7, softcap: 5 }],
    ['with an explicit scale', { scale: 0.3 }],
  ] as const) {
    it(`attention ${label} on sequences of 37 and 20 tokens equals the js backend's to 1e-5`, async () => {
      const [numHeads, numKvHeads, headDim] = [8, 2, 32];
      const lengths = [37, 20];
      const tokens = 57;
      const q = Float32Array.from(randomArray(tokens * numHeads * headDim, 6), (v) => 2 * v);
      const k = Float32Array.from(randomArray(tokens * numKvHeads * headDim, 7), (v) => 2 * v);
      const v = Float32Array.from(randomArray(tokens * numKvHeads * headDim, 8));
      const want = new Float32Array(tokens * numHeads * headDim);
      await cpu.attention({ q, k, v, out: want, lengths, numHeads, numKvHeads, headDim, ...extra });
      const seq = webgpuSequences(gpu!, lengths);
      const [gq, gk, gv] = [gpu!.upload(q, tokens, numHeads * headDim), gpu!.upload(k, tokens, numKvHeads * headDim), gpu!.upload(v, tokens, numKvHeads * headDim)];
      const out = gpu!.zeros(tokens, numHeads * headDim);
      webgpuAttention(gpu!, { q: gq, k: gk, v: gv, out, sequences: seq, numHeads, numKvHeads, headDim, ...extra });
      expect(relativeError(await gpu!.read(out), want)).toBeLessThan(1e-5);
      seq.release();
      for (const m of [gq, gk, gv, out]) gpu!.release(m);
    });
  }

  it('rejects mismatched shapes and a kv head count that does not divide the heads', () => {
    const seq = webgpuSequences(gpu!, [4]);
    const a = gpu!.zeros(4, 12);
    const b = gpu!.zeros(4, 8);
    expect(() => webgpuAttention(gpu!, { q: a, k: b, v: b, out: a, sequences: seq, numHeads: 3, numKvHeads: 2, headDim: 4 })).toThrow(/divisor/);
    expect(() => webgpuRmsNorm(gpu!, { x: a, gain: gpu!.zeros(1, 8), out: b, eps: 1e-5 })).toThrow();
    expect(() => webgpuSequences(gpu!, [3, 0])).toThrow(/positive/);
    seq.release();
    for (const m of [a, b]) gpu!.release(m);
  });
});
