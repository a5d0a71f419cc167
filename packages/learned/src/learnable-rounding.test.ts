import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dequantize, parseFormat, quantize, type FormatSpec, type Matrix } from '@bitsmith/core';
import { createRandom, learnableRoundingKernels } from '@bitsmith/linalg';
import { learnableRounding, type RoundingParameters } from './learnable-rounding.js';
import { signSgd } from './optimizer.js';

function randomMatrix(rows: number, columns: number, seed: number): Matrix<'float32'> {
  const r = createRandom(seed);
  return { dtype: 'float32', shape: [rows, columns], data: Float32Array.from({ length: rows * columns }, () => r.normal()) };
}

describe('learnableRounding', () => {
  for (const name of ['int4', 'int3-asym', 'int2']) {
    it(`with offset 0 and clipping factors 1 reproduces core's round-to-nearest exactly (${name}, groups of 16)`, () => {
      const w = randomMatrix(8, 64, 1);
      const options = { format: parseFormat(name), granularity: { type: 'group', size: 16 } as const };
      const rounding = learnableRounding(w, options);
      const p = rounding.initial();
      const q = rounding.quantize(p);
      const rtn = quantize(w, options);
      expect(Array.from(q.codes)).toEqual(Array.from(rtn.codes));
      expect(Array.from(q.scales)).toEqual(Array.from(rtn.scales));
      expect(q.zeroPoints && Array.from(q.zeroPoints)).toEqual(rtn.zeroPoints && Array.from(rtn.zeroPoints));
      expect(Array.from(rounding.dequantize(p))).toEqual(Array.from(dequantize(rtn).data));
    });
  }

  it('its stored form decodes to the weight it trains with, for any parameters', () => {
    const w = randomMatrix(4, 32, 2);
    for (const name of ['int3', 'int4-asym']) {
      const rounding = learnableRounding(w, { format: parseFormat(name), granularity: { type: 'group', size: 8 } });
      const r = createRandom(3);
      const p: RoundingParameters = {
        offset: Float32Array.from({ length: 128 }, () => r.uniform() - 0.5),
        minScale: Float32Array.from({ length: 16 }, () => 0.5 + 0.5 * r.uniform()),
        maxScale: Float32Array.from({ length: 16 }, () => 0.5 + 0.5 * r.uniform()),
      };
      expect(Array.from(dequantize(rounding.quantize(p)).data)).toEqual(Array.from(rounding.dequantize(p)));
    }
  });

  it('refuses formats that are not uniform integers', () => {
    expect(() => learnableRounding(randomMatrix(2, 8, 1), { format: parseFormat('nf4') })).toThrow(/uniform integer/);
  });

  // PyTorch autograd of intel/auto-round's formulation (round_ste, clamp), brought back by
  // scripts/device/make-block-gradients.py: weight [6, 16], groups of 8, 3 bits, random offsets and clipping factors.
  const fixture = JSON.parse(readFileSync(new URL('../fixtures/autoround-quantizer-gradients.json', import.meta.url), 'utf8')) as {
    bits: number;
    groupSize: number;
    tensors: Record<string, { shape: number[]; data: number[] }>;
  };
  const t = (name: string): number[] => fixture.tensors[name]!.data;
  const weight: Matrix<'float32'> = { dtype: 'float32', shape: [6, 16], data: Float32Array.from(t('weight')) };
  const probe = t('probe');

  for (const [kind, format] of [
    ['asym', { type: 'int', bits: fixture.bits, symmetric: false }],
    ['sym', { type: 'int', bits: fixture.bits, symmetric: true }],
  ] as [string, FormatSpec][]) {
    it(`dequantized weights and gradients of offsets and clipping factors equal PyTorch autograd (${kind})`, () => {
      const rounding = learnableRounding(weight, { format, granularity: { type: 'group', size: fixture.groupSize }, scaleEncoding: 'float32' });
      const p: RoundingParameters = {
        offset: Float32Array.from(t(`${kind}.v`)),
        minScale: Float32Array.from(t(`${kind}.min_scale`)),
        maxScale: Float32Array.from(t(`${kind}.max_scale`)),
      };
      const close = (actual: ArrayLike<number>, expected: number[], label: string): void => {
        const scale = Math.max(...expected.map(Math.abs));
        expected.forEach((e, i) => expect(Math.abs(actual[i]! - e), `${label}[${i}]`).toBeLessThan(1e-5 * Math.max(1, scale)));
      };
      close(rounding.dequantize(p), t(`${kind}.dq`), 'dq');
      const g = rounding.backward(p, probe);
      close(g.offset, t(`${kind}.grad.v`), 'offset');
      close(g.minScale, t(`${kind}.grad.min_scale`), 'minScale');
      close(g.maxScale, t(`${kind}.grad.max_scale`), 'maxScale');
    });
  }

  // Straight-through gradients equal the finite differences of the surrogate in which each rounding residual
  // round(x) - x is frozen at the current parameters (what the estimator differentiates), written here in float64.
  for (const symmetric of [false, true]) {
    it(`gradients equal central differences of the frozen-residual surrogate (${symmetric ? 'symmetric' : 'asymmetric'}, 3 bits)`, () => {
      const rows = 3;
      const cols = 16;
      const group = 8;
      const bits = 3;
      const w = randomMatrix(rows, cols, 9);
      const rounding = learnableRounding(w, { format: { type: 'int', bits, symmetric }, granularity: { type: 'group', size: group }, scaleEncoding: 'float32' });
      const r = createRandom(10);
      const groups = (rows * cols) / group;
      const p: RoundingParameters = {
        offset: Float32Array.from({ length: rows * cols }, () => 0.8 * (r.uniform() - 0.5)),
        minScale: Float32Array.from({ length: groups }, () => 0.7 + 0.3 * r.uniform()),
        maxScale: Float32Array.from({ length: groups }, () => 0.7 + 0.3 * r.uniform()),
      };
      const c = Float64Array.from({ length: rows * cols }, () => r.normal());
      const levels = 2 ** bits;
      const half = levels / 2;
      const data = w.data;
      const groupMin = (g: number): number => Math.min(0, ...Array.from(data.subarray(g * group, (g + 1) * group)));
      const groupMax = (g: number): number => Math.max(0, ...Array.from(data.subarray(g * group, (g + 1) * group)));
      // The surrogate: the rounding residuals (and zero points' residuals) frozen at p, and so is which weights fall
      // inside the grid (at the grid's edge, where the top weight of a group sits, clamp passes the gradient, as
      // PyTorch's clamp does; a two-sided difference across the kink would see half of it).
      const scaleOf = (g: number, a: number, b: number): number =>
        symmetric ? Math.max(-groupMin(g) * a, groupMax(g) * b) / (half - 0.5) : (groupMax(g) * b - groupMin(g) * a) / (levels - 1);
      const frozen = { u: new Float64Array(rows * cols), z: new Float64Array(groups), inside: new Uint8Array(rows * cols) };
      for (let g = 0; g < groups; g++) {
        const s = scaleOf(g, p.minScale[g]!, p.maxScale[g]!);
        const z = (-groupMin(g) * p.minScale[g]!) / s;
        frozen.z[g] = Math.round(z) - z;
        for (let j = 0; j < group; j++) {
          const i = g * group + j;
          const u = data[i]! / s + p.offset[i]!;
          frozen.u[i] = Math.round(u) - u;
          const code = symmetric ? Math.round(u) : Math.round(u) + Math.round(z);
          frozen.inside[i] = symmetric ? Number(code >= -half && code <= half - 1) : Number(code >= 0 && code <= levels - 1);
        }
      }
      const surrogate = (offset: Float64Array, minScale: Float64Array, maxScale: Float64Array): number => {
        let loss = 0;
        for (let g = 0; g < groups; g++) {
          const s = scaleOf(g, minScale[g]!, maxScale[g]!);
          const z = symmetric ? 0 : (-groupMin(g) * minScale[g]!) / s + frozen.z[g]!;
          for (let j = 0; j < group; j++) {
            const i = g * group + j;
            const rounded = data[i]! / s + offset[i]! + frozen.u[i]!;
            const clamped = symmetric ? Math.min(half - 1, Math.max(-half, Math.round(rounded))) : Math.min(levels - 1, Math.max(0, Math.round(rounded + z))) - z;
            const q = frozen.inside[i] ? rounded : clamped;
            loss += c[i]! * s * q;
          }
        }
        return loss;
      };
      const base = { offset: Float64Array.from(p.offset), minScale: Float64Array.from(p.minScale), maxScale: Float64Array.from(p.maxScale) };
      const grads = rounding.backward(p, c);
      for (const key of ['offset', 'minScale', 'maxScale'] as const) {
        const x = base[key];
        for (let i = 0; i < x.length; i++) {
          const keep = x[i]!;
          const h = 1e-6;
          x[i] = keep + h;
          const up = surrogate(base.offset, base.minScale, base.maxScale);
          x[i] = keep - h;
          const down = surrogate(base.offset, base.minScale, base.maxScale);
          x[i] = keep;
          expect(Math.abs(grads[key][i]! - (up - down) / (2 * h)), `${key}[${i}]`).toBeLessThan(1e-4);
        }
      }
    });
  }

  describe('with the WebAssembly kernels', () => {
    const bits = (a: ArrayLike<number>) => Array.from(a, (v) => (Object.is(v, -0) ? '-0' : String(v)));
    for (const [name, group, start, arithmetic] of [
      ['int4', 16, false, 'reference'],
      ['int3-asym', 12, false, 'reference'],
      ['int2-asym', 48, false, 'reference'],
      ['int3', 16, true, 'reference'],
      ['int4', 16, false, 'native'],
      ['int3-asym', 12, false, 'native'],
      ['int2-asym', 6, false, 'native'],
      ['int3', 16, true, 'native'],
    ] as const) {
      it(`training gives the JavaScript loops' bits: dequantization, gradients and SignSGD steps (${name}${start ? ' from a start solution' : ''}, groups of ${group}, ${arithmetic} arithmetic)`, async () => {
        const kernels = await learnableRoundingKernels();
        expect(kernels).toBeDefined();
        const w = randomMatrix(12, 48, 4);
        const format = parseFormat(name);
        const granularity = { type: 'group', size: group } as const;
        // A start solution on the same grid (round-to-nearest at 0.8 of the range), for the `start` offsets.
        const startAt = start ? quantize({ ...w, data: w.data.map((v) => 0.8 * v) }, { format, granularity }) : undefined;
        const options = { format, granularity, arithmetic, ...(startAt ? { start: startAt } : {}) };
        const plain = learnableRounding(w, options);
        const fast = learnableRounding(w, { ...options, kernels });
        const p = plain.initial();
        const f = fast.initial();
        expect(f.offset.byteOffset).toBeGreaterThan(0); // a view of the kernel's memory: the kernel path runs
        const float32 = arithmetic === 'native';
        const optimizers = [p, f].map(() => ({
          offset: signSgd({ learningRate: 0.05, iterations: 10, bounds: [-0.5, 0.5], float32 }),
          minScale: signSgd({ learningRate: 0.05, iterations: 10, bounds: [0, 1], float32 }),
          maxScale: signSgd({ learningRate: 0.05, iterations: 10, bounds: [0, 1], float32 }),
        }));
        const r = createRandom(5);
        let clamped = 0;
        for (let it = 0; it < 10; it++) {
          const a = plain.dequantize(p);
          const b = fast.dequantize(f);
          expect(bits(b)).toEqual(bits(a));
          // The kept dequantization (the kernel's own array, no copy; an array of the quantizer's without kernels).
          const kept = fast.dequantizeKept(f);
          expect(kept.buffer).toBe(f.offset.buffer);
          expect(bits(kept)).toEqual(bits(a));
          expect(fast.dequantizeKept(f)).toBe(kept);
          expect(bits(plain.dequantizeKept(p))).toEqual(bits(a));
          const gradient = Float32Array.from(a, () => r.normal());
          const da = plain.backward(p, gradient);
          // Every other step through the kernel's own gradient buffer (as a block pass writes it), not copied in.
          const buffer = fast.gradientBuffer()!;
          expect(plain.gradientBuffer()).toBeUndefined();
          if (it % 2 === 1) buffer.set(gradient);
          const db = fast.backward(f, it % 2 === 1 ? buffer : gradient);
          expect(bits(db.offset)).toEqual(bits(da.offset));
          expect(bits(db.minScale)).toEqual(bits(da.minScale));
          expect(bits(db.maxScale)).toEqual(bits(da.maxScale));
          clamped += da.offset.filter((v) => v === 0).length;
          optimizers[0]!.offset.step(p.offset, da.offset);
          optimizers[1]!.offset.step(f.offset, db.offset);
          optimizers[0]!.minScale.step(p.minScale, da.minScale);
          optimizers[1]!.minScale.step(f.minScale, db.minScale);
          optimizers[0]!.maxScale.step(p.maxScale, da.maxScale);
          optimizers[1]!.maxScale.step(f.maxScale, db.maxScale);
          expect(bits(f.offset)).toEqual(bits(p.offset));
        }
        expect(clamped).toBeGreaterThan(0); // some weights left the grid, so both branches of the backward ran
        expect(p.offset.some((v) => v !== 0)).toBe(true);
        expect(Array.from(fast.quantize(f).codes)).toEqual(Array.from(plain.quantize(p).codes));
        // The stored form decodes to the dequantization the training saw (its codes in the same arithmetic).
        const q = fast.quantize(f);
        const seen = fast.dequantize(f);
        const decoded = dequantize(q).data as Float32Array;
        for (let i = 0; i < seen.length; i++) expect(Math.abs(decoded[i]! - seen[i]!), `weight ${i}`).toBeLessThanOrEqual(1e-6 * Math.abs(seen[i]!));
      });
    }

    it("native arithmetic: float32 rounding of the reference's float64 loops, not the same bits", () => {
      const w = randomMatrix(16, 64, 21);
      const options = { format: parseFormat('int3'), granularity: { type: 'group', size: 16 } as const };
      const reference = learnableRounding(w, options);
      const native = learnableRounding(w, { ...options, arithmetic: 'native' });
      const r = createRandom(22);
      const p = reference.initial();
      p.offset.set(Float32Array.from(p.offset, () => r.uniform() - 0.5));
      p.minScale.fill(0.9);
      const a = reference.dequantize(p);
      const b = native.dequantize(p);
      // Codes agree except where w / s + v is within float32 rounding of a tie.
      let changed = 0;
      for (let i = 0; i < a.length; i++) if (Math.abs(a[i]! - b[i]!) > 1e-6 * Math.abs(a[i]!)) changed++;
      expect(changed).toBeLessThan(a.length / 200);
      const gradient = Float32Array.from(a, () => r.normal());
      const da = reference.backward(p, gradient);
      const minScale = Float64Array.from(da.minScale);
      const db = native.backward(p, gradient);
      // Every group's gradient differs in its last bits, and by more only in a group where a code changed.
      let differ = 0;
      let far = 0;
      for (let g = 0; g < minScale.length; g++) {
        if (minScale[g] !== db.minScale[g]) differ++;
        if (Math.abs(minScale[g]! - db.minScale[g]!) > 1e-4 * (1 + Math.abs(minScale[g]!))) far++;
      }
      expect(differ).toBeGreaterThan(minScale.length / 4);
      expect(far).toBeLessThanOrEqual(changed);
      // The input gradient of the native backward: the weight's gradient inside the grid, 0 where clamped.
      const dInput = new Float32Array(a.length);
      const dc = native.backward(p, gradient, dInput);
      for (let i = 0; i < a.length; i++) expect(dInput[i]).toBe(dc.offset[i] === 0 ? 0 : gradient[i]);
      expect(() => learnableRounding(w, { ...options, arithmetic: 'fast' as never })).toThrow(/arithmetic.*'reference' or 'native'/);
    });

    it('other parameters are copied in and leave the first parameters (held in the kernel) alone', async () => {
      const kernels = (await learnableRoundingKernels())!;
      const w = randomMatrix(4, 32, 6);
      const options = { format: parseFormat('int4'), granularity: { type: 'group', size: 8 } as const };
      const fast = learnableRounding(w, { ...options, kernels });
      const plain = learnableRounding(w, options);
      const resident = fast.initial();
      resident.offset.fill(0.25);
      const before = resident.offset.slice();
      const r = createRandom(8);
      const other = fast.initial();
      expect(other.offset).not.toBe(resident.offset);
      other.offset.set(Float32Array.from(other.offset, () => r.uniform() - 0.5));
      expect(bits(fast.dequantize(other))).toEqual(bits(plain.dequantize(other)));
      const gradient = Float32Array.from({ length: 128 }, () => r.normal());
      expect(bits(fast.backward(other, gradient).offset)).toEqual(bits(plain.backward(other, gradient).offset));
      expect(bits(resident.offset)).toEqual(bits(before));
      expect(bits(fast.dequantize(resident))).toEqual(bits(plain.dequantize(resident)));
      // A float64 gradient is not rounded to float32 on the way in (the JavaScript loop takes it).
      const wide = Float64Array.from(gradient, (v) => v * (1 + 1e-9));
      expect(bits(fast.backward(resident, wide).offset)).toEqual(bits(plain.backward(resident, wide).offset));
    });
  });
});
