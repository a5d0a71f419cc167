import { describe, expect, it } from 'vitest';
import type { LinearInputCallback, Matrix, QuantizableModel } from '@bitsmith/core';
import { summarise, withActivationCapture, type ActivationSummary } from './activation-summary.js';

/** A fake one-block model whose runBlock hands each of two linears its input in batches of 3 rows. */
function fakeModel(inputs: Record<string, Float32Array>, columns: number): QuantizableModel {
  const linears = Object.keys(inputs).map((name) => ({ name }));
  return {
    blocks: [{ index: 0, linears }],
    async runBlock(_index: number, hidden: unknown, observe?: LinearInputCallback) {
      for (const [name, data] of Object.entries(inputs)) {
        const rows = data.length / columns;
        for (let start = 0; start < rows; start += 3) {
          const end = Math.min(rows, start + 3);
          await observe?.(name, { dtype: 'float32', shape: [end - start, columns], data: data.slice(start * columns, end * columns) });
        }
      }
      return hidden;
    },
  } as unknown as QuantizableModel;
}

describe('withActivationCapture', () => {
  it('summarises each linear over all batches of the first pass, as summarise does on the whole input', async () => {
    const columns = 5;
    const a = Float32Array.from({ length: 8 * columns }, (_, i) => Math.sin(i * 1.7) * (i % 5 === 2 ? 20 : 1));
    const b = Float32Array.from({ length: 7 * columns }, (_, i) => Math.cos(i * 0.3) - 0.25);
    const into = new Map<string, ActivationSummary>();
    const seen: string[] = [];
    const model = withActivationCapture(fakeModel({ a, b }, columns), 'test', into);
    await model.runBlock(0, undefined, (name) => void seen.push(name));
    // The runner's observer still sees every batch.
    expect(seen).toEqual(['a', 'a', 'a', 'b', 'b', 'b']);
    const whole = (data: Float32Array): Matrix => ({ dtype: 'float32', shape: [data.length / columns, columns], data });
    expect(into.get('a')).toEqual(summarise('a', 'test', whole(a)));
    expect(into.get('b')).toEqual(summarise('b', 'test', whole(b)));
    expect(into.get('a')!.tokens).toBe(8);
    // Only the first pass through a block is summarised.
    await model.runBlock(0, undefined, () => {});
    expect(into.size).toBe(2);
  });
});
