import { describe, expect, it } from 'vitest';
import { createRandom, createReferenceKernels } from '@bitsmith/linalg';
import { rmsNormBackward, ropeBackward } from './block-backward-ops.js';
import { addRmsNorm, rmsNorm } from './rms-norm.js';
import { applyRope, ropeTables } from './rope.js';
import { parseLlamaConfig } from './llama-config.js';

// The reference kernels' row operations (WebAssembly SIMD, two rows per float64 vector) against the JavaScript loops
// they replace in the training passes: the same bits on every element, for row counts and widths that exercise the
// paired rows, the odd last row, the four-wide column loops and their scalar tails.

function gaussian(seed: number, n: number, scale = 1): Float32Array {
  const r = createRandom(seed);
  return Float32Array.from({ length: n }, () => scale * r.normal());
}

/** Indices where two arrays differ bit for bit. */
function differences(a: Float32Array, b: Float32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) out.push(i);
  return out;
}

const shapes: Array<[rows: number, columns: number]> = [
  [1, 1],
  [1, 7],
  [2, 4],
  [3, 37],
  [5, 512],
  [9, 130],
  [40, 512], // more than one chunk of rows
  [600, 64],
];

describe('reference kernels, block row operations (bit for bit the JavaScript loops)', () => {
  it('rmsNorm and addRmsNorm, out of place and in place', async () => {
    const k = await createReferenceKernels();
    let seed = 1;
    for (const [rows, columns] of shapes) {
      // Rows of very different magnitudes, as real activations with outlier channels have.
      const x = gaussian(seed++, rows * columns, 3);
      for (let r = 0; r < rows; r += 3) for (let j = 0; j < columns; j++) x[r * columns + j]! *= 200;
      const w = gaussian(seed++, columns, 0.7);
      const eps = 1e-5;
      const want = rmsNorm(x, rows, columns, w, eps);
      const got = new Float32Array(rows * columns).fill(NaN);
      k.rmsNorm(x, rows, columns, w, eps, got);
      expect(differences(got, want), `rmsNorm ${rows}x${columns}`).toEqual([]);
      const inPlace = x.slice();
      k.rmsNorm(inPlace, rows, columns, w, eps, inPlace);
      expect(differences(inPlace, want)).toEqual([]);

      const h = gaussian(seed++, rows * columns, 2);
      const hJs = h.slice();
      const outJs = addRmsNorm(hJs, x, rows, columns, w, eps, new Float32Array(rows * columns));
      const outWasm = new Float32Array(rows * columns).fill(NaN);
      k.addRmsNorm(h, x, rows, columns, w, eps, outWasm);
      expect(differences(h, hJs), `addRmsNorm sum ${rows}x${columns}`).toEqual([]);
      expect(differences(outWasm, outJs), `addRmsNorm norm ${rows}x${columns}`).toEqual([]);
    }
  });

  it('rmsNorm matches the closed form (an independent check of both)', async () => {
    const k = await createReferenceKernels();
    const x = Float32Array.from([3, 4, 0, -12, 1, 2, 2, 1]);
    const w = Float32Array.from([1, 0.5, 2, -1]);
    const y = new Float32Array(8);
    k.rmsNorm(x, 2, 4, w, 0, y);
    // Row 0: mean of squares 42.25, rms 6.5; row 1: 2.5.
    const r1 = Math.sqrt(2.5);
    [3 / 6.5, (4 / 6.5) * 0.5, 0, 12 / 6.5, 1 / r1, (2 / r1) * 0.5, (2 / r1) * 2, -1 / r1].forEach((e, i) => expect(y[i]).toBeCloseTo(e, 6));
  });

  it('rmsNormBackward without the gain gradient, written and accumulated', async () => {
    const k = await createReferenceKernels();
    let seed = 100;
    for (const [rows, columns] of shapes) {
      const x = gaussian(seed++, rows * columns, 4);
      const w = gaussian(seed++, columns, 0.5);
      const dy = gaussian(seed++, rows * columns, 0.01);
      for (const accumulate of [false, true]) {
        const start = gaussian(seed++, rows * columns, 0.02);
        const want = start.slice();
        rmsNormBackward(x, rows, columns, w, 1e-6, dy, want, undefined, accumulate);
        const got = start.slice();
        k.rmsNormBackward(x, rows, columns, w, 1e-6, dy, got, accumulate);
        expect(differences(got, want), `${rows}x${columns} accumulate ${accumulate}`).toEqual([]);
      }
    }
  });

  it('rope and its inverse on packed sequences, any head size with an even dimension', async () => {
    const k = await createReferenceKernels();
    const config = parseLlamaConfig({ model_type: 'llama', hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 8, num_hidden_layers: 1, vocab_size: 8, rope_theta: 10000 });
    let seed = 300;
    for (const headDim of [2, 6, 16, 64]) {
      const tables = ropeTables({ ...config, headDim }, 300);
      for (const heads of [1, 3]) {
        // Three packed sequences (positions restart) and one long one crossing chunk boundaries.
        const lengths = [5, 1, 280];
        const positions = Int32Array.from(lengths.flatMap((n) => Array.from({ length: n }, (_, p) => p)));
        const rows = positions.length;
        const data = gaussian(seed++, rows * heads * headDim, 5);
        for (const inverse of [false, true]) {
          const want = data.slice();
          if (inverse) ropeBackward(want, tables, rows, heads, positions);
          else applyRope(want, tables, rows, heads, positions);
          const got = data.slice();
          k.rope(got, rows, heads, headDim, tables.cos, tables.sin, positions, inverse);
          expect(differences(got, want), `headDim ${headDim} heads ${heads} inverse ${inverse}`).toEqual([]);
        }
      }
    }
    // Positions in any order (no runs to copy at once), as a cache or a shuffled batch might give them.
    const tables = ropeTables({ ...config, headDim: 8 }, 64);
    const r = createRandom(5);
    const shuffled = Int32Array.from({ length: 90 }, () => Math.floor(r.uniform() * 64));
    const data = gaussian(77, 90 * 2 * 8, 3);
    const want = data.slice();
    applyRope(want, tables, 90, 2, shuffled);
    const got = data.slice();
    k.rope(got, 90, 2, 8, tables.cos, tables.sin, shuffled, false);
    expect(differences(got, want)).toEqual([]);
    // A position the table does not hold is refused, as applyRope refuses it: alone, or inside a run of positions.
    const small = ropeTables({ ...config, headDim: 4 }, 8);
    expect(() => k.rope(new Float32Array(4), 1, 1, 4, small.cos, small.sin, [8], false)).toThrow(/position 8 is beyond the RoPE table/);
    expect(() => k.rope(new Float32Array(16), 4, 1, 4, small.cos, small.sin, [6, 7, 8, 9], false)).toThrow(/position 8 is beyond the RoPE table/);
    expect(() => k.rope(new Float32Array(4), 1, 1, 4, small.cos, small.sin, [-1], true)).toThrow(/position -1 is beyond the RoPE table/);
  });

  it('rope is a rotation: the inverse undoes it to float32 rounding, norms per pair kept', async () => {
    const k = await createReferenceKernels();
    const config = parseLlamaConfig({ model_type: 'llama', hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 8, num_hidden_layers: 1, vocab_size: 8, rope_theta: 10000 });
    const tables = ropeTables(config, 64);
    const positions = Int32Array.from({ length: 64 }, (_, p) => p);
    const data = gaussian(9, 64 * 64, 1);
    const rotated = data.slice();
    k.rope(rotated, 64, 4, 16, tables.cos, tables.sin, positions, false);
    expect(differences(rotated, data).length).toBeGreaterThan(64 * 64 * 0.9);
    for (let t = 0; t < 64; t++) {
      for (let h = 0; h < 4; h++) {
        for (let i = 0; i < 8; i++) {
          const o = t * 64 + h * 16;
          const before = Math.hypot(data[o + i]!, data[o + 8 + i]!);
          expect(Math.abs(Math.hypot(rotated[o + i]!, rotated[o + 8 + i]!) - before)).toBeLessThan(1e-6 * Math.max(1, before));
        }
      }
    }
    k.rope(rotated, 64, 4, 16, tables.cos, tables.sin, positions, true);
    for (let i = 0; i < data.length; i++) expect(Math.abs(rotated[i]! - data[i]!)).toBeLessThan(1e-6 * Math.max(1, Math.abs(data[i]!)));
  });

  it('add: the float32 sum of two arrays, in place too', async () => {
    const k = await createReferenceKernels();
    for (const n of [1, 3, 4, 17, 40000]) {
      const a = gaussian(n, n, 100);
      const b = gaussian(n + 1, n, 1e-3);
      const want = Float32Array.from(a, (x, i) => x + b[i]!);
      const got = new Float32Array(n).fill(NaN);
      k.add(a, b, got, n);
      expect(differences(got, want), `n ${n}`).toEqual([]);
      k.add(a, b, a, n);
      expect(differences(a, want)).toEqual([]);
    }
  });

  it('refuses arrays shorter than rows x columns with what was expected', async () => {
    const k = await createReferenceKernels();
    expect(() => k.rmsNorm(new Float32Array(7), 2, 4, new Float32Array(4), 1e-5, new Float32Array(8))).toThrow(/x.*\[2, 4\]|\[2,4\]/);
    expect(() => k.rmsNormBackward(new Float32Array(8), 2, 4, new Float32Array(3), 1e-5, new Float32Array(8), new Float32Array(8), false)).toThrow(/weight/);
  });
});
