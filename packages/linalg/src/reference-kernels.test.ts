import { describe, expect, it } from 'vitest';
import { attentionWithSgemm } from './backends/attention-sgemm.js';
import { gatedActivationLoop, gatedActivationReference } from './backends/gated-activation-loop.js';
import { createJsBackend } from './backends/js-backend.js';
import { fastExp } from './fast-exp.js';
import { mulberry32 } from './prng.js';
import { ARENA_SCRATCH_BYTES, createReferenceKernels } from './reference-kernels.js';

/** Indices where two arrays differ bit for bit (NaN payloads compared as NaN). */
function bitDifferences(a: Float32Array | Float64Array, b: Float32Array | Float64Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) out.push(i);
  return out;
}

function gaussian(random: () => number, n: number, scale: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = scale * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return x;
}

describe('reference kernels (WebAssembly, bit for bit the JavaScript loops)', () => {
  it('exp equals fastExp on random values, exact rounding ties, both ends of the range, infinities and NaN', async () => {
    const kernels = await createReferenceKernels();
    const random = mulberry32(7);
    const values: number[] = [];
    for (let i = 0; i < 20000; i++) values.push((random() - 0.5) * 1500);
    // x * (64 / ln 2) exactly k + 1/2 (Math.round goes up where nearest-even may go down) and its neighbours.
    const c64 = 64 / Math.LN2;
    for (let k = -2000; k <= 2000; k += 7) {
      const x = (k + 0.5) / c64;
      for (const y of [x, x * (1 + 2 ** -52), x * (1 - 2 ** -52)]) values.push(y);
    }
    for (const x of [-708, -708, -707.9999, -707.9999, 709, 709, 708.9999, 708.9999, -708.0001, 709.0001, 0, -0, 1e-300, -1e-300, -745, -744.99, -745.01, 709.78, 709.77, 709.79, -1e308, 1e308, Infinity, -Infinity, NaN]) values.push(x);
    const x = Float64Array.from(values);
    const ties = Float64Array.from({ length: 64 }, (_, j) => (j - 32 + 0.5) / 1); // v itself at halves, for the tie rule
    for (let j = 0; j < ties.length; j++) ties[j] = ties[j]! / c64;
    const all = Float64Array.from([...x, ...ties]);
    const got = new Float64Array(all.length);
    kernels.exp(all, got);
    const want = all.map((v) => fastExp(v));
    expect(bitDifferences(got, want)).toEqual([]);
    // The tie rule matters: at least one value of the list is a tie that nearest-even would round the other way.
    const tieCount = [...all].filter((v) => {
      const t = v * c64;
      return Number.isFinite(t) && t - Math.floor(t) === 0.5 && Math.floor(t) % 2 === 0;
    }).length;
    expect(tieCount).toBeGreaterThan(0);
  });

  it('siluGate equals gatedActivationLoop (SiLU) for random, large, odd-length, special and in-place inputs', async () => {
    const kernels = await createReferenceKernels();
    const random = mulberry32(11);
    for (const [n, scale] of [[1, 1], [2, 3], [4097, 1], [40000, 8], [1001, 200]] as const) {
      const gate = gaussian(random, n, scale);
      const up = gaussian(random, n, 1);
      if (n > 10) gate.set([0, -0, Infinity, -Infinity, NaN, 800, -800, 88.7, -103.9, 1e-40]);
      const want = new Float32Array(n);
      gatedActivationLoop({ gate, up, out: want, activation: 'silu' });
      const got = new Float32Array(n);
      kernels.siluGate(gate, up, got, n);
      expect(bitDifferences(got, want)).toEqual([]);
      // In place through the public function, as runBlock calls it.
      const inPlace = gate.slice();
      await gatedActivationReference({ gate: inPlace, up, out: inPlace, activation: 'silu' }, kernels);
      expect(bitDifferences(inPlace, want)).toEqual([]);
    }
  });

  it('swigluBackward equals the JavaScript loop (fastExp, float64 per element) for random, large, odd-length, special and in-place inputs', async () => {
    const kernels = await createReferenceKernels();
    const random = mulberry32(13);
    for (const [n, scale] of [[1, 1], [3, 2], [16385, 1], [40001, 6], [999, 150]] as const) {
      const gate = gaussian(random, n, scale);
      const up = gaussian(random, n, 1);
      const dh = gaussian(random, n, 0.01);
      if (n > 20) {
        gate.set([0, -0, Infinity, -Infinity, NaN, 800, -800, 88.7, -103.9, 1e-40, 709.5, -745.5]);
        dh.set([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, -0, NaN, Infinity], 10);
      }
      // The definition, as @bitsmith/models' swigluBackward computes it.
      const wantGate = new Float32Array(n);
      const wantUp = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const g = gate[i]!;
        const sig = 1 / (1 + fastExp(-g));
        wantGate[i] = dh[i]! * up[i]! * sig * (1 + g * (1 - sig));
        wantUp[i] = dh[i]! * g * sig;
      }
      const gotGate = new Float32Array(n);
      const gotUp = new Float32Array(n);
      kernels.swigluBackward(gate, up, dh, gotGate, gotUp, n);
      expect(bitDifferences(gotGate, wantGate)).toEqual([]);
      expect(bitDifferences(gotUp, wantUp)).toEqual([]);
      // In place, as the block's backward calls it.
      const g2 = gate.slice();
      const u2 = up.slice();
      kernels.swigluBackward(g2, u2, dh, g2, u2, n);
      expect(bitDifferences(g2, wantGate)).toEqual([]);
      expect(bitDifferences(u2, wantUp)).toEqual([]);
    }
    expect(() => kernels.swigluBackward(new Float32Array(4), new Float32Array(3), new Float32Array(4), new Float32Array(4), new Float32Array(4), 4)).toThrow(/up.*at least/s);
  });

  it('siluGateKeep and swigluBackwardKept: the bits of siluGate and swigluBackward, with fastExp(-gate) kept between them', async () => {
    const kernels = await createReferenceKernels();
    const random = mulberry32(17);
    for (const [n, scale] of [[1, 1], [3, 2], [16385, 1], [40001, 6], [999, 150]] as const) {
      const gate = gaussian(random, n, scale);
      const up = gaussian(random, n, 1);
      const dh = gaussian(random, n, 0.01);
      if (n > 20) gate.set([0, -0, Infinity, -Infinity, NaN, 800, -800, 88.7, -103.9, 1e-40, 709.5, -745.5]);
      const wantOut = new Float32Array(n);
      kernels.siluGate(gate, up, wantOut, n);
      const out = new Float32Array(n).fill(NaN);
      const exps = new Float64Array(n).fill(NaN);
      kernels.siluGateKeep(gate, up, out, exps, n);
      expect(bitDifferences(out, wantOut)).toEqual([]);
      // The kept values are fastExp's (an independent check of what the backward will read).
      expect(bitDifferences(exps, Float64Array.from(gate, (g) => fastExp(-g)))).toEqual([]);
      const wantGate = new Float32Array(n);
      const wantUp = new Float32Array(n);
      kernels.swigluBackward(gate, up, dh, wantGate, wantUp, n);
      // In place, as the block's backward calls it.
      const g2 = gate.slice();
      const u2 = up.slice();
      kernels.swigluBackwardKept(g2, u2, dh, exps, g2, u2, n);
      expect(bitDifferences(g2, wantGate)).toEqual([]);
      expect(bitDifferences(u2, wantUp)).toEqual([]);
      // In place over up too (the forward's SiLU output may replace its gate).
      const g3 = gate.slice();
      kernels.siluGateKeep(g3, up, g3, exps, n);
      expect(bitDifferences(g3, wantOut)).toEqual([]);
    }
    expect(() => kernels.swigluBackwardKept(new Float32Array(4), new Float32Array(4), new Float32Array(4), new Float64Array(3), new Float32Array(4), new Float32Array(4), 4)).toThrow(/exps.*at least/s);
  });

  it('attentionWithSgemm gives the same bits with the kernels as with the JavaScript softmax (groups, chunks, windows, lengths, NaN)', async () => {
    const backend = createJsBackend();
    const kernels = await createReferenceKernels();
    const random = mulberry32(3);
    const cases = [
      { numHeads: 4, numKvHeads: 2, headDim: 16, lengths: [1, 7, 130], chunk: 64, slidingWindow: undefined, scale: undefined, spread: 1 },
      { numHeads: 4, numKvHeads: 4, headDim: 8, lengths: [33, 200], chunk: 128, slidingWindow: 16, scale: undefined, spread: 3 },
      { numHeads: 8, numKvHeads: 2, headDim: 32, lengths: [257], chunk: 100, slidingWindow: undefined, scale: 0.3, spread: 40 },
      { numHeads: 2, numKvHeads: 1, headDim: 4, lengths: [5, 5, 9], chunk: 3, slidingWindow: 2, scale: undefined, spread: 1 },
    ];
    for (const c of cases) {
      const tokens = c.lengths.reduce((s, n) => s + n, 0);
      const q = gaussian(random, tokens * c.numHeads * c.headDim, c.spread);
      const k = gaussian(random, tokens * c.numKvHeads * c.headDim, c.spread);
      const v = gaussian(random, tokens * c.numKvHeads * c.headDim, 1);
      const args = { q, k, v, lengths: c.lengths, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, slidingWindow: c.slidingWindow, scale: c.scale };
      const want = new Float32Array(q.length);
      await attentionWithSgemm((g) => backend.sgemm(g), { ...args, out: want }, c.chunk, null);
      const got = new Float32Array(q.length);
      await attentionWithSgemm((g) => backend.sgemm(g), { ...args, out: got }, c.chunk, kernels);
      expect(bitDifferences(got, want)).toEqual([]);
    }
    // A NaN query poisons its rows the same way in both.
    const q = gaussian(random, 20 * 2 * 4, 1);
    q[45] = NaN;
    const k = gaussian(random, 20 * 4, 1);
    const args = { q, k, v: k.slice(), lengths: [20], numHeads: 2, numKvHeads: 1, headDim: 4 };
    const want = new Float32Array(q.length);
    const got = new Float32Array(q.length);
    await attentionWithSgemm((g) => backend.sgemm(g), { ...args, out: want }, 8, null);
    await attentionWithSgemm((g) => backend.sgemm(g), { ...args, out: got }, 8, kernels);
    expect(bitDifferences(got, want)).toEqual([]);
    expect(want.some((x) => Number.isNaN(x))).toBe(true);
    await backend.dispose();
  });

  it('softmaxRowsBackward equals the softmax rows and their backward written from their definitions (groups, windows, offsets, odd widths, specials)', async () => {
    const kernels = await createReferenceKernels();
    const random = mulberry32(23);
    for (const { group, rows, width, r0, k0, window, scale } of [
      { group: 3, rows: 5, width: 9, r0: 4, k0: 0, window: Infinity, scale: 0.125 },
      { group: 2, rows: 8, width: 16, r0: 8, k0: 0, window: Infinity, scale: 1 / Math.sqrt(3) },
      { group: 4, rows: 7, width: 10, r0: 13, k0: 10, window: Infinity, scale: 0.3 },
      { group: 2, rows: 6, width: 11, r0: 5, k0: 0, window: 3, scale: 0.25 },
    ]) {
      const n = group * rows * width;
      const { scores, sums, gradients } = kernels.reserveWithGradients(n, group * rows);
      const s0 = gaussian(random, n, 4);
      const g0 = gaussian(random, n, 1);
      s0[3] = 90; // one row dominated by a large score
      s0[width + 1] = -Infinity;
      s0[2 * width + 2] = NaN; // the max ignores NaN; its exponential is NaN
      scores.set(s0);
      gradients.set(g0);
      kernels.softmaxRowsBackward({ group, rows, width, r0, k0, window, scale });
      const wantP = new Float32Array(n);
      const wantDP = new Float32Array(n);
      const wantSums = new Float64Array(group * rows);
      for (let a = 0; a < group; a++) {
        for (let i = 0; i < rows; i++) {
          const row = a * rows + i;
          const o = row * width;
          const position = r0 + i;
          const first = Math.max(k0, position - window + 1) - k0;
          const last = position - k0;
          let max = -Infinity;
          for (let j = first; j <= last; j++) if (s0[o + j]! > max) max = s0[o + j]!;
          let sum = 0;
          const e = new Float64Array(width);
          for (let j = first; j <= last; j++) {
            e[j] = fastExp(s0[o + j]! - max);
            sum += e[j]!;
          }
          wantSums[row] = sum;
          let dot = 0;
          const p = new Float64Array(width);
          for (let j = first; j <= last; j++) {
            p[j] = Math.fround(e[j]!) / sum;
            wantP[o + j] = p[j]!;
            dot += p[j]! * g0[o + j]!;
          }
          for (let j = first; j <= last; j++) wantDP[o + j] = wantP[o + j]! * (g0[o + j]! - dot) * scale;
        }
      }
      expect(bitDifferences(scores, wantP)).toEqual([]);
      expect(bitDifferences(gradients, wantDP)).toEqual([]);
      expect(bitDifferences(sums, wantSums)).toEqual([]);
      expect(wantDP.some((v) => v !== 0 && Number.isFinite(v))).toBe(true);
    }
    // The backward needs the gradients block.
    kernels.reserve(8, 2);
    expect(() => kernels.softmaxRowsBackward({ group: 1, rows: 2, width: 4, r0: 2, k0: 0, window: Infinity, scale: 1 })).toThrow(/reserveWithGradients/);
  });

  it('squaredError: 2 (y - t) / n and the running float64 sum of squares, as a loop written here computes them', async () => {
    const kernels = await createReferenceKernels();
    const random = mulberry32(21);
    for (const [length, n] of [[1, 1], [7, 8], [40000, 65536], [40000, 40000], [1000, 3]] as const) {
      const y = gaussian(random, length, 2);
      const t = gaussian(random, length, 2);
      const start = length === 1 ? 0 : 0.25;
      const want = new Float32Array(length);
      let sum = start;
      for (let i = 0; i < length; i++) {
        const d = y[i]! - t[i]!;
        sum += d * d;
        want[i] = (2 * d) / n;
      }
      const got = new Float32Array(length).fill(NaN);
      const s = kernels.squaredError(y, t, got, n, start);
      expect(s).toBe(sum);
      // The product by 2 / n for powers of two is exact: the same bits as the division.
      expect(bitDifferences(got, want)).toEqual([]);
    }
  });

  it('arena: the row methods on arrays in the kernel memory give the bits of the same calls on ordinary arrays', async () => {
    const kernels = await createReferenceKernels();
    const reference = await createReferenceKernels();
    const random = mulberry32(31);
    const rows = 37;
    const columns = 72;
    const n = rows * columns;
    const { buffer, start } = kernels.arena(4 * (8 * n) + 8 * n + 64 * 10);
    let at = start;
    const take32 = (length: number): Float32Array => {
      const view = new Float32Array(buffer, at, length);
      at += Math.ceil((4 * length) / 64) * 64;
      return view;
    };
    const take64 = (length: number): Float64Array => {
      const view = new Float64Array(buffer, at, length);
      at += Math.ceil((8 * length) / 64) * 64;
      return view;
    };
    const [a, b, c, d, e] = [take32(n), take32(n), take32(n), take32(n), take32(n)];
    const exps = take64(n);
    const weight = gaussian(random, columns, 1);
    const fill = (): void => {
      for (const v of [a, b, c, d, e]) v.set(gaussian(random, n, 3));
    };
    const copies = (): Float32Array[] => [a, b, c, d, e].map((v) => v.slice());
    const same = (got: Float32Array | Float64Array, want: Float32Array | Float64Array): void => expect(bitDifferences(got, want)).toEqual([]);

    fill();
    let [ja, jb, jc, jd, je] = copies();
    kernels.rmsNorm(a, rows, columns, weight, 1e-5, b);
    reference.rmsNorm(ja!, rows, columns, weight, 1e-5, jb!);
    same(b, jb!);
    kernels.addRmsNorm(a, c, rows, columns, weight, 1e-5, d);
    reference.addRmsNorm(ja!, jc!, rows, columns, weight, 1e-5, jd!);
    same(a, ja!);
    same(d, jd!);
    for (const accumulate of [false, true]) {
      kernels.rmsNormBackward(a, rows, columns, weight, 1e-5, b, e, accumulate);
      reference.rmsNormBackward(ja!, rows, columns, weight, 1e-5, jb!, je!, accumulate);
      same(e, je!);
    }
    kernels.add(a, b, c, n);
    reference.add(ja!, jb!, jc!, n);
    same(c, jc!);

    fill();
    [ja, jb, jc, jd, je] = copies();
    const heads = 3;
    const headDim = 8;
    const ropeRows = n / (heads * headDim);
    const cos = gaussian(random, 512 * 4, 1);
    const sin = gaussian(random, 512 * 4, 1);
    const positions = Int32Array.from({ length: ropeRows }, (_, t) => (t < 40 ? t : 300 + t));
    for (const inverse of [false, true]) {
      kernels.rope(a, ropeRows, heads, headDim, cos, sin, positions, inverse);
      reference.rope(ja!, ropeRows, heads, headDim, cos, sin, positions, inverse);
      same(a, ja!);
    }

    fill();
    [ja, jb, jc, jd, je] = copies();
    const jExps = new Float64Array(n);
    kernels.siluGateKeep(a, b, c, exps, n);
    reference.siluGateKeep(ja!, jb!, jc!, jExps, n);
    same(c, jc!);
    same(exps, jExps);
    kernels.swigluBackwardKept(a, b, d, exps, a, b, n);
    reference.swigluBackwardKept(ja!, jb!, jd!, jExps, ja!, jb!, n);
    same(a, ja!);
    same(b, jb!);

    // In place means no copies through the scratch below the arena: a sentinel there (past the gain slot and the
    // gathered RoPE rows) survives every call above, and the copying path overwrites it.
    const sentinel = new Uint32Array(buffer, start - ARENA_SCRATCH_BYTES + 4096, (ARENA_SCRATCH_BYTES - 4096) / 4);
    sentinel.fill(0xdeadbeef);
    kernels.rmsNorm(a, rows, columns, weight, 1e-5, b);
    kernels.addRmsNorm(a, c, rows, columns, weight, 1e-5, d);
    kernels.rmsNormBackward(a, rows, columns, weight, 1e-5, b, e, true);
    kernels.add(a, b, c, n);
    kernels.rope(a, ropeRows, heads, headDim, cos, sin, positions, false);
    kernels.siluGateKeep(a, b, c, exps, n);
    kernels.swigluBackwardKept(a, b, d, exps, a, b, n);
    expect(sentinel.every((v) => v === 0xdeadbeef)).toBe(true);

    // One array outside the arena: the copying path (through the scratch), the same bits.
    const outside = new Float32Array(n);
    const cCopy = c.slice();
    kernels.rmsNorm(c, rows, columns, weight, 1e-5, outside);
    reference.rmsNorm(cCopy, rows, columns, weight, 1e-5, jb!);
    same(outside, jb!);
    expect(sentinel.every((v) => v === 0xdeadbeef)).toBe(false);
  });

  it('arena: scratch that would run into it is refused, and a bad size named', async () => {
    const kernels = await createReferenceKernels();
    kernels.arena(1024);
    expect(() => kernels.reserve(ARENA_SCRATCH_BYTES, 8)).toThrow(/scratch.*arena/);
    expect(() => kernels.reserve(1024, 8)).not.toThrow();
    expect(() => kernels.arena(-1)).toThrow(/bytes/);
  });
});
