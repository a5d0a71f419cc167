import { describe, expect, it } from 'vitest';
import { learnableRoundingKernels, type LearnableRoundingKernel } from './learnable-rounding-kernel.js';
import { mulberry32 } from './prng.js';

/** Indices where two arrays differ bit for bit (NaN compared as NaN, -0 against +0 as different). */
function bitDifferences(a: ArrayLike<number>, b: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) out.push(i);
  return out;
}

/** Round half to even, written from its definition (not the kernels' trick): the nearest integer, ties to the even one. */
function roundHalfEvenByDefinition(u: number): number {
  if (!Number.isFinite(u)) return u;
  const f = Math.floor(u);
  const d = u - f;
  const r = d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
  return r + 0; // the loops only use the rounded value after adding a zero point or subtracting a ratio
}

interface Case {
  w: Float32Array;
  base: Float32Array | undefined;
  offset: Float32Array;
  runStart: Int32Array;
  runGroup: Int32Array;
  scale: Float64Array;
  zero: Float64Array | undefined;
  lowest: number;
  highest: number;
  gradient: Float32Array;
}

/** The dequantization as AutoRound's loop defines it, in float64 with float32 stores. */
function dequantizeByDefinition(c: Case): Float32Array {
  const out = new Float32Array(c.w.length);
  for (let r = 0; r < c.runGroup.length; r++) {
    const g = c.runGroup[r]!;
    const s = c.scale[g]!;
    const z = c.zero ? c.zero[g]! : 0;
    for (let i = c.runStart[r]!; i < c.runStart[r + 1]!; i++) {
      if (!(s > 0)) {
        out[i] = 0;
        continue;
      }
      let u = c.w[i]! / s + c.offset[i]!;
      if (c.base) u += c.base[i]!;
      let q = roundHalfEvenByDefinition(u) + z;
      q = q < c.lowest ? c.lowest : q > c.highest ? c.highest : q;
      out[i] = (q - z) * s + 0;
    }
  }
  return out;
}

/** Its straight-through backward: offset gradients, and the group sums added element by element in order. */
function backwardByDefinition(c: Case): { dOffset: Float32Array; dScale: Float64Array; dZero: Float64Array } {
  const groups = c.scale.length;
  const dOffset = new Float32Array(c.w.length);
  const dScale = new Float64Array(groups);
  const dZero = new Float64Array(groups);
  for (let r = 0; r < c.runGroup.length; r++) {
    const g = c.runGroup[r]!;
    const s = c.scale[g]!;
    const z = c.zero ? c.zero[g]! : 0;
    for (let i = c.runStart[r]!; i < c.runStart[r + 1]!; i++) {
      if (!(s > 0)) continue;
      const G = c.gradient[i]!;
      const ratio = c.w[i]! / s;
      let u = ratio + c.offset[i]!;
      if (c.base) u += c.base[i]!;
      const rounded = roundHalfEvenByDefinition(u);
      const shifted = rounded + z;
      if (shifted >= c.lowest && shifted <= c.highest) {
        dOffset[i] = G * s;
        dScale[g] += G * (rounded - ratio);
      } else {
        dScale[g] += G * ((shifted < c.lowest ? c.lowest : c.highest) - z);
        if (c.zero) dZero[g] += -G * s;
      }
    }
  }
  return { dOffset, dScale, dZero };
}

const f32 = Math.fround;

/** The float32 dequantization from its definition: the scale and zero point rounded to float32, each operation rounded to float32. */
function dequantizeByDefinition32(c: Case): Float32Array {
  const out = new Float32Array(c.w.length);
  for (let r = 0; r < c.runGroup.length; r++) {
    const g = c.runGroup[r]!;
    const s = f32(c.scale[g]!);
    const z = c.zero ? f32(c.zero[g]!) : 0;
    for (let i = c.runStart[r]!; i < c.runStart[r + 1]!; i++) {
      if (!(s > 0)) {
        out[i] = 0;
        continue;
      }
      let u = f32(f32(c.w[i]! / s) + c.offset[i]!);
      if (c.base) u = f32(u + c.base[i]!);
      let q = f32(roundHalfEvenByDefinition(u) + z);
      q = q < c.lowest ? c.lowest : q > c.highest ? c.highest : q;
      out[i] = f32(f32(q - z) * s) + 0;
    }
  }
  return out;
}

/**
 * Its float32 backward: each run's terms summed in four float32 accumulators (element `from + 4 j + k` into `k`),
 * those combined as `(a0 + a1) + (a2 + a3)`, the run's last `length % 4` terms added one by one, and the run's sum added
 * to the group's float64 sum.
 */
