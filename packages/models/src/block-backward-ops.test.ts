import { describe, expect, it } from 'vitest';
import { createRandom, tryReferenceKernels } from '@bitsmith/linalg';
import { causalAttentionBackward, rmsNormBackward, ropeBackward, swigluBackward } from './block-backward-ops.js';
import { ropeTables } from './rope.js';

// Every op's analytic gradient against central finite differences of a float64 forward written here from the
// equations: for a random linear functional L = sum_i c_i y_i, dL/dx_j must equal (L(x + h e_j) - L(x - h e_j)) / 2h.

function random(seed: number): () => number {
  const r = createRandom(seed);
  return () => r.uniform() - 0.5;
}
const filled = (n: number, rnd: () => number, scale = 2, base = 0): Float64Array => Float64Array.from({ length: n }, () => base + scale * rnd());

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Central differences of `loss` with respect to every entry of `x` (perturbed in place and restored). */
function finiteDifferences(x: Float64Array, loss: () => number, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i]!;
    x[i] = keep + h;
    const up = loss();
    x[i] = keep - h;
    const down = loss();
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-7): void {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThanOrEqual(tolerance * Math.max(1, scale));
}

function rmsNorm64(x: Float64Array, rows: number, cols: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[r * cols + j]! ** 2;
    const inv = 1 / Math.sqrt(s / cols + eps);
    for (let j = 0; j < cols; j++) y[r * cols + j] = x[r * cols + j]! * inv * w[j]!;
  }
  return y;
}

describe('rmsNormBackward', () => {
  const rnd = random(11);
  const rows = 3;
  const cols = 7;
  const eps = 1e-5;
  const x = filled(rows * cols, rnd);
  const w = filled(cols, rnd, 1, 1);
  const c = filled(rows * cols, rnd);
  const loss = () => dot(rmsNorm64(x, rows, cols, w, eps), c);

  it('input and gain gradients equal central finite differences', () => {
    const dx = new Float64Array(x.length);
    const dw = new Float64Array(cols);
    rmsNormBackward(x, rows, cols, w, eps, c, dx, dw);
    expectClose(dx, finiteDifferences(x, loss));
    expectClose(dw, finiteDifferences(w, loss));
  });

  it('accumulates into the input gradient when asked (residual branches)', () => {
    const dx = new Float64Array(x.length).fill(0.25);
    rmsNormBackward(x, rows, cols, w, eps, c, dx, undefined, true);
    const fresh = new Float64Array(x.length);
    rmsNormBackward(x, rows, cols, w, eps, c, fresh, undefined);
    expectClose(dx, fresh.map((v) => v + 0.25), 1e-12);
  });
});

describe('ropeBackward', () => {
  it('equals central finite differences of the rotate-half rotation (two heads, several positions)', () => {
    const rnd = random(5);
    const d = 8;
    const heads = 2;
    const tokens = 4;
    const tables = ropeTables({ headDim: d, ropeTheta: 10000, ropeScaling: { type: 'none' } }, 16);
    const positions = [0, 3, 7, 15];
    const x = filled(tokens * heads * d, rnd);
    const c = filled(x.length, rnd);
    const forward = (): number => {
      const y = new Float64Array(x.length);
      for (let t = 0; t < tokens; t++)
        for (let h = 0; h < heads; h++)
          for (let i = 0; i < d / 2; i++) {
            const o = t * heads * d + h * d;
            const angle = positions[t]! * 10000 ** (-(2 * i) / d);
            const a = x[o + i]!;
            const b = x[o + d / 2 + i]!;
            y[o + i] = a * Math.cos(angle) - b * Math.sin(angle);
            y[o + d / 2 + i] = b * Math.cos(angle) + a * Math.sin(angle);
          }
      return dot(y, c);
    };
    const g = Float64Array.from(c);
    ropeBackward(g, tables, tokens, heads, positions);
    // The tables are float32, so the analytic gradient carries their rounding (~1e-7).
    expectClose(g, finiteDifferences(x, forward), 3e-7);
  });
});

