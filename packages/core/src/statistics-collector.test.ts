import { describe, expect, it } from 'vitest';
import { calibrationBlocks, collectBlockStatistics } from './calibration-driver.js';
import type { BlockView, HiddenStatesHandle, LinearInputCallback, LinearView, QuantizableModel } from './model-view.js';
import { sharedInputGroups, StatisticsCollector, type StatisticsKernels } from './statistics-collector.js';
import type { Matrix } from './tensor.js';

/** Kernels in plain float64 arithmetic, summing each chunk's rows in order into `h` (an independent oracle). */
const kernels: StatisticsKernels = {
  async gram({ rows, columns, x, h }) {
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < columns; i++) {
        const xi = x[r * columns + i]!;
        for (let j = 0; j < columns; j++) h[i * columns + j]! += xi * x[r * columns + j]!;
      }
    }
  },
  async sgemm({ m, n, k, a, b, c }) {
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[p * m + i]! * b[p * n + j]!;
      c[i * n + j] = s;
    }
  },
};

/** Seeded values in [-2, 2) (mulberry32). */
function seeded(n: number, seed: number): Float32Array {
  let t = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    t = (t + 0x6d2b79f5) >>> 0;
    let z = Math.imul(t ^ (t >>> 15), 1 | t);
    z ^= z + Math.imul(z ^ (z >>> 7), 61 | z);
    out[i] = (((z ^ (z >>> 14)) >>> 0) / 4294967296) * 4 - 2;
  }
  return out;
}

const matrix = (rows: number, columns: number, data: Float32Array): Matrix => ({ dtype: 'float32', shape: [rows, columns], data });

/** Brute-force mean X^T X over all rows, each entry summed over rows in row order. */
function bruteHessian(x: Float32Array, rows: number, columns: number): Float64Array {
  const h = new Float64Array(columns * columns);
  for (let i = 0; i < columns; i++) for (let j = 0; j < columns; j++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += x[r * columns + i]! * x[r * columns + j]!;
    h[i * columns + j] = s / rows;
  }
  return h;
}