function backwardByDefinition32(c: Case): { dOffset: Float32Array; dScale: Float64Array; dZero: Float64Array } {
  const groups = c.scale.length;
  const dOffset = new Float32Array(c.w.length);
  const dScale = new Float64Array(groups);
  const dZero = new Float64Array(groups);
  for (let r = 0; r < c.runGroup.length; r++) {
    const g = c.runGroup[r]!;
    const s = f32(c.scale[g]!);
    const z = c.zero ? f32(c.zero[g]!) : 0;
    if (!(s > 0)) continue;
    const from = c.runStart[r]!;
    const to = c.runStart[r + 1]!;
    const terms: number[] = [];
    const zeroTerms: number[] = [];
    for (let i = from; i < to; i++) {
      const G = c.gradient[i]!;
      const ratio = f32(c.w[i]! / s);
      let u = f32(ratio + c.offset[i]!);
      if (c.base) u = f32(u + c.base[i]!);
      const rounded = roundHalfEvenByDefinition(u);
      const shifted = f32(rounded + z);
      if (shifted >= c.lowest && shifted <= c.highest) {
        dOffset[i] = f32(G * s);
        terms.push(f32(G * f32(rounded - ratio)));
        zeroTerms.push(0);
      } else {
        terms.push(f32(G * f32((shifted < c.lowest ? c.lowest : c.highest) - z)));
        zeroTerms.push(-f32(G * s));
      }
    }
    const runSum = (t: number[]): number => {
      const lanes = [0, 0, 0, 0];
      const whole = t.length - (t.length % 4);
      for (let j = 0; j < whole; j++) lanes[j % 4] = f32(lanes[j % 4]! + t[j]!);
      let sum = f32(f32(lanes[0]! + lanes[1]!) + f32(lanes[2]! + lanes[3]!));
      for (let j = whole; j < t.length; j++) sum = f32(sum + t[j]!);
      return sum;
    };
    dScale[g] += runSum(terms);
    if (c.zero) dZero[g] += runSum(zeroTerms);
  }
  return { dOffset, dScale, dZero };
}

/** A matrix of `rows x columns` in groups of `group` columns, with awkward values. */
function makeCase(seed: number, rows: number, columns: number, group: number, asymmetric: boolean, withBase: boolean): Case {
  const random = mulberry32(seed);
  const n = rows * columns;
  const w = Float32Array.from({ length: n }, () => (random() - 0.5) * (random() < 0.02 ? 2 : 0.2));
  const perRow = Math.ceil(columns / group);
  const groups = rows * perRow;
  const runStart = new Int32Array(groups + 1);
  const runGroup = new Int32Array(groups);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < perRow; k++) {
      runStart[r * perRow + k] = r * columns + k * group;
      runGroup[r * perRow + k] = r * perRow + k;
    }
  }
  runStart[groups] = n;
  const scale = Float64Array.from({ length: groups }, () => 0.01 + random() * 0.03);
  // Non-positive and NaN scales: those runs give 0.
  scale[1] = 0;
  if (groups > 3) scale[3] = -0.01;
  if (groups > 5) scale[5] = NaN;
  const lowest = asymmetric ? 0 : -8;
  const highest = asymmetric ? 15 : 7;
  const zero = asymmetric ? Float64Array.from({ length: groups }, () => Math.floor(random() * 16)) : undefined;
  const offset = Float32Array.from({ length: n }, () => random() - 0.5);
  // Exact ties of w / s + v (w = k s exactly representable, v = 1/2) and zeros of both signs.
  for (let i = 0; i < n; i += 37) {
    const g = Math.floor(i / group);
    const s = Math.fround(scale[g]!);
    if (s > 0) {
      scale[g] = s;
      w[i] = 3 * s;
      offset[i] = i % 74 === 0 ? 0.5 : -0.5;
    }
  }
  w[2] = 0;
  w[4] = -0;
  offset[2] = -0.3;
  offset[4] = -0;
  const base = withBase ? Float32Array.from({ length: n }, () => Math.round((random() - 0.5) * 4) - (random() - 0.5)) : undefined;
  const gradient = Float32Array.from({ length: n }, () => (random() - 0.5) * 1e-3);
  gradient[6] = 0;
  gradient[7] = -0;
  return { w, base, offset, runStart, runGroup, scale, zero, lowest, highest, gradient };
}

function load(kernel: LearnableRoundingKernel, c: Case, copy: boolean): void {
  kernel.weight.set(c.w);
  if (c.base) kernel.base.set(c.base);
  kernel.runStart.set(c.runStart);
  kernel.runGroup.set(c.runGroup);
  kernel.scale.set(c.scale);
  if (c.zero) kernel.zero.set(c.zero);
  (copy ? kernel.offsetCopy : kernel.offset).set(c.offset);
  kernel.gradient.set(c.gradient);
}

