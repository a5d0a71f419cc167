import { describe, expect, it } from 'vitest';
import { bitsPerWeight, relativeError } from './metrics.js';
import { minifloat, FP8_E4M3 } from './minifloat.js';
import { elementCodec, parseFormat, type FormatSpec } from './number-format.js';
import { dequantize, dequantizeRows, encodeWithScales, planQuantization, quantize } from './quantize.js';
import { groupLayout, type Granularity } from './granularity.js';
import { matrix } from './tensor.js';
import { gaussian } from './test-helpers.test-util.js';

const FORMATS = ['int8', 'int4', 'int3', 'int2', 'int4-asym', 'int2-asym', 'fp8-e4m3', 'fp8-e5m2', 'fp6-e2m3', 'fp6-e3m2', 'fp4-e2m1', 'nf4', 'ternary', 'binary', 'mxfp4', 'mxfp6-e2m3', 'mxfp8-e4m3', 'mxint8', 'nvfp4'];
const w = matrix(gaussian(16 * 128, 7), 16, 128);

function granularityFor(spec: FormatSpec): Granularity | undefined {
  return spec.type === 'mx' || spec.type === 'nvfp4' ? undefined : { type: 'group', size: 32 };
}

describe('quantize / dequantize', () => {
  for (const name of FORMATS) {
    const spec = parseFormat(name);
    it(`${name}: each weight maps to its nearest grid point (error at most half a step), and re-encoding with the same scales is idempotent`, () => {
      const q = quantize(w, { format: spec, granularity: granularityFor(spec) });
      const codec = elementCodec(spec);
      const layout = groupLayout(16, 128, q.granularity);
      const grid = Array.from({ length: codec.levels }, (_, c) => codec.decode(c)).filter(Number.isFinite);
      for (let i = 0; i < w.data.length; i++) {
        const g = layout.ids[i]!;
        const s = q.scales[g]! * (q.tensorScale ?? 1);
        const z = q.zeroPoints?.[g] ?? 0;
        if (s === 0) continue;
        const x = w.data[i]! / s + z;
        const chosen = codec.decode(q.codes[i]!);
        const nearest = Math.min(...grid.map((v) => Math.abs(v - x)));
        expect(Math.abs(chosen - x)).toBeLessThanOrEqual(nearest + 1e-9);
        if (spec.type === 'int') expect(Math.abs(chosen - x)).toBeLessThanOrEqual(0.5 + 1e-9); // within half a step of the grid
      }
      const deq = dequantize(q);
      const plan = planQuantization(16, 128, { format: spec, granularity: q.granularity });
      const again = encodeWithScales(deq.data, plan, q.scales, q.zeroPoints, q.tensorScale);
      expect(Array.from(dequantize({ ...q, codes: again }).data)).toEqual(Array.from(deq.data));
      expect(relativeError(w.data, deq.data)).toBeLessThan(name === 'binary' || name === 'ternary' || name === 'int2' ? 0.7 : 0.45);
    });
  }

  it('NF4 and MX quantization (scales exact in float32) is fully idempotent: dequantize(quantize(x)) is a fixed point', () => {
    for (const name of ['nf4', 'mxfp4', 'mxfp8-e4m3', 'mxfp6-e3m2']) {
      const spec = parseFormat(name);
      const once = dequantize(quantize(w, { format: spec, granularity: spec.type === 'mx' ? undefined : { type: 'channel' }, scaleEncoding: 'float32' }));
      const twice = dequantize(quantize(once, { format: spec, granularity: spec.type === 'mx' ? undefined : { type: 'channel' }, scaleEncoding: 'float32' }));
      expect(Array.from(twice.data)).toEqual(Array.from(once.data));
    }
  });

  it('MXFP4 scales are powers of two 2^(floor(log2 absmax) - 2), as the OCP spec defines', () => {
    const row = new Float32Array(32);
    row[0] = 6; // absmax 6: scale 2^(2-2) = 1, 6 exact
    const block2 = new Float32Array(32).fill(0.1);
    block2[3] = -0.75; // absmax 0.75: scale 2^(-1-2) = 1/8, 0.75/0.125 = 6 exact
    const block3 = new Float32Array(32);
    block3[0] = 7; // scale 1; 7 saturates to 6
    const m = matrix(Float32Array.from([...row, ...block2, ...block3]), 1, 96);
    const q = quantize(m, { format: parseFormat('mxfp4') });
    expect(Array.from(q.scales)).toEqual([1, 0.125, 1]);
    const d = dequantize(q).data;
    expect(d[0]).toBe(6);
    expect(d[32 + 3]).toBe(-0.75);
    expect(d[32]).toBe(0.125); // 0.1 / 0.125 = 0.8 -> nearest E2M1 value 1
    expect(d[64]).toBe(6);
  });

  it('NVFP4 uses an E4M3 block scale under a float32 tensor scale of absmax / (448 * 6)', () => {
    const q = quantize(w, { format: parseFormat('nvfp4') });
    let absmax = 0;
    for (const x of w.data) absmax = Math.max(absmax, Math.abs(x));
    expect(q.tensorScale).toBe(Math.fround(absmax / 2688));
    const e4m3 = minifloat(FP8_E4M3);
    for (const s of q.scales) expect(e4m3.round(s)).toBe(s);
    expect(q.granularity).toEqual({ type: 'group', size: 16 });
    expect(bitsPerWeight(q)).toBeCloseTo(4 + 8 / 16 + 32 / w.data.length, 12);
  });

  it('counts bits per weight with scales and zero points', () => {
    const big = matrix(gaussian(4 * 256, 3), 4, 256);
    expect(bitsPerWeight(quantize(big, { format: parseFormat('int4'), granularity: { type: 'group', size: 128 } }))).toBe(4 + 16 / 128);
    expect(bitsPerWeight(quantize(big, { format: parseFormat('int4-asym'), granularity: { type: 'group', size: 128 } }))).toBe(4 + 20 / 128);
    expect(bitsPerWeight(quantize(big, { format: parseFormat('mxfp4') }))).toBe(4 + 8 / 32);
    expect(bitsPerWeight(quantize(big, { format: parseFormat('int8'), granularity: { type: 'channel' } }))).toBe(8 + 16 / 256);
  });

  it('asymmetric int reaches both ends of a one-sided range exactly', () => {
    const m = matrix(Float32Array.from({ length: 16 }, (_, i) => i * 0.5), 1, 16);
    const q = quantize(m, { format: parseFormat('int4-asym'), granularity: { type: 'channel' }, scaleEncoding: 'float32' });
    expect(q.zeroPoints![0]).toBe(0);
    expect(Array.from(dequantize(q).data)).toEqual(Array.from(m.data));
  });

  it('handles all-zero groups and 2-D blocks', () => {
    const m = matrix(new Float32Array(4 * 8), 4, 8);
    m.data[9] = 1;
    const q = quantize(m, { format: parseFormat('int4'), granularity: { type: 'block', rows: 3, columns: 3 } });
    expect(q.scales.length).toBe(2 * 3);
    const d = dequantize(q).data;
    expect(d.every(Number.isFinite)).toBe(true);
    expect(Math.abs(d[9]! - 1)).toBeLessThanOrEqual(1 / 15 + 1e-3); // half a step of int4 (scale 1/7.5)
    expect(d[0]).toBe(0);
  });

  it('names what is wrong: a group size that does not divide the row, NaN weights, a wrong block granularity', () => {
    expect(() => quantize(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 48 } })).toThrow(/group size 48 does not divide the row length 128/);
    const bad = matrix(new Float32Array(8), 2, 4);
    bad.data[5] = NaN;
    expect(() => quantize(bad, { format: parseFormat('int4') })).toThrow(/weight element \[1, 1\] is NaN/);
    expect(() => quantize(w, { format: parseFormat('mxfp4'), granularity: { type: 'channel' } })).toThrow(/fixed blocks of 32/);
  });
});

