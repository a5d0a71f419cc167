import { createJsBackend } from '@bitsmith/linalg';
import { describe, expect, it } from 'vitest';
import { givenStatistics, StatisticsCollector } from './statistics-collector.js';

const backend = createJsBackend();

/** X^T X / tokens in float64, the oracle for the collector's Hessian. */
function meanGram(x: Float32Array, rows: number, columns: number): Float64Array {
  const h = new Float64Array(columns * columns);
  for (let r = 0; r < rows; r++) for (let i = 0; i < columns; i++) for (let j = 0; j < columns; j++) h[i * columns + j]! += x[r * columns + i]! * x[r * columns + j]!;
  return h.map((v) => v / rows);
}

describe('StatisticsCollector.release', () => {
  it('frees a shared Hessian only once every layer sharing it is released, and refuses released layers', async () => {
    const names = ['q', 'k', 'v', 'o'];
    const collector = new StatisticsCollector([{ kind: 'hessian' }], new Set(names), backend);
    const rows = 5;
    const columns = 3;
    const x = Float32Array.from({ length: rows * columns }, (_, i) => Math.sin(i + 1));
    const y = Float32Array.from({ length: rows * columns }, (_, i) => Math.cos(i * 2));
    // q, k and v read one buffer (one Hessian); o reads another.
    for (const name of ['q', 'k', 'v']) await collector.observe(name, { dtype: 'float32', shape: [rows, columns], data: x });
    await collector.observe('o', { dtype: 'float32', shape: [rows, columns], data: y });
    const expected = Array.from(meanGram(x, rows, columns));
    const shared = collector.statistics('q').hessian!;
    for (let i = 0; i < expected.length; i++) expect(shared[i]).toBeCloseTo(expected[i]!, 12);
    const held = () => (collector as unknown as { accumulators: Map<string, { hessian?: Float64Array }> }).accumulators;
    collector.release('q');
    collector.release('k');
    expect(() => collector.statistics('q')).toThrow(/released/);
    // v still reads the shared Hessian, unchanged.
    expect(Array.from(collector.statistics('v').hessian!)).toEqual(Array.from(shared));
    expect(held().get('q')!.hessian).toBe(shared);
    collector.release('v');
    expect(held().get('q')!.hessian).toBeUndefined();
    expect(() => collector.statistics('v')).toThrow(/released/);
    // o is its own.
    expect(held().get('o')!.hessian).toBeDefined();
    collector.release('o');
    expect(held().get('o')!.hessian).toBeUndefined();
    // Unobserved layers are ignored by release and still unknown to statistics.
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
});
