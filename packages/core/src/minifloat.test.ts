import { describe, expect, it } from 'vitest';
import { BFLOAT16, FLOAT16, FP4_E2M1, FP6_E2M3, FP6_E3M2, FP8_E4M3, FP8_E5M2, minifloat, type MinifloatSpec } from './minifloat.js';

/** Decoder written directly from the OCP MX / FP8 definitions, independent of the library's implementation. */
function referenceDecode(code: number, e: number, m: number, kind: 'ieee' | 'fn' | 'none'): number {
  const bits = 1 + e + m;
  const s = code >> (bits - 1) ? -1 : 1;
  const E = (code >> m) & (2 ** e - 1);
  const M = code % 2 ** m;
  const bias = 2 ** (e - 1) - 1;
  if (kind === 'ieee' && E === 2 ** e - 1) return M === 0 ? s * Infinity : NaN;
  if (kind === 'fn' && E === 2 ** e - 1 && M === 2 ** m - 1) return NaN;
  const significand = E === 0 ? M / 2 ** m : 1 + M / 2 ** m;
  const exponent = E === 0 ? 1 - bias : E - bias;
  return s * significand * 2 ** exponent;
}

const CASES: Array<[string, MinifloatSpec, 'ieee' | 'fn' | 'none', number]> = [
  ['fp8-e4m3', FP8_E4M3, 'fn', 448],
  ['fp8-e5m2', FP8_E5M2, 'ieee', 57344],
  ['fp6-e2m3', FP6_E2M3, 'none', 7.5],
  ['fp6-e3m2', FP6_E3M2, 'none', 28],
  ['fp4-e2m1', FP4_E2M1, 'none', 6],
];

