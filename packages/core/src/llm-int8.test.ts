import { describe, expect, it } from 'vitest';
import { fakeQuantizeActivations } from './activation-quantization.js';
import { llmInt8, outlierColumns, outlierPassthroughQuantizer, outlierPassthroughQuantizerFromDescription } from './llm-int8.js';
import { FLOAT16, minifloat } from './minifloat.js';
import { parseFormat } from './number-format.js';
import type { LinearView } from './model-view.js';
import { decodeStored } from './stored-form.js';
import type { Matrix } from './tensor.js';
import { applyingResults } from './index.js';

/** Runs a step and applies its result to the block or model it ran on, as the runner does (step contract v2). */
const applying = applyingResults;

function random(rows: number, columns: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: rows * columns }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 4;
  });
}

const int8Token = { format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true } as const;
const half = minifloat(FLOAT16);

describe('LLM.int8() decomposition (arXiv:2208.07339)', () => {
  it('outlier columns: max|x| >= 6 (the paper threshold), or the top k', () => {
    const absMax = Float32Array.of(0.5, 7, 6, 2, 9, 5.99);
    expect(Array.from(outlierColumns(absMax))).toEqual([1, 2, 4]);
    expect(Array.from(outlierColumns(absMax, { topK: 2 }))).toEqual([1, 4]);
    expect(() => outlierColumns(absMax, { topK: 7 })).toThrow(/topK/);
  });

  it('activations: outlier columns pass in float16, the others equal a brute-force per-token int8 round trip of the gathered columns', () => {
    const rows = 5;
    const columns = 12;
    const x = random(rows, columns, 3);
    for (let r = 0; r < rows; r++) x[r * columns + 4] = 40 + r; // an outlier channel that would wreck the per-token scale
    const outliers = Int32Array.of(4, 9);
    const got = x.slice();
    outlierPassthroughQuantizer(int8Token, outliers).apply(got, rows, columns);
    for (let r = 0; r < rows; r++) {
      const rest = Array.from({ length: columns }, (_, j) => j).filter((j) => j !== 4 && j !== 9);
      const absmax = Math.max(...rest.map((j) => Math.abs(x[r * columns + j]!)));
      const s = absmax / 127.5;
      for (const j of rest) {
        // Nearest of the 256 levels q * s, q in [-128, 127] (brute force).
        let best = 0;
        for (let q = -128; q <= 127; q++) if (Math.abs(q * s - x[r * columns + j]!) < Math.abs(best * s - x[r * columns + j]!)) best = q;
        expect(got[r * columns + j]! / (best * s || 1)).toBeCloseTo(best === 0 ? 0 : 1, 5);
      }
      for (const j of [4, 9]) expect(got[r * columns + j]).toBe(half.round(x[r * columns + j]!));
    }
    // Without the decomposition the outlier channel sets the scale: the other columns lose far more.
    const plain = x.slice();
    fakeQuantizeActivations(plain, rows, columns, int8Token);
    const err = (a: Float32Array) => a.reduce((e, v, i) => (i % columns === 4 || i % columns === 9 ? e : e + (v - x[i]!) ** 2), 0);
    expect(err(got)).toBeLessThan(err(plain) / 10);
    // describe() rebuilds the same quantizer.
    const again = x.slice();
    outlierPassthroughQuantizerFromDescription(outlierPassthroughQuantizer(int8Token, outliers).describe()).apply(again, rows, columns);
    expect(Array.from(again)).toEqual(Array.from(got));
  });

  it('the step stores an int8 grid with zeroed outlier columns plus the float16 outlier columns, and installs the run-time quantizer', async () => {
    const rows = 6;
    const columns = 16;
    const weight: Matrix = { dtype: 'float32', shape: [rows, columns], data: random(rows, columns, 9) };
    const absMax = Float32Array.from({ length: columns }, (_, j) => (j === 2 || j === 11 ? 30 : 1));
    const view: LinearView = { name: 'l', kind: 'down_proj', weight, bias: undefined, inputTransform: undefined };
    const result = await applying(llmInt8()).run({
      layers: [{ name: 'l', weight }],
      statistics: () => ({ tokens: 10, inputAbsMax: absMax }),
      block: { index: 0, name: 'b', linears: [view], norms: [], inputGroups: [] } as never,
    });
    const state = result.layers[0]!;
    expect(state.stored!.kind).toBe('sparse-outliers');
    const form = state.stored as Extract<typeof state.stored, { kind: 'sparse-outliers' }>;
    expect(Array.from(form.sparse.columnIndices.slice(0, 2))).toEqual([2, 11]);
    const decoded = decodeStored(form).data;
    for (let r = 0; r < rows; r++) {
      const rest = Array.from({ length: columns }, (_, j) => j).filter((j) => j !== 2 && j !== 11);
      const s = Math.max(...rest.map((j) => Math.abs(weight.data[r * columns + j]!))) / 127.5;
      for (const j of rest) expect(Math.abs(decoded[r * columns + j]! - weight.data[r * columns + j]!)).toBeLessThanOrEqual(s / 2 + 1e-3 * s);
      for (const j of [2, 11]) expect(decoded[r * columns + j]).toBe(half.round(weight.data[r * columns + j]!));
    }
    expect(Array.from(state.weight.data)).toEqual(Array.from(decoded));
    expect(view.inputTransform?.describe()).toMatchObject({ kind: 'llm-int8-activations', passthroughColumns: [2, 11] });
  });
});