describe('dequantize of group and channel granularity', () => {
  // Consecutive groups are decoded without a per-element group lookup; the identity permutation takes the lookup path.
  for (const name of ['int4', 'int3-asym', 'nf4', 'fp8-e4m3', 'ternary']) {
    for (const granularity of [{ type: 'group', size: 32 }, { type: 'channel' }] as Granularity[]) {
      it(`${name} ${JSON.stringify(granularity)}: equals the group-lookup decode bit for bit, and decodes code - zero times scale`, () => {
        const format = parseFormat(name);
        const q = quantize(w, { format, granularity });
        const identity = Int32Array.from({ length: 128 }, (_, i) => i);
        const direct = dequantize(q).data;
        expect(Array.from(direct)).toEqual(Array.from(dequantize({ ...q, permutation: identity }).data));
        const codec = elementCodec(format);
        const size = granularity.type === 'group' ? granularity.size : 128;
        for (const [r, c] of [[0, 0], [3, 77], [15, 127]] as const) {
          const g = r * (128 / size) + Math.floor(c / size);
          const expected = Math.fround((codec.decode(q.codes[r * 128 + c]!) - (q.zeroPoints?.[g] ?? 0)) * q.scales[g]!);
          expect(direct[r * 128 + c]).toBe(expected === 0 ? 0 : expected);
        }
      });
    }
  }
});