describe('StatisticsCollector', () => {
  const rows = 37;
  const columns = 6;
  const x = seeded(rows * columns, 7);

  it('asks for the lower triangle only and mirrors once when read: a kernel that writes only the lower triangle gives the full brute-force Hessian', async () => {
    const calls: boolean[] = [];
    const lowerOnly: StatisticsKernels = {
      ...kernels,
      async gram({ rows: r, columns: c, x: xs, h, lower }) {
        calls.push(lower === true);
        for (let k = 0; k < r; k++) for (let i = 0; i < c; i++) for (let j = 0; j <= i; j++) h[i * c + j]! += xs[k * c + i]! * xs[k * c + j]!;
      },
    };
    const collector = new StatisticsCollector([{ kind: 'hessian' }], new Set(['a']), lowerOnly);
    await collector.observe('a', matrix(20, columns, x.subarray(0, 20 * columns)));
    await collector.observe('a', matrix(rows - 20, columns, x.subarray(20 * columns)));
    expect(calls).toEqual([true, true]);
    const h = collector.statistics('a').hessian!;
    const brute = bruteHessian(x, rows, columns);
    for (let i = 0; i < h.length; i++) expect(h[i]).toBeCloseTo(brute[i]!, 12);
  });

  it('gives the Hessian as a brute-force mean X^T X over all rows, and the same bits whether fed whole or in batches', async () => {
    const whole = new StatisticsCollector([{ kind: 'hessian' }], new Set(['a']), kernels);
    await whole.observe('a', matrix(rows, columns, x));
    const batched = new StatisticsCollector([{ kind: 'hessian' }], new Set(['a']), kernels);
    for (const [start, end] of [[0, 5], [5, 16], [16, 17], [17, 37]] as const) {
      await batched.observe('a', matrix(end - start, columns, x.slice(start * columns, end * columns)));
    }
    const oracle = bruteHessian(x, rows, columns);
    const a = whole.statistics('a');
    const b = batched.statistics('a');
    expect(a.tokens).toBe(rows);
    expect(b.tokens).toBe(rows);
    for (let i = 0; i < oracle.length; i++) expect(a.hessian![i]).toBeCloseTo(oracle[i]!, 12);
    // Same accumulation order (row by row into one float64 sum, divided once at the end): identical bits.
    expect(Array.from(b.hessian!)).toEqual(Array.from(a.hessian!));
  });

  it('collects absmax, absmean and the first maxTokens input rows across batches', async () => {
    const c = new StatisticsCollector([{ kind: 'input-absmax' }, { kind: 'input-absmean' }, { kind: 'inputs', maxTokens: 20 }], new Set(['a']), kernels);
    await c.observe('a', matrix(16, columns, x.slice(0, 16 * columns)));
    await c.observe('a', matrix(rows - 16, columns, x.slice(16 * columns)));
    const s = c.statistics('a');
    for (let col = 0; col < columns; col++) {
      let max = 0;
      let sum = 0;
      for (let r = 0; r < rows; r++) {
        max = Math.max(max, Math.abs(x[r * columns + col]!));
        sum += Math.abs(x[r * columns + col]!);
      }
      expect(s.inputAbsMax![col]).toBe(max);
      expect(s.inputAbsMean![col]).toBeCloseTo(sum / rows, 6);
    }
    expect(s.inputs!.shape).toEqual([20, columns]);
    expect(Array.from(s.inputs!.data)).toEqual(Array.from(x.slice(0, 20 * columns)));
  });

  it('shares one Hessian among the layers declared to read one input, and only among them', async () => {
    const names = new Set(['q', 'k', 'v', 'o']);
    const c = new StatisticsCollector([{ kind: 'hessian' }], names, kernels, { sharedInputs: [['q', 'k', 'v']] });
    for (const [start, end] of [[0, 20], [20, 37]] as const) {
      // A fresh copy per layer: sharing follows the declaration, not buffer identity.
      for (const name of ['q', 'k', 'v', 'o']) await c.observe(name, matrix(end - start, columns, x.slice(start * columns, end * columns)));
    }
    const q = c.statistics('q').hessian!;
    expect(c.statistics('k').hessian).toBe(q);
    expect(c.statistics('v').hessian).toBe(q);
    expect(c.hessianOwner('v')).toBe('q');
    const o = c.statistics('o').hessian!;
    expect(o).not.toBe(q);
    expect(Array.from(o)).toEqual(Array.from(q));
  });

  it('refuses a declared sharer whose input differs from the group’s, naming both layers', async () => {
    const c = new StatisticsCollector([{ kind: 'hessian' }], new Set(['gate', 'up']), kernels, { sharedInputs: [['gate', 'up']] });
    await c.observe('gate', matrix(rows, columns, x));
    const other = x.slice();
    other[3] = other[3]! + 1;
    await expect(c.observe('up', matrix(rows, columns, other))).rejects.toThrow(/'up' is declared to read the same input as 'gate'/);
  });

  it('refuses a sharer whose input differs in any one word, or by two words swapped, wherever they are', async () => {
    // 4 x 9 = 36 words: 9 blocks of the hash's four chains, none left over; and 37 (one in the tail).
    for (const length of [36, 37]) {
      const base = Float32Array.from({ length }, (_, i) => i * 0.25 - 3);
      const variants: Float32Array[] = [];
      for (let i = 0; i < length; i++) {
        const changed = base.slice();
        changed[i] = changed[i]! + 1;
        variants.push(changed);
      }
      for (const [i, j] of [[0, 1], [0, 4], [1, 2], [3, 7], [5, 6], [length - 2, length - 1]]) {
        const swapped = base.slice();
        [swapped[i], swapped[j]] = [swapped[j]!, swapped[i]!];
        variants.push(swapped);
      }
      for (const variant of variants) {
        const c = new StatisticsCollector([{ kind: 'hessian' }], new Set(['gate', 'up']), kernels, { sharedInputs: [['gate', 'up']] });
        await c.observe('gate', matrix(1, length, base));
        await expect(c.observe('up', matrix(1, length, variant))).rejects.toThrow(/'up' is declared to read the same input as 'gate'/);
      }
      const same = new StatisticsCollector([{ kind: 'hessian' }], new Set(['gate', 'up']), kernels, { sharedInputs: [['gate', 'up']] });
      await same.observe('gate', matrix(1, length, base));
      await same.observe('up', matrix(1, length, base.slice()));
      expect(same.hessianOwner('up')).toBe('gate');
    }
  });

  it('needs kernels only for the Hessian and the cross term', async () => {
    const c = new StatisticsCollector([{ kind: 'input-absmax' }], new Set(['a']), undefined);
    await c.observe('a', matrix(rows, columns, x));
    expect(c.statistics('a').inputAbsMax!.length).toBe(columns);
    expect(() => new StatisticsCollector([{ kind: 'hessian' }], new Set(['a']), undefined)).toThrow(/kernels/);
  });

  it('refuses a layer declared in two groups', () => {
    expect(() => new StatisticsCollector([{ kind: 'hessian' }], new Set(['a']), kernels, { sharedInputs: [['a', 'b'], ['a', 'c']] })).toThrow(/two shared-input groups/);
  });
});

