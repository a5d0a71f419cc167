import { describe, expect, it } from 'vitest';
import { matrix, type BlockOutputErrors, type QuantizableModel } from '@bitsmith/core';
import { withActivationCapture, type ActivationSummary } from './activation-summary.js';

// The report's activation view from either source: the first observed runBlock of a block (host inputs) or the
// channel statistics that a model measuring output errors itself (a GPU model) gives with them.
const model = (gives: boolean, observed: number[]): QuantizableModel =>
  ({
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

describe('withActivationCapture', () => {
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
