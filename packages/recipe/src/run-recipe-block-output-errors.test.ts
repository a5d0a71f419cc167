import { dequantize, gridStored, NonFiniteError, parseFormat, quantize, type BlockOutputErrors, type Matrix, type QuantizableModel, type Quantizer } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { loadLlamaModel, llamaQuantizableModel } from '@bitsmith/models';
import { describe, expect, it } from 'vitest';
import { runRecipe } from './run-recipe.js';
import { SKIP_SHARED, TINYSTORIES_DIR } from './shared-data.test-support.js';

// QuantizableModel.blockOutputErrors (a GPU model measures output errors where the inputs are): the runner then
// propagates with the model's output and reports the model's error terms, observing no runBlock; a model that cannot
// (undefined) is observed on the host as before; non-finite sums are the non-finite input the host check reports.

/** A quantize step that rounds every weight to int4 per channel (its grid as the stored form). */
const nudge: Quantizer = {
  specificationVersion: 'v2',
  id: 'nudge',
  kind: 'quantize',
  requires: [],
  async run(context) {
    return {
      layers: context.layers.map((l) => {
        const q = quantize(l.weight, { format: parseFormat('int4'), granularity: { type: 'channel' } });
        return { ...l, weight: dequantize(q), stored: gridStored(q) };
      }),
      warnings: [],
    };
  },
};

async function setup() {
  const backend = createJsBackend();
  const loaded = await loadLlamaModel(TINYSTORIES_DIR, { backend });
  const sequences = [[1, 5, 9, 13, 200, 17, 40], [1, 8, 3]];
  return { backend, sequences, inner: llamaQuantizableModel(loaded.graph) };
}

describe.skipIf(SKIP_SHARED)('runRecipe with a model that measures block output errors', () => {
  it('propagates the model\'s output, reports sqrt(error / reference) per layer, hands it the float weights and 2048 rows, observes nothing', async () => {
    const { backend, sequences, inner } = await setup();
    const observed: number[] = [];
    const calls: { block: number; rows: number; names: string[]; floats: boolean }[] = [];
    const floats = new Map<string, Matrix>(inner.blocks.flatMap((b) => b.linears.map((l) => [l.name, l.weight] as const)));
    const outputs: unknown[] = [];
    const inputs: unknown[] = [];
    const model: QuantizableModel = {
      ...inner,
      runBlock: (index, hidden, observe, options) => {
        if (observe) observed.push(index);
        return inner.runBlock(index, hidden, observe, options);
      },
      blockOutputErrors: async (index, hidden, references, rows): Promise<BlockOutputErrors> => {
        calls.push({ block: index, rows, names: [...references.keys()], floats: [...references].every(([name, w]) => w === floats.get(name)) });
        inputs.push(hidden);
        const output = await inner.runBlock(index, hidden);
        outputs.push(output);
        const errors = new Map([...references.keys()].map((name, i) => [name, { rows: 10, squaredError: (index + 1) * (i + 1), squaredReference: 16 }] as const));
        return { output, errors };
      },
    };
    const report = await runRecipe(model, [nudge], sequences, { backend });
    expect(observed).toEqual([]);
    expect(calls.map((c) => c.block)).toEqual([0, 1]);
    for (const c of calls) {
      expect(c.rows).toBe(2048);
      expect(c.names).toHaveLength(7);
      expect(c.floats).toBe(true);
    }
    // Block 1 ran on block 0's output as the model returned it.
    expect(inputs[1]).toBe(outputs[0]);
    for (const layer of report.layers) {
      const i = calls[layer.block]!.names.indexOf(layer.name);
      expect(layer.outputError).toBeCloseTo(Math.sqrt(((layer.block + 1) * (i + 1)) / 16), 12);
    }
  });

  it('observes runBlock on the host when the model returns undefined, with the same errors as a model without the method', async () => {
    const { backend, sequences, inner } = await setup();
    const observed: (number | undefined)[] = [];
    const model: QuantizableModel = {
      ...inner,
      runBlock: (index, hidden, observe, options) => {
        if (observe) observed.push(options?.observeRows);
        return inner.runBlock(index, hidden, observe, options);
      },
      blockOutputErrors: async () => undefined,
    };
    const report = await runRecipe(model, [nudge], sequences, { backend });
    expect(observed).toEqual([2048, 2048]);
    const plain = await (async () => {
      const again = await setup();
      return runRecipe(again.inner, [nudge], again.sequences, { backend: again.backend });
    })();
    expect(report.layers.map((l) => l.outputError)).toEqual(plain.layers.map((l) => l.outputError));
    expect(report.layers.every((l) => l.outputError > 0.01 && l.outputError < 0.5)).toBe(true);
  });

  it('refuses non-finite error sums with NonFiniteError naming the layer', async () => {
    const { backend, sequences, inner } = await setup();
    const model: QuantizableModel = {
      ...inner,
      blockOutputErrors: async (index, hidden, references) => ({
        output: await inner.runBlock(index, hidden),
        errors: new Map([...references.keys()].map((name) => [name, { rows: 10, squaredError: 1, squaredReference: name.endsWith('up_proj') ? Number.NaN : 4 }] as const)),
      }),
    };
    const run = runRecipe(model, [nudge], sequences, { backend });
    await expect(run).rejects.toThrow(NonFiniteError);
    await expect(runRecipe(model, [nudge], sequences, { backend })).rejects.toThrow(/model\.layers\.0\.mlp\.up_proj/);
  });
});