/** A fake two-block model without a language-model head (calibration needs blocks only): block b multiplies its input by (b + 2); q/k/v and gate/up read one input each. */
function fakeModel(batchRows: number): QuantizableModel & { runs: number } {
  const linear = (name: string): LinearView => ({ name, kind: name, weight: matrix(1, 4, new Float32Array(4)), bias: undefined, inputTransform: undefined });
  const blocks: BlockView[] = [0, 1].map((index) => {
    const [q, k, v, o, gate, up, down] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'].map((n) => linear(`b${index}.${n}`)) as LinearView[];
    return {
      index,
      name: `b${index}`,
      linears: [q!, k!, v!, o!, gate!, up!, down!],
      norms: [],
      inputGroups: [
        { linears: [q!, k!, v!], producer: { kind: 'none' } },
        { linears: [o!], producer: { kind: 'none' } },
        { linears: [gate!, up!], producer: { kind: 'none' } },
        { linears: [down!], producer: { kind: 'none' } },
      ],
    };
  });
  const model = {
    runs: 0,
    architecture: 'fake',
    hiddenSize: 4,
    blocks,
    async embed(sequences: readonly ArrayLike<number>[]): Promise<HiddenStatesHandle> {
      const rows = sequences.reduce((a, s) => a + s.length, 0);
      return seeded(rows * 4, 3);
    },
    async runBlock(index: number, hidden: HiddenStatesHandle, observe?: LinearInputCallback): Promise<HiddenStatesHandle> {
      model.runs++;
      const h = hidden as Float32Array;
      const rows = h.length / 4;
      for (let start = 0; start < rows; start += batchRows) {
        const end = Math.min(rows, start + batchRows);
        // One buffer per batch for q/k/v, another for gate/up (as a Llama block hands them out).
        const attention = h.slice(start * 4, end * 4);
        const mlp = attention.map((t) => t * 0.5);
        for (const n of ['q', 'k', 'v']) await observe?.(`b${index}.${n}`, matrix(end - start, 4, attention));
        await observe?.(`b${index}.o`, matrix(end - start, 4, attention.map((t) => -t)));
        for (const n of ['gate', 'up']) await observe?.(`b${index}.${n}`, matrix(end - start, 4, mlp));
        await observe?.(`b${index}.down`, matrix(end - start, 4, mlp.map((t) => t * t)));
      }
      return h.map((t) => t * (index + 2));
    },
  };
  return model;
}