/** Brute-force nearest code: scan every finite code, ties to the code with an even mantissa, saturating. */
function bruteEncode(x: number, codec: ReturnType<typeof minifloat>): number {
  let best = -1;
  let bestDistance = Infinity;
  const total = 2 ** codec.bits;
  const clamped = Math.max(-codec.maxValue, Math.min(codec.maxValue, x));
  for (let c = 0; c < total; c++) {
    const v = codec.decode(c);
    if (!Number.isFinite(v)) continue;
    if (Math.sign(v) !== 0 && Math.sign(v) !== Math.sign(clamped) && clamped !== 0) continue;
    const d = Math.abs(v - clamped);
    if (d < bestDistance || (d === bestDistance && (c & 1) === 0 && (best & 1) === 1)) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

describe('minifloat', () => {
  for (const [name, spec, kind, max] of CASES) {
    describe(name, () => {
      const codec = minifloat(spec);
      it('decodes every code as the definition says', () => {
        for (let c = 0; c < 2 ** codec.bits; c++) {
          const expected = referenceDecode(c, spec.exponentBits, spec.mantissaBits, kind);
          const actual = codec.decode(c);
          if (Number.isNaN(expected)) expect(actual).toBeNaN();
          else expect(actual).toBe(expected);
        }
      });
      it(`has max ${max}`, () => {
        expect(codec.maxValue).toBe(max);
      });
      it('encodes every finite code back to itself (zeros aside)', () => {
        for (let c = 0; c < 2 ** codec.bits; c++) {
          const v = codec.decode(c);
          if (!Number.isFinite(v) || v === 0) continue;
          expect(codec.encode(v)).toBe(c);
        }
      });
      it('rounds to nearest, ties to even, with saturation, like a brute-force search', () => {
        let seed = 12345;
        const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
        const probes: number[] = [];
        for (let c = 0; c < 2 ** (codec.bits - 1); c++) {
          const a = codec.decode(c);
          const b = codec.decode(c + 1);
          if (Number.isFinite(a) && Number.isFinite(b)) probes.push((a + b) / 2, -(a + b) / 2); // exact ties
        }
        for (let i = 0; i < 300; i++) probes.push((rand() * 2 - 1) * max * 1.5);
        probes.push(max * 10, -max * 10);
        // One float64 step either side of some of the ties (which must go to the nearer code, not the even one), and
        // values spread evenly in log scale from below the smallest subnormal to beyond the largest value.
        const nudge = (x: number, up: boolean): number => {
          const f = new Float64Array([x]);
          const w = new BigInt64Array(f.buffer);
          w[0] = w[0]! + ((x > 0) === up ? 1n : -1n);
          return f[0]!;
        };
        const ties = probes.slice(0, 2 ** (codec.bits - 1) * 2);
        for (let i = 0; i < ties.length; i += Math.max(1, Math.floor(ties.length / 400))) {
          if (ties[i] !== 0) probes.push(nudge(ties[i]!, true), nudge(ties[i]!, false));
        }
        const low = Math.log2(codec.minPositive) - 3;
        const high = Math.log2(max) + 1;
        for (let i = 0; i < 400; i++) probes.push((rand() < 0.5 ? -1 : 1) * 2 ** (low + rand() * (high - low)));
        for (const x of probes) {
          expect(codec.decode(codec.encode(x)) + 0).toBe(codec.decode(bruteEncode(x, codec)) + 0); // +0 folds -0
        }
      });
    });
  }

  it('FP4 E2M1 has the grid 0, 0.5, 1, 1.5, 2, 3, 4, 6', () => {
    const codec = minifloat(FP4_E2M1);
    expect(Array.from({ length: 8 }, (_, c) => codec.decode(c))).toEqual([0, 0.5, 1, 1.5, 2, 3, 4, 6]);
    expect(codec.round(2.5)).toBe(2); // tie between 2 (even mantissa) and 3
    expect(codec.round(3.5)).toBe(4); // tie between 3 (odd) and 4 (even)
    expect(codec.round(100)).toBe(6);
    expect(codec.round(-100)).toBe(-6);
  });

  it('FP8 E4M3 has no infinity and NaN only at S.1111.111', () => {
    const codec = minifloat(FP8_E4M3);
    expect(codec.decode(0x7f)).toBeNaN();
    expect(codec.decode(0xff)).toBeNaN();
    expect(codec.decode(0x7e)).toBe(448);
    expect(codec.decode(0x78)).toBe(256);
    expect(codec.minPositive).toBe(2 ** -9);
    expect(codec.round(1e9)).toBe(448);
  });

  it('FP8 E5M2 has infinities at 0x7c and 0xfc', () => {
    const codec = minifloat(FP8_E5M2);
    expect(codec.decode(0x7c)).toBe(Infinity);
    expect(codec.decode(0xfc)).toBe(-Infinity);
    expect(codec.decode(0x7d)).toBeNaN();
    expect(codec.round(1e9)).toBe(57344);
  });

  it('bfloat16 decodes like the top half of a float32', () => {
    const codec = minifloat(BFLOAT16);
    const view = new DataView(new ArrayBuffer(4));
    for (let c = 0; c < 65536; c += 37) {
      view.setUint32(0, c << 16);
      const expected = view.getFloat32(0);
      if (Number.isNaN(expected)) expect(codec.decode(c)).toBeNaN();
      else expect(codec.decode(c)).toBe(expected);
    }
  });

  it('float16 has max 65504 and smallest subnormal 2^-24', () => {
    const codec = minifloat(FLOAT16);
    expect(codec.maxValue).toBe(65504);
    expect(codec.minPositive).toBe(2 ** -24);
    expect(codec.round(0.1)).toBe(0.0999755859375);
  });

  it('rejects impossible specs with the field name', () => {
    expect(() => minifloat({ exponentBits: 0, mantissaBits: 1, specials: 'none' })).toThrow(/exponentBits/);
    expect(() => minifloat({ exponentBits: 8, mantissaBits: 10, specials: 'none' })).toThrow(/exceed 16/);
  });
});
