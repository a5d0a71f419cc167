import { describe, expect, it } from 'vitest';
import { matrix, type BlockOutputErrors, type LinearInputCallback, type Matrix, type QuantizableModel } from '@bitsmith/core';
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

// The report's activation view from either source: the first observed runBlock of a block (host inputs) or the
// channel statistics that a model measuring output errors itself (a GPU model) gives with them.
const model = (gives: boolean, observed: number[]): QuantizableModel =>
  ({
    blocks: [0, 1].map((index) => ({ index, linears: [{ name: `b${index}.host` }] })),
    runBlock: async (index: number, hidden: unknown, observe?: (name: string, input: ReturnType<typeof matrix>) => void) => {
      if (observe) {
        observed.push(index);
        observe(`b${index}.host`, matrix(Float32Array.of(1, -4, 2, 2), 2, 2));
      }
      return hidden;
    },
    blockOutputErrors: async (_index: number, hidden: unknown): Promise<BlockOutputErrors | undefined> =>
      gives
        ? { output: hidden, errors: new Map(), inputChannels: new Map([['gpu.layer', { rows: 4, absMax: Float32Array.of(3, 1), absSum: Float64Array.of(8, 2) }]]) }
        : undefined,
  }) as unknown as QuantizableModel;

describe('withActivationCapture with a model that measures output errors itself', () => {
  it('summarises the channel statistics a GPU model gives with its output errors, once per block', async () => {
    const into = new Map<string, ActivationSummary>();
    const observed: number[] = [];
    const wrapped = withActivationCapture(model(true, observed), 'calibration input', into);
    const result = await wrapped.blockOutputErrors!(0, 'h', new Map(), 2048);
    expect(result?.output).toBe('h');
    const s = into.get('gpu.layer')!;
    expect(s).toMatchObject({ tokens: 4, channels: 2, maxAbs: 3, meanAbs: 1.25, outlierRatio: 1.5, channelAbsMax: [3, 1] });
    // The block's later observed pass is not its first: nothing more is summarised from it.
    await wrapped.runBlock(0, 'h', () => undefined);
    expect(into.has('b0.host')).toBe(false);
    expect(observed).toEqual([0]);
  });

  it('summarises the first observed pass when the model gives no statistics (undefined: the runner observes)', async () => {
    const into = new Map<string, ActivationSummary>();
    const wrapped = withActivationCapture(model(false, []), 'calibration input', into);
    expect(await wrapped.blockOutputErrors!(1, 'h', new Map(), 2048)).toBeUndefined();
    await wrapped.runBlock(1, 'h', () => undefined);
    expect(into.get('b1.host')).toMatchObject({ tokens: 2, maxAbs: 4, channelAbsMax: [2, 4] });
    expect(into.has('gpu.layer')).toBe(false);
  });

  it('adds no blockOutputErrors to a model without one', () => {
    const plain = { runBlock: async (_i: number, h: unknown) => h } as unknown as QuantizableModel;
    expect(withActivationCapture(plain, 'x', new Map()).blockOutputErrors).toBeUndefined();
  });
});
