import { roundHalfEven } from '@bitsmith/core';

const f = Math.fround;
const LOG2E = f(1.44269504088896341);
const C1 = f(0.693359375);
const C2 = f(-2.1219444e-4);
const P0 = f(1.98756915e-4);
const P1 = f(1.3981999507e-3);
const P2 = f(8.3334519073e-3);
const P3 = f(4.1665795894e-2);
const P4 = f(1.6666665459e-1);
const P5 = f(5.0000001201e-1);

/**
 * `exp(x)` in float32 arithmetic (Cephes' `expf`: relative error within a few float32 ulps): `x` clamped to
 * [-87, 88], `n = nearest(x log2 e)`, `r = (x - n C1) - n C2`, a degree-7 polynomial in `r`, times `2^n`; every
 * operation rounded to float32, as the WebAssembly kernel computes it. NaN gives NaN.
 *
 * @param x A float32 value.
 * @example
 * ```ts
 * exp32(1); // 2.7182817459106445 (Math.fround(Math.E))
 * ```
 */
export function exp32(x: number): number {
  if (x !== x) return x;
  const xc = Math.max(Math.min(x, 88), -87);
  const n = roundHalfEven(f(xc * LOG2E));
  let r = f(xc - f(n * C1));
  r = f(r - f(n * C2));
  let p = f(f(P0 * r) + P1);
  p = f(f(p * r) + P2);
  p = f(f(p * r) + P3);
  p = f(f(p * r) + P4);
  p = f(f(p * r) + P5);
  p = f(f(f(p * f(r * r)) + r) + 1);
  return f(p * 2 ** n);
}

/**
 * SwiGLU's gate in float32 (as PyTorch computes it): `sig[i] = 1 / (1 + exp32(-g))` and `out[i] = (g sig[i]) up[i]`
 * for `g = gate[i]`, every operation rounded to float32, over `length` elements. The training passes of
 * `@bitsmith/models` keep `sig` for {@link swigluBackwardFloat32Loop}. Bit for bit the reference kernels'
 * `siluGateFloat32`. `out` may be `gate` or `up`.
 *
 * @example
 * ```ts
 * siluGateFloat32Loop(gate, up, out, sigmoids, gate.length);
 * ```
 */
export function siluGateFloat32Loop(gate: Float32Array, up: Float32Array, out: Float32Array, sig: Float32Array, length: number): void {
  for (let i = 0; i < length; i++) {
    const g = gate[i]!;
    const u = up[i]!;
    const s = f(1 / f(1 + exp32(-g)));
    sig[i] = s;
    out[i] = f(g * s) * u;
  }
}

/**
 * SwiGLU's backward in float32 from the sigmoids {@link siluGateFloat32Loop} kept: `dGate[i] = ((d u) s)(1 + g (1 -
 * s))` and `dUp[i] = (d g) s` for `g = gate[i]`, `u = up[i]`, `d = dh[i]`, `s = sig[i]`, every operation rounded to
 * float32, over `length` elements. Bit for bit the reference kernels' `swigluBackwardFloat32`. `dGate` may be `gate`,
 * `dUp` may be `up`.
 *
 * @example
 * ```ts
 * swigluBackwardFloat32Loop(gate, up, dAct, sigmoids, gate, up, gate.length); // gradients in place
 * ```
 */
export function swigluBackwardFloat32Loop(gate: Float32Array, up: Float32Array, dh: Float32Array, sig: Float32Array, dGate: Float32Array, dUp: Float32Array, length: number): void {
  for (let i = 0; i < length; i++) {
    const g = gate[i]!;
    const u = up[i]!;
    const d = dh[i]!;
    const s = sig[i]!;
    const dg = f(f(f(d * u) * s) * f(1 + f(g * f(1 - s))));
    dUp[i] = f(d * g) * s;
    dGate[i] = dg;
  }
}