describe('learnable-rounding kernels (WebAssembly, the loops of AutoRound bit for bit)', () => {
  const cases: [string, number, number, number, boolean, boolean][] = [
    ['symmetric, groups of 8', 6, 40, 8, false, false],
    ['asymmetric, odd group length', 5, 21, 7, true, false],
    ['symmetric with start offsets, per row', 9, 33, 33, false, true],
  ];
  for (const [name, rows, columns, group, asymmetric, withBase] of cases) {
    it(`dequantize and backward equal the loops written from their definition (${name})`, async () => {
      const factory = await learnableRoundingKernels();
      expect(factory).toBeDefined();
      for (const copy of [false, true]) {
        const c = makeCase(rows * 101 + columns, rows, columns, group, asymmetric, withBase);
        const kernel = factory!({ length: c.w.length, runs: c.runGroup.length, groups: c.scale.length, base: withBase });
        load(kernel, c, copy);
        const grid = { zeroPoints: asymmetric, lowest: c.lowest, highest: c.highest, copy };
        kernel.dequantize(grid);
        const want = dequantizeByDefinition(c);
        expect(bitDifferences(kernel.dequantized, want)).toEqual([]);
        // Clamping happened at both ends, and some runs are zero (the cases cover what they claim).
        expect(want.some((v, i) => v !== 0 && Math.abs(v - c.w[i]!) > 0.05)).toBe(true);
        kernel.scaleGradient.fill(0);
        kernel.zeroGradient.fill(0);
        kernel.backward(grid);
        const b = backwardByDefinition(c);
        expect(bitDifferences(kernel.offsetGradient, b.dOffset)).toEqual([]);
        expect(bitDifferences(kernel.scaleGradient, b.dScale)).toEqual([]);
        if (asymmetric) expect(bitDifferences(kernel.zeroGradient, b.dZero)).toEqual([]);
        else expect([...kernel.zeroGradient].every((v) => v === 0)).toBe(true);
      }
    });
  }

  for (const [name, rows, columns, group, asymmetric, withBase] of cases) {
    it(`float32 dequantize and backward equal the float32 loops written from their definition (${name})`, async () => {
      const factory = (await learnableRoundingKernels())!;
      for (const copy of [false, true]) {
        const c = makeCase(rows * 103 + columns, rows, columns, group, asymmetric, withBase);
        const kernel = factory({ length: c.w.length, runs: c.runGroup.length, groups: c.scale.length, base: withBase });
        load(kernel, c, copy);
        const grid = { zeroPoints: asymmetric, lowest: c.lowest, highest: c.highest, copy, float32: true };
        kernel.dequantize(grid);
        const want = dequantizeByDefinition32(c);
        expect(bitDifferences(kernel.dequantized, want)).toEqual([]);
        // The float32 codes are the float64 ones except near a tie of w / s + v (a few in a hundred at most).
        const want64 = dequantizeByDefinition(c);
        const groupOf = new Int32Array(c.w.length);
        for (let r = 0; r < c.runGroup.length; r++) groupOf.fill(c.runGroup[r]!, c.runStart[r]!, c.runStart[r + 1]!);
        const codeChanges = want.filter((v, i) => {
          const s = c.scale[groupOf[i]!]!;
          return s > 0 && Math.round(v / f32(s)) !== Math.round(want64[i]! / s);
        }).length;
        expect(codeChanges).toBeLessThan(want.length / 30);
        kernel.scaleGradient.fill(0);
        kernel.zeroGradient.fill(0);
        kernel.backward(grid);
        const b = backwardByDefinition32(c);
        expect(bitDifferences(kernel.offsetGradient, b.dOffset)).toEqual([]);
        expect(bitDifferences(kernel.scaleGradient, b.dScale)).toEqual([]);
        if (asymmetric) expect(bitDifferences(kernel.zeroGradient, b.dZero)).toEqual([]);
        // The float32 sums are not the float64 ones (the flag took the other loops).
        expect(bitDifferences(kernel.scaleGradient, backwardByDefinition(c).dScale).length).toBeGreaterThan(0);
      }
    });
  }

  it('float32 signStep equals the step in float32 arithmetic (rate and bounds rounded to float32)', async () => {
    const factory = (await learnableRoundingKernels())!;
    const random = mulberry32(19);
    const n = 1003;
    const kernel = factory({ length: n, runs: 1, groups: 1, base: false });
    const params = Float32Array.from({ length: n }, () => random() - 0.5);
    const grads = Float32Array.from({ length: n }, () => random() - 0.5);
    params.set([0.5, -0.5, 0.4999, -0.4999, -0, 0, 0.3, 0.1, NaN]);
    grads.set([-1, 1, -1, 1, 0, -0, NaN, Infinity, 1]);
    kernel.offset.set(params);
    kernel.offsetGradient.set(grads);
    // 0.0123 is not a float32: the float64 step rounded once differs from the float32 step for some offsets.
    const rate = 0.0123;
    kernel.signStep(rate, -0.5, 0.5, true);
    const want = params.map((p, i) => {
      const g = grads[i]!;
      const direction = g > 0 ? 1 : g < 0 ? -1 : 0;
      const c = f32(p - f32(rate) * direction);
      return c < -0.5 ? -0.5 : c > 0.5 ? 0.5 : c;
    });
    expect(bitDifferences(kernel.offset, want)).toEqual([]);
    expect(Object.is(kernel.offset[4], -0)).toBe(true);
    expect(kernel.offset[8]).toBeNaN();
    const float64Step = params.map((p, i) => Math.min(0.5, Math.max(-0.5, p - rate * (Number(grads[i]! > 0) - Number(grads[i]! < 0)))));
    expect(bitDifferences(kernel.offset, float64Step).length).toBeGreaterThan(0);
  });

  it('backward adds each group sum onto the value already there, element by element', async () => {
    const factory = (await learnableRoundingKernels())!;
    const c = makeCase(5, 2, 16, 16, false, false);
    const kernel = factory({ length: c.w.length, runs: c.runGroup.length, groups: c.scale.length, base: false });
    load(kernel, c, false);
    kernel.scale.set([0.02, 0.03]);
    kernel.scaleGradient.set([1e10, -3]);
    kernel.backward({ zeroPoints: false, lowest: -8, highest: 7 });
    for (let g = 0; g < 2; g++) {
      let sum = g === 0 ? 1e10 : -3;
      for (let i = g * 16; i < g * 16 + 16; i++) {
        const ratio = c.w[i]! / kernel.scale[g]!;
        const rounded = roundHalfEvenByDefinition(ratio + c.offset[i]!);
        const q = rounded < -8 ? -8 : rounded > 7 ? 7 : rounded;
        sum += c.gradient[i]! * (q === rounded ? rounded - ratio : q);
      }
      expect(kernel.scaleGradient[g]).toBe(sum);
    }
  });

  it('signStep equals the bounded SignSGD step (float64, one rounding to float32; zero and NaN gradients move nothing)', async () => {
    const factory = (await learnableRoundingKernels())!;
    const random = mulberry32(9);
    const n = 1001;
    const kernel = factory({ length: n, runs: 1, groups: 1, base: false });
    const params = Float32Array.from({ length: n }, () => random() - 0.5);
    const grads = Float32Array.from({ length: n }, () => random() - 0.5);
    params.set([0.5, -0.5, 0.4999, -0.4999, -0, 0, 0.3, 0.1]);
    grads.set([-1, 1, -1, 1, 0, -0, NaN, Infinity]);
    kernel.offset.set(params);
    kernel.offsetGradient.set(grads);
    const rate = 0.0123;
    kernel.signStep(rate, -0.5, 0.5);
    const want = params.map((p, i) => {
      const g = grads[i]!;
      const direction = g > 0 ? 1 : g < 0 ? -1 : 0;
      return Math.min(0.5, Math.max(-0.5, p - rate * direction));
    });
    expect(bitDifferences(kernel.offset, want)).toEqual([]);
    expect(kernel.offset[0]).toBe(0.5);
    expect(Object.is(kernel.offset[4], -0)).toBe(true);
    expect(kernel.offset[6]).toBe(Math.fround(0.3));
  });

  it('signStep with a zero bound orders -0 below +0 as Math.min and Math.max do (the other bounds take a faster path)', async () => {
    const factory = (await learnableRoundingKernels())!;
    const n = 9;
    for (const [lowest, highest] of [[0, 1], [-1, -0], [-0, 0.25]] as const) {
      const kernel = factory({ length: n, runs: 1, groups: 1, base: false });
      const params = Float32Array.from([-0, 0, -0, 0.5, -0.5, 2, -2, 0.1, -0.1]);
      const grads = Float32Array.from([0, 0, -1, 1, -1, 0, 0, NaN, 1]);
      kernel.offset.set(params);
      kernel.offsetGradient.set(grads);
      const rate = 0.1;
      kernel.signStep(rate, lowest, highest);
      const want = params.map((p, i) => {
        const g = grads[i]!;
        return Math.min(highest, Math.max(lowest, p - rate * (Number(g > 0) - Number(g < 0))));
      });
      expect(bitDifferences(kernel.offset, want)).toEqual([]);
    }
  });

  it('refuses a layout that does not fit a 32-bit memory', async () => {
    const factory = (await learnableRoundingKernels())!;
    expect(() => factory({ length: 2 ** 30, runs: 1, groups: 1, base: true })).toThrow(/4 GiB/);
    expect(() => factory({ length: -1, runs: 1, groups: 1, base: false })).toThrow(/non-negative integer/);
  });
});
