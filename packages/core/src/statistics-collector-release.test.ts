import { describe, expect, it } from 'vitest';
import { givenStatistics, StatisticsCollector, type StatisticsKernels } from './statistics-collector.js';

/** X^T X accumulated in plain float64 (an independent oracle for the shared Hessian). */
const kernels: StatisticsKernels = {
  async gram({ rows, columns, x, h }) {
    for (let r = 0; r < rows; r++) for (let i = 0; i < columns; i++) for (let j = 0; j < columns; j++) h[i * columns + j]! += x[r * columns + i]! * x[r * columns + j]!;
  },
  async sgemm() {
    throw new Error('not used');
  },
};

describe('StatisticsCollector.release', () => {
  it('frees a shared Hessian only once every layer sharing it is released, and refuses released layers', async () => {
    const collector = new StatisticsCollector([{ kind: 'hessian' }], new Set(['q', 'k', 'v', 'o']), kernels, { sharedInputs: [['q', 'k', 'v']] });
    const rows = 5;
    const columns = 3;
    const x = Float32Array.from({ length: rows * columns }, (_, i) => Math.sin(i + 1));
    const y = Float32Array.from({ length: rows * columns }, (_, i) => Math.cos(i * 2));
    for (const name of ['q', 'k', 'v']) await collector.observe(name, { dtype: 'float32', shape: [rows, columns], data: x });
    await collector.observe('o', { dtype: 'float32', shape: [rows, columns], data: y });
    const shared = collector.statistics('q').hessian!;
    for (let i = 0; i < columns; i++) {
      for (let j = 0; j < columns; j++) {
        let sum = 0;
        for (let r = 0; r < rows; r++) sum += x[r * columns + i]! * x[r * columns + j]!;
        expect(shared[i * columns + j]).toBeCloseTo(sum / rows, 12);
      }
    }
    const held = () => (collector as unknown as { accumulators: Map<string, { hessian?: Float64Array }> }).accumulators;
    const owner = collector.hessianOwner('v');
    collector.release('q');
    collector.release('k');
    expect(() => collector.statistics('q')).toThrow(/released/);
    // v still reads the shared Hessian, unchanged.
    expect(collector.statistics('v').hessian).toBe(shared);
    expect(held().get(owner)!.hessian).toBe(shared);
    collector.release('v');
    expect(held().get(owner)!.hessian).toBeUndefined();
    expect(() => collector.statistics('v')).toThrow(/released/);
    expect(held().get('o')!.hessian).toBeDefined();
    collector.release('o');
    expect(held().get('o')!.hessian).toBeUndefined();
    collector.release('nowhere');
    expect(() => collector.statistics('nowhere')).toThrow(/no calibration inputs/);
  });

  it('given Hessians (a model that computes them) are released per layer as well', () => {
    const h = Float64Array.of(1, 0, 0, 1);
    const given = givenStatistics({ tokens: 4, hessians: new Map([['a', h], ['b', h]]) });
    given.release('a');
    expect(() => given.statistics('a')).toThrow(/released/);
    expect(given.statistics('b').hessian).toBe(h);
  });

  it('given resident Hessians are handed over as residentHessian (no host copy) and released per layer', () => {
    const resident = { columns: 2, handle: {}, scale: 0.25, read: async () => Float64Array.of(1, 0, 0, 1) };
    const given = givenStatistics({ tokens: 4, hessians: new Map(), resident: new Map([['a', resident], ['b', resident]]) });
    const a = given.statistics('a');
    expect(a.residentHessian).toBe(resident);
    expect(a.hessian).toBeUndefined();
    expect(a.tokens).toBe(4);
    given.release('a');
    expect(() => given.statistics('a')).toThrow(/released/);
    expect(given.statistics('b').residentHessian).toBe(resident);
    expect(() => given.statistics('c')).toThrow(/no calibration inputs/);
  });
});