describe('dequantizeRows', () => {
  it('decodes any range of rows to the same bits as dequantize (group, channel, block, permuted groups), and refuses bad ranges', () => {
    const permutation = Int32Array.from({ length: 128 }, (_, i) => (i * 37) % 128);
    const cases: [Granularity, Int32Array | undefined][] = [
      [{ type: 'group', size: 32 }, undefined],
      [{ type: 'channel' }, undefined],
      [{ type: 'block', rows: 4, columns: 64 }, undefined],
      [{ type: 'group', size: 32 }, permutation],
    ];
    for (const [granularity, perm] of cases) {
      const q = { ...quantize(w, { format: parseFormat('int4-asym'), granularity }), ...(perm ? { permutation: perm } : {}) };
      const whole = new Uint32Array(dequantize(q).data.buffer);
      for (const [r0, r1] of [[0, 16], [0, 5], [5, 11], [15, 16], [7, 7]] as const) {
        const out = new Float32Array((r1 - r0) * 128 + 3).fill(NaN);
        dequantizeRows(q, r0, r1, out);
        expect(Array.from(new Uint32Array(out.buffer, 0, (r1 - r0) * 128))).toEqual(Array.from(whole.subarray(r0 * 128, r1 * 128)));
        expect(out[(r1 - r0) * 128]).toBeNaN(); // nothing written past the rows
      }
      expect(() => dequantizeRows(q, 3, 2, new Float32Array(128))).toThrow(/not a range of rows/);
      expect(() => dequantizeRows(q, 0, 17, new Float32Array(17 * 128))).toThrow(/not a range of rows/);
      expect(() => dequantizeRows(q, 0, 2, new Float32Array(200))).toThrow(/out/);
    }
  });
});

describe('act-order permutation', () => {
  it('groups columns along the permutation (g_idx) when dequantizing', () => {
    const m = matrix(Float32Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? 100 : 1) + i * 0.01), 1, 8);
    // Visit even columns first: the large values share groups, the small values share groups.
    const permutation = Int32Array.of(0, 2, 4, 6, 1, 3, 5, 7);
    const layout = groupLayout(1, 8, { type: 'group', size: 4 }, permutation);
    expect(Array.from(layout.ids)).toEqual([0, 1, 0, 1, 0, 1, 0, 1]);
    const plan = planQuantization(1, 8, { format: parseFormat('int4'), granularity: { type: 'group', size: 4 } });
    const scales = Float32Array.of(100.06 / 7.5, 1.07 / 7.5);
    const codes = encodeWithScales(m.data, { ...plan, layout }, scales);
    const d = dequantize({ shape: [1, 8], format: parseFormat('int4'), granularity: { type: 'group', size: 4 }, codes, scales, scaleEncoding: 'float32', permutation }).data;
    // Each column is within half a step of its own group's grid: the small values keep their fine scale.
    for (let c = 0; c < 8; c++) expect(Math.abs(d[c]! - m.data[c]!)).toBeLessThanOrEqual(scales[c % 2]! / 2 + 1e-6);
    expect(() => groupLayout(1, 8, { type: 'group', size: 4 }, Int32Array.of(0, 0, 1, 2, 3, 4, 5, 6))).toThrow(/not a permutation/);
  });
});
