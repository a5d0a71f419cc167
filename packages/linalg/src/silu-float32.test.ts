import { describe, expect, it } from 'vitest';
import { mulberry32 } from './prng.js';
import { createReferenceKernels } from './reference-kernels.js';
import { exp32, siluGateFloat32Loop, swigluBackwardFloat32Loop } from './silu-float32.js';

/** Indices where two arrays differ bit for bit (NaN compared as NaN). */
function bitDifferences(a: Float32Array, b: Float32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) out.push(i);
  return out;
}

/** Gaussian float32 values with extremes, ties and non-finite values mixed in. */
function inputs(seed: number, n: number, scale: number): Float32Array {
  const random = mulberry32(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = scale * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const special = [0, -0, 1, -1, 87, -87, 88, -88, 88.5, -90, 100, -100, 1e-40, -1e-40, Infinity, -Infinity, NaN, 3.4e38, -3.4e38];
  special.forEach((v, k) => (x[(k * 7919) % n] = v));
  return x;
}

const ULP = 2 ** -23;

describe('float32 SiLU (the training passes\' native arithmetic)', () => {
  it('exp32 is within 2 float32 ulps of Math.exp over [-87, 88], exact at 0, NaN for NaN', () => {
    let worst = 0;
    for (let k = 0; k <= 200_000; k++) {
      const x = Math.fround(-87 + (175 * k) / 200_000);
      const exact = Math.exp(x);
      worst = Math.max(worst, Math.abs(exp32(x) - exact) / exact);
    }
    expect(worst).toBeLessThan(2 * ULP);
    expect(exp32(0)).toBe(1);
    expect(exp32(1)).toBe(Math.fround(Math.E));
    expect(exp32(NaN)).toBeNaN();
    // Outside the clamp the value is exp of the bound: finite, never Infinity or a wrong sign.
    expect(exp32(1000)).toBe(exp32(88));
    expect(exp32(-1000)).toBe(exp32(-87));
  });

  it('the gate and its backward agree with the float64 formulas (relative error of a few ulps)', () => {
    const n = 4099;
    const gate = inputs(1, n, 4);
    const up = inputs(2, n, 1);
    const dh = inputs(3, n, 1);
    for (const a of [gate, up, dh]) for (let i = 0; i < n; i++) if (!Number.isFinite(a[i]!) || Math.abs(a[i]!) > 50) a[i] = 0.5;
    const out = new Float32Array(n);
    const sig = new Float32Array(n);
    siluGateFloat32Loop(gate, up, out, sig, n);
    const dGate = new Float32Array(n);
    const dUp = new Float32Array(n);
    swigluBackwardFloat32Loop(gate, up, dh, sig, dGate, dUp, n);
    for (let i = 0; i < n; i++) {
      const g = gate[i]!;
      const u = up[i]!;
      const d = dh[i]!;
      const s = 1 / (1 + Math.exp(-g));
      // Bounds relative to the sizes of the terms (cancellation in 1 + g (1 - s) is covered by its terms' size).
      expect(Math.abs(out[i]! - g * s * u)).toBeLessThanOrEqual(8 * ULP * Math.abs(g * s * u) + 1e-44);
      expect(Math.abs(dUp[i]! - d * g * s)).toBeLessThanOrEqual(8 * ULP * Math.abs(d * g * s) + 1e-44);
      const dg = d * u * s * (1 + g * (1 - s));
      expect(Math.abs(dGate[i]! - dg)).toBeLessThanOrEqual(8 * ULP * Math.abs(d * u * s) * (1 + Math.abs(g * (1 - s))) + 1e-44);
    }
  });

  it('the backward is the derivative of the gate: central differences in float64 on (silu(g) u)', () => {
    const n = 257;
    const gate = inputs(4, n, 3);
    const up = inputs(5, n, 1);
    const dh = inputs(6, n, 1);
    for (const a of [gate, up, dh]) for (let i = 0; i < n; i++) if (!Number.isFinite(a[i]!) || Math.abs(a[i]!) > 20) a[i] = 0.25;
    const sig = new Float32Array(n);
    siluGateFloat32Loop(gate, up, new Float32Array(n), sig, n);
    const dGate = new Float32Array(n);
    const dUp = new Float32Array(n);
    swigluBackwardFloat32Loop(gate, up, dh, sig, dGate, dUp, n);
    const f = (g: number, u: number) => (g / (1 + Math.exp(-g))) * u;
    const h = 1e-6;
    for (let i = 0; i < n; i++) {
      const g = gate[i]!;
      const u = up[i]!;
      const d = dh[i]!;
      const fdGate = (d * (f(g + h, u) - f(g - h, u))) / (2 * h);
      const fdUp = (d * (f(g, u + h) - f(g, u - h))) / (2 * h);
      expect(Math.abs(dGate[i]! - fdGate)).toBeLessThan(1e-5 * (1 + Math.abs(fdGate)));
      expect(Math.abs(dUp[i]! - fdUp)).toBeLessThan(1e-5 * (1 + Math.abs(fdUp)));
    }
  });

  it('the WebAssembly kernels give the JavaScript loops\' bits: random, extreme and non-finite inputs, odd lengths, in place, in the arena', async () => {
    const kernels = await createReferenceKernels();
    for (const n of [1, 3, 4, 5, 1023, 40_003]) {
      const gate = inputs(10 + n, n, 5);
      const up = inputs(20 + n, n, 2);
      const dh = inputs(30 + n, n, 1);
      const out = new Float32Array(n);
      const sig = new Float32Array(n);
      siluGateFloat32Loop(gate, up, out, sig, n);
      const kOut = new Float32Array(n);
      const kSig = new Float32Array(n);
      kernels.siluGateFloat32(gate, up, kOut, kSig, n);
      expect(bitDifferences(kOut, out)).toEqual([]);
      expect(bitDifferences(kSig, sig)).toEqual([]);
      const dGate = new Float32Array(n);
      const dUp = new Float32Array(n);
      swigluBackwardFloat32Loop(gate, up, dh, sig, dGate, dUp, n);
      // In place: the gradients over the gate and up arrays.
      const g2 = gate.slice();
      const u2 = up.slice();
      kernels.swigluBackwardFloat32(g2, u2, dh, kSig, g2, u2, n);
      expect(bitDifferences(g2, dGate)).toEqual([]);
      expect(bitDifferences(u2, dUp)).toEqual([]);
    }
    // In the arena (no copies): the same bits.
    const n = 2053;
    const { buffer, start } = kernels.arena(4 * 6 * 2112);
    const take = (k: number) => new Float32Array(buffer, start + 4 * 2112 * k, n);
    const [g, u, d, o, s] = [take(0), take(1), take(2), take(3), take(4)];
    g.set(inputs(41, n, 5));
    u.set(inputs(42, n, 2));
    d.set(inputs(43, n, 1));
    const out = new Float32Array(n);
    const sig = new Float32Array(n);
    siluGateFloat32Loop(g, u, out, sig, n);
    const dGate = new Float32Array(n);
    const dUp = new Float32Array(n);
    swigluBackwardFloat32Loop(g, u, d, sig, dGate, dUp, n);
    kernels.siluGateFloat32(g, u, o, s, n);
    expect(bitDifferences(o, out)).toEqual([]);
    expect(bitDifferences(s, sig)).toEqual([]);
    kernels.swigluBackwardFloat32(g, u, d, s, g, u, n);
    expect(bitDifferences(g, dGate)).toEqual([]);
    expect(bitDifferences(u, dUp)).toEqual([]);
  });

  it('a non-finite gate gives a non-finite output, and a short array is named', async () => {
    const kernels = await createReferenceKernels();
    const gate = Float32Array.of(NaN, Infinity, 2, 2, NaN);
    const up = Float32Array.of(1, 1, 1, NaN, 1);
    const out = new Float32Array(5);
    const sig = new Float32Array(5);
    kernels.siluGateFloat32(gate, up, out, sig, 5);
    expect(Number.isNaN(out[0]!)).toBe(true);
    expect(out[1]).toBe(Infinity);
    expect(Number.isNaN(out[3]!)).toBe(true);
    expect(Number.isNaN(out[4]!)).toBe(true);
    expect(() => kernels.siluGateFloat32(gate, up, out, new Float32Array(2), 5)).toThrow(/sigmoids/);
  });
});
