import { describe, expect, it } from 'vitest';
import { AbortError } from './errors.js';
import { forEachLayer } from './for-each-layer.js';
import { resolveLayerScheme } from './layer-scheme.js';
import { parseFormat } from './number-format.js';
import type { LayerState, StepContext } from './quantizer.js';

const layer = (name: string, extra: Partial<LayerState> = {}): LayerState => ({ name, weight: { dtype: 'float32', shape: [1, 2], data: Float32Array.of(1, 2) }, ...extra });

describe('forEachLayer', () => {
  it('runs the work in order, reports progress per layer, and returns the states in the order given', async () => {
    const progress: string[] = [];
    const context: StepContext = { layers: [layer('a'), layer('b'), layer('c')], statistics: () => ({ tokens: 0 }), progress: (d, t, m) => void progress.push(`${d}/${t} ${m}`) };
    const seen: number[] = [];
    const out = await forEachLayer(context, async (l, { index }) => {
      seen.push(index);
      return { ...l, name: `${l.name}!` };
    });
    expect(out.map((l) => l.name)).toEqual(['a!', 'b!', 'c!']);
    expect(seen).toEqual([0, 1, 2]);
    expect(progress).toEqual(['1/3 a', '2/3 b', '3/3 c']);
  });

  it('stops with AbortError before the next layer once the signal is aborted', async () => {
    const controller = new AbortController();
    const context: StepContext = { layers: [layer('a'), layer('b')], statistics: () => ({ tokens: 0 }), signal: controller.signal };
    const done: string[] = [];
    const error = await forEachLayer(context, (l) => {
      done.push(l.name);
      controller.abort();
      return l;
    }).catch((e: unknown) => e);
    expect(AbortError.isInstance(error)).toBe(true);
    expect(done).toEqual(['a']);
  });

  it('hands the runner’s context.scheme, else the step’s own scheme resolved with the layer’s assignment', async () => {
    const int3 = { format: parseFormat('int3') };
    const byRunner = resolveLayerScheme({ format: 'int8' });
    const layers = [layer('a'), layer('b', { assignment: int3 })];
    const own = await forEachLayer({ layers, statistics: () => ({ tokens: 0 }) }, (l, { scheme }) => ({ ...l, label: scheme }) as LayerState, { scheme: { format: 'int4' } });
    expect(own.map((l) => (l as unknown as { label: { format: unknown } }).label.format)).toEqual([parseFormat('int4'), parseFormat('int3')]);
    const runner = await forEachLayer({ layers, statistics: () => ({ tokens: 0 }), scheme: () => byRunner }, (l, { scheme }) => ({ ...l, label: scheme }) as LayerState, { scheme: { format: 'int4' } });
    expect(runner.map((l) => (l as unknown as { label: unknown }).label)).toEqual([byRunner, byRunner]);
    const none = await forEachLayer({ layers, statistics: () => ({ tokens: 0 }) }, (l, { scheme }) => ({ ...l, label: scheme }) as LayerState);
    expect(none.map((l) => (l as unknown as { label: unknown }).label)).toEqual([undefined, undefined]);
  });
});
