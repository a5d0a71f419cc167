import { describe, expect, it } from 'vitest';
import type { ActivationScheme } from './activation-quantization.js';
import { calibrateInputActivationScales, calibrateKvCacheScales } from './activation-scale-calibration.js';
import { calibrationBlocks } from './calibration-driver.js';
import type { BlockView, HiddenStatesHandle, LinearInputCallback } from './model-view.js';
import { parseFormat } from './number-format.js';

const int8Tensor: ActivationScheme = { format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false };

/** A rows x columns matrix of small values with one entry of the given magnitude. */
function batch(rows: number, columns: number, peak: number, seed: number): Float32Array {
  const out = Float32Array.from({ length: rows * columns }, (_, i) => (((i * 7 + seed) % 11) - 5) / 100);
  out[(seed * 5) % out.length] = peak;
  return out;
}

/** A fake model: its one block feeds layer `a` two batches (peaks 1 and 3) and layer `b` one (peak 12). */
function fakeModel() {
  let runs = 0;
  const model = {
    blocks: [{ index: 0 }, { index: 1 }],
    embed: async (): Promise<HiddenStatesHandle> => 'embedded',
    runBlock: async (index: number, hidden: HiddenStatesHandle, observe?: LinearInputCallback): Promise<HiddenStatesHandle> => {
      runs++;
      await observe?.('a', { dtype: 'float32', shape: [3, 8], data: batch(3, 8, 1, 1) });
      await observe?.('b', { dtype: 'float32', shape: [4, 8], data: batch(4, 8, -12, 2) });
      await observe?.('a', { dtype: 'float32', shape: [2, 8], data: batch(2, 8, -3, 3) });
      return `${String(hidden)}>${index}`;
    },
  };
  return { model, runs: () => runs };
}

describe('calibrateInputActivationScales', () => {
  it('one pass: each layer calibrated on all its batches and only its own (per-tensor minmax scales in the ratio of the peaks)', async () => {
    const { model, runs } = fakeModel();
    const { scales, output } = await calibrateInputActivationScales(model, { index: 0 }, 'x', int8Tensor, [
      { name: 'a', inFeatures: 8 },
      { name: 'b', inFeatures: 8 },
    ]);
    expect(runs()).toBe(1);
    expect(output).toBe('x>0');
    const a = scales.get('a')!.scales;
    const b = scales.get('b')!.scales;
    expect(a.length).toBe(1);
    expect(a[0]! / b[0]!).toBeCloseTo(3 / 12, 6);
  });

  it('refuses a dynamic scheme', async () => {
    const { model } = fakeModel();
    await expect(calibrateInputActivationScales(model, { index: 0 }, 'x', { ...int8Tensor, dynamic: true }, [{ name: 'a', inFeatures: 8 }])).rejects.toThrow(/dynamic scheme computes its scales at run time/);
  });

  it("through the driver: a block's activationScales pass is its captured output (propagate 'captured': one pass per block)", async () => {
    const { model, runs } = fakeModel();
    const seen: number[] = [];
    const blocks = calibrationBlocks(model, [[1, 2, 3]], { propagate: 'captured' });
    let next = await blocks.next();
    while (!next.done) {
      const scales = await next.value.activationScales(int8Tensor, [{ name: 'a', inFeatures: 8 }]);
      seen.push(scales.get('a')!.scales[0]!);
      next = await blocks.next();
    }
    expect(next.value).toBe('embedded>0>1');
    expect(runs()).toBe(2);
    expect(seen[0]).toBe(seen[1]);
  });
});

describe('calibrateKvCacheScales', () => {
  /** A fake attention block whose pass runs its cache transforms on keys (peak 2) and values (peak 8). */
  function cacheBlock() {
    let runs = 0;
    const block = { index: 0, name: 'block0', linears: [], norms: [], attention: { numAttentionHeads: 2, numKeyValueHeads: 2, headDim: 4 }, kvCache: undefined } as unknown as BlockView;
    const model = {
      runBlock: async (): Promise<HiddenStatesHandle> => {
        runs++;
        const keys = batch(5, 8, 2, 4);
        const values = batch(5, 8, -8, 5);
        await block.kvCache?.keys?.apply(keys, 5, 8);
        await block.kvCache?.values?.apply(values, 5, 8);
        return 'out';
      },
    };
    return { block, model, runs: () => runs };
  }

  it("watches exactly what the cache holds, in one pass, and puts the block's cache quantization back", async () => {
    const { block, model, runs } = cacheBlock();
    const { keys, values } = await calibrateKvCacheScales(model, block, 'x', { keys: int8Tensor, values: int8Tensor });
    expect(runs()).toBe(1);
    expect(keys!.scales[0]! / values!.scales[0]!).toBeCloseTo(2 / 8, 6);
    expect(block.kvCache).toBeUndefined();
  });

  it('dynamic keys and values need no pass and get no scales; a block without a cache is refused', async () => {
    const { block, model, runs } = cacheBlock();
    expect(await calibrateKvCacheScales(model, block, 'x', { keys: { ...int8Tensor, dynamic: true }, values: { ...int8Tensor, dynamic: true } })).toEqual({});
    expect(runs()).toBe(0);
    const plain = { index: 1, name: 'mlp-only', linears: [], norms: [] } as unknown as BlockView;
    await expect(calibrateKvCacheScales(model, plain, 'x', { keys: int8Tensor })).rejects.toThrow(/has no attention key\/value cache/);
  });
});
