import { describe, expect, it } from 'vitest';
import { AbortError } from './errors.js';
import { relativeError } from './metrics.js';
import { rtn } from './rtn.js';
import { decodeStored } from './stored-form.js';
import { matrix } from './tensor.js';
import { heavyTailed } from './test-helpers.test-util.js';

describe('rtn quantizer', () => {
  const weight = matrix(heavyTailed(8 * 64, 9), 8, 64);
  const layers = [{ name: 'a', weight }, { name: 'b', weight: matrix(heavyTailed(8 * 64, 10), 8, 64) }];
  const context = { layers, statistics: () => ({ tokens: 0 }) };

  it('follows the contract: new states with quantized tensors and bits per weight, input untouched', async () => {
    const before = weight.data.slice();
    const step = rtn({ format: 'int4', granularity: { type: 'group', size: 32 } });
    expect(step.kind).toBe('quantize');
    expect(step.requires).toEqual([]);
    const result = await step.run(context);
    expect(result.layers.map((l) => l.name)).toEqual(['a', 'b']);
    expect(result.layers[0]!.bitsPerWeight).toBe(4 + 16 / 32);
    const stored = result.layers[0]!.stored!;
    expect(stored.kind).toBe('grid');
    expect(Array.from(decodeStored(stored).data)).toEqual(Array.from(result.layers[0]!.weight.data));
    expect(Array.from(weight.data)).toEqual(Array.from(before));
    expect(relativeError(weight.data, result.layers[0]!.weight.data)).toBeGreaterThan(0);
  });

  it('names the wrong option for plain-JavaScript callers (recipe shorthands included)', () => {
    expect(() => rtn({ bits: 4, groupSize: 32 } as never)).toThrow(/^bits: unknown option; expected one of format, granularity, scaleEncoding, rangeSearch \(bits is a recipe-file shorthand; in code write format: 'int4'\); groupSize: .*granularity: \{ type: 'group', size: 32 \}.*\(in the options of rtn\)$/);
    expect(() => rtn({ format: 'int4', groupsize: 32 } as never)).toThrow(/^groupsize: unknown option; expected one of format, /);
    expect(() => rtn({} as never)).toThrow(/^format: missing; expected a format name/);
    expect(() => rtn({ format: 'int4', granularity: { type: 'group', size: 32 } })).not.toThrow();
  });

  it('with range search the error is lower on heavy-tailed weights', async () => {
    const plain = await rtn({ format: 'int3', granularity: { type: 'group', size: 32 } }).run(context);
    const searched = await rtn({ format: 'int3', granularity: { type: 'group', size: 32 }, rangeSearch: true }).run(context);
    expect(relativeError(weight.data, searched.layers[0]!.weight.data)).toBeLessThan(relativeError(weight.data, plain.layers[0]!.weight.data));
  });

  it('activation-weighted range search declares the statistic it needs', () => {
    expect(rtn({ format: 'int4', rangeSearch: { activationWeighted: true } }).requires).toEqual([{ kind: 'input-absmean' }]);
  });

  it('stops on an aborted signal', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(rtn({ format: 'int4' }).run({ ...context, signal: controller.signal })).rejects.toBeInstanceOf(AbortError);
  });
});

describe('rtn and bit-plan assignments', () => {
  it('quantizes a layer with its assigned format instead of the step default', async () => {
    const w = matrix(heavyTailed(4 * 64, 21), 4, 64);
    const step = rtn({ format: 'int4', granularity: { type: 'group', size: 32 } });
    const result = await step.run({
      layers: [{ name: 'x', weight: w, assignment: { format: { type: 'int', bits: 8, symmetric: true }, granularity: { type: 'channel' } } }, { name: 'y', weight: w }],
      statistics: () => ({ tokens: 0 }),
    });
    expect(result.layers[0]!.bitsPerWeight).toBe(8 + 16 / 64);
    expect(result.layers[1]!.bitsPerWeight).toBe(4 + 16 / 32);
  });
});