describe('calibrationBlocks', () => {
  const sequences = [new Array(9).fill(1), new Array(14).fill(2), new Array(5).fill(3)];

  it('feeds block by block; batches of any size give the same Hessians bit for bit, shared by the model’s input groups', async () => {
    const hessians = async (batchRows: number) => {
      const out = new Map<string, Float64Array>();
      const model = fakeModel(batchRows);
      for await (const step of calibrationBlocks(model, sequences, { kernels, propagate: 'captured' })) {
        const names = new Set(step.block.linears.map((l) => l.name));
        const stats = await step.collect([{ kind: 'hessian' }], names);
        for (const name of names) out.set(name, stats.statistics(name).hessian!);
        // The declaration comes from the model, not from buffer identity.
        expect(stats.statistics(`b${step.block.index}.k`).hessian).toBe(stats.statistics(`b${step.block.index}.q`).hessian);
        expect(stats.statistics(`b${step.block.index}.up`).hessian).toBe(stats.statistics(`b${step.block.index}.gate`).hessian);
        expect(stats.statistics(`b${step.block.index}.o`).hessian).not.toBe(stats.statistics(`b${step.block.index}.q`).hessian);
      }
      // 'captured': each block ran once (its collect pass); no extra propagation pass.
      expect(model.runs).toBe(2);
      return out;
    };
    const whole = await hessians(1000);
    const batched = await hessians(4);
    expect([...batched.keys()]).toEqual([...whole.keys()]);
    for (const [name, h] of whole) expect(Array.from(batched.get(name)!)).toEqual(Array.from(h));
    // Block 1 sees block 0's output (x 2): its q Hessian is 4 x block 0's, exactly (powers of two).
    const h0 = whole.get('b0.q')!;
    const h1 = whole.get('b1.q')!;
    for (let i = 0; i < h0.length; i++) expect(h1[i]).toBe(4 * h0[i]!);
  });

  it('with propagate "updated" runs each block again after the consumer, and honours the abort signal', async () => {
    const model = fakeModel(8);
    const controller = new AbortController();
    const seen: number[] = [];
    const error = await (async () => {
      for await (const step of calibrationBlocks(model, sequences, { kernels, signal: controller.signal })) {
        seen.push(step.block.index);
        await step.collect([{ kind: 'input-absmax' }], new Set([`b${step.block.index}.q`]));
        controller.abort();
      }
    })().catch((e: unknown) => e);
    expect((error as Error).name).toBe('AbortError');
    expect(seen).toEqual([0]);
    expect(model.runs).toBe(2);
  });

  it('observe() runs a raw observer, and with "captured" its output feeds the next block', async () => {
    const model = fakeModel(8);
    const rows: number[] = [];
    const generator = calibrationBlocks(model, sequences, { propagate: 'captured' });
    for (;;) {
      const next = await generator.next();
      if (next.done) {
        // Two blocks, x2 then x3, each run once (its observe pass).
        const embedded = (await model.embed(sequences)) as Float32Array;
        expect(Array.from(next.value as Float32Array)).toEqual(Array.from(embedded, (t) => Math.fround(Math.fround(t * 2) * 3)));
        break;
      }
      await next.value.observe((name, input) => void (name.endsWith('.q') && rows.push(input.shape[0])));
    }
    expect(model.runs).toBe(2);
    expect(rows).toEqual([8, 8, 8, 4, 8, 8, 8, 4]);
    // collect() without kernels is refused with a named error.
    const again = calibrationBlocks(fakeModel(8), sequences, {});
    const first = await again.next();
    await expect((first.value as { collect: (r: unknown[], l: Set<string>) => Promise<unknown> }).collect([{ kind: 'hessian' }], new Set(['b0.q']))).rejects.toThrow(/kernels/);
  });

  it('collectBlockStatistics declares the block’s input groups by default', async () => {
    const model = fakeModel(8);
    const hidden = await model.embed(sequences);
    expect(sharedInputGroups(model.blocks[0]!)).toEqual([['b0.q', 'b0.k', 'b0.v'], ['b0.gate', 'b0.up']]);
    // Experts of a mixture read one norm's output but their own tokens: split by module, each expert's gate/up share.
    const names = ['l.mlp.gate', 'l.mlp.experts.0.gate_proj', 'l.mlp.experts.0.up_proj', 'l.mlp.experts.1.gate_proj', 'l.mlp.experts.1.up_proj'];
    const linears = names.map((name) => ({ name }) as LinearView);
    expect(sharedInputGroups({ inputGroups: [{ linears, producer: { kind: 'none' } }] })).toEqual([
      ['l.mlp.experts.0.gate_proj', 'l.mlp.experts.0.up_proj'],
      ['l.mlp.experts.1.gate_proj', 'l.mlp.experts.1.up_proj'],
    ]);
    const { collector } = await collectBlockStatistics(model, model.blocks[0]!, hidden, [{ kind: 'hessian' }], new Set(['b0.q', 'b0.v']), kernels);
    expect(collector.hessianOwner('b0.v')).toBe('b0.q');
  });
});