function attention64(q: Float64Array, k: Float64Array, v: Float64Array, lengths: number[], H: number, Hkv: number, d: number, window: number): Float64Array {
  const out = new Float64Array(q.length);
  let start = 0;
  for (const n of lengths) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let i = 0; i < n; i++) {
        const s: number[] = [];
        for (let j = 0; j <= i; j++) {
          if (i - j >= window) {
            s.push(-Infinity);
            continue;
          }
          let acc = 0;
          for (let t = 0; t < d; t++) acc += q[(start + i) * H * d + h * d + t]! * k[(start + j) * Hkv * d + kvh * d + t]!;
          s.push(acc / Math.sqrt(d));
        }
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < d; t++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += (e[j]! / z) * v[(start + j) * Hkv * d + kvh * d + t]!;
          out[(start + i) * H * d + h * d + t] = acc;
        }
      }
    }
    start += n;
  }
  return out;
}

describe('causalAttentionBackward', () => {
  for (const { label, window } of [
    { label: 'causal', window: Infinity },
    { label: 'with a sliding window of 2', window: 2 },
  ]) {
    it(`query, key and value gradients equal central finite differences (GQA 4:2, two sequences, ${label})`, () => {
      const rnd = random(label.length);
      const H = 4;
      const Hkv = 2;
      const d = 4;
      const lengths = [4, 3];
      const T = 7;
      const q = filled(T * H * d, rnd);
      const k = filled(T * Hkv * d, rnd);
      const v = filled(T * Hkv * d, rnd);
      const c = filled(T * H * d, rnd);
      const loss = () => dot(attention64(q, k, v, lengths, H, Hkv, d, window), c);
      const dq = new Float64Array(q.length);
      const dk = new Float64Array(k.length);
      const dv = new Float64Array(v.length);
      causalAttentionBackward(q, k, v, lengths, { numHeads: H, numKvHeads: Hkv, headDim: d, slidingWindow: window === Infinity ? undefined : window }, c, dq, dk, dv);
      expectClose(dq, finiteDifferences(q, loss));
      expectClose(dk, finiteDifferences(k, loss));
      expectClose(dv, finiteDifferences(v, loss));
    });
  }
});

describe('swigluBackward', () => {
  it('gate and up gradients equal central finite differences', () => {
    const rnd = random(3);
    const n = 12;
    const gate = filled(n, rnd, 8);
    const up = filled(n, rnd, 4);
    const c = filled(n, rnd);
    const loss = () => {
      let s = 0;
      for (let i = 0; i < n; i++) s += c[i]! * (gate[i]! / (1 + Math.exp(-gate[i]!))) * up[i]!;
      return s;
    };
    const dg = new Float64Array(n);
    const du = new Float64Array(n);
    swigluBackward(gate, up, c, dg, du);
    expectClose(dg, finiteDifferences(gate, loss));
    expectClose(du, finiteDifferences(up, loss));
  });

  it('with the WebAssembly reference kernels gives the float32 loop\'s bits (in place, as the block calls it)', async () => {
    const kernels = await tryReferenceKernels();
    expect(kernels).toBeDefined(); // Node 20 has WebAssembly SIMD
    const rnd = random(5);
    const n = 3 * 16384 + 7; // several of the kernel's chunks and an odd tail
    const gate = Float32Array.from({ length: n }, () => 12 * rnd());
    const up = Float32Array.from({ length: n }, () => 4 * rnd());
    const dh = Float32Array.from({ length: n }, () => 1e-3 * rnd());
    gate.set([0, -0, Infinity, -Infinity, NaN, 800, -800]);
    const want = [gate.slice(), up.slice()] as const;
    swigluBackward(want[0], want[1], dh, want[0], want[1]);
    const got = [gate.slice(), up.slice()] as const;
    swigluBackward(got[0], got[1], dh, got[0], got[1], kernels);
    for (const k of [0, 1]) {
      const differing = got[k].findIndex((x, i) => !Object.is(x, want[k][i]));
      expect(differing).toBe(-1);
    }
    // Float64 arrays (the finite-difference tests' type) take the loop even with kernels.
    const g64 = Float64Array.from(gate.subarray(10, 20));
    const u64 = Float64Array.from(up.subarray(10, 20));
    const dg = new Float64Array(10);
    const du = new Float64Array(10);
    swigluBackward(g64, u64, Float64Array.from(dh.subarray(10, 20)), dg, du, kernels);
    expect(Array.from(Float32Array.from(dg))).toEqual(Array.from(want[0].subarray(10, 20)));
  });
});
