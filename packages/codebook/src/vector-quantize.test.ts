import { describe, expect, it } from 'vitest';
import { AbortError, dequantizeVq, parseFormat, relativeError, vqBitsPerWeight } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { vectorQuantize } from './vector-quantize.js';
import { vectorQuantizeLayer } from './vector-quantize-layer.js';
import { correlatedHessian, naiveObjective, randomWeight } from './codebook.test-support.js';

const backend = createJsBackend();

describe('vectorQuantizeLayer', () => {
  const w = randomWeight(48, 64, 21);
  const h = correlatedHessian(64, 400, 22);

  for (const [dimension, codebookBits] of [[2, 4], [2, 6], [4, 8], [8, 6]] as const) {
    it(`d=${dimension}, k=${codebookBits}: Hessian error feedback beats nearest assignment with the same codebook on the layer objective`, async () => {
      const fed = await vectorQuantizeLayer(w, h, { dimension, codebookBits, backend });
      const naive = await vectorQuantizeLayer(w, h, { dimension, codebookBits, errorFeedback: false, backend });
      expect(fed.quantized.stages[0]!.codebooks).toEqual(naive.quantized.stages[0]!.codebooks);
      expect(naiveObjective(w, fed.weight, h)).toBeLessThan(naiveObjective(w, naive.weight, h));
      expect(Array.from(fed.weight.data)).toEqual(Array.from(dequantizeVq(fed.quantized).data));
      const rows = 48, columns = 64;
      expect(fed.bitsPerWeight).toBeCloseTo((rows * (columns / dimension) * codebookBits + 2 ** codebookBits * dimension * 16 + rows * 16) / (rows * columns), 10);
      expect(vqBitsPerWeight(fed.quantized)).toBe(fed.bitsPerWeight);
    });
  }

  it('residual VQ lowers the error; codebooks per block of rows; inputs are not modified', async () => {
    const copy = Float32Array.from(w.data);
    const one = await vectorQuantizeLayer(w, undefined, { dimension: 2, codebookBits: 3 });
    const two = await vectorQuantizeLayer(w, undefined, { dimension: 2, codebookBits: 3, residual: true });
    expect(two.quantized.stages).toHaveLength(2);
    expect(relativeError(w.data, two.weight.data)).toBeLessThan(relativeError(w.data, one.weight.data));
    const grouped = await vectorQuantizeLayer(w, h, { dimension: 2, codebookBits: 3, groupRows: 16, backend });
    expect(grouped.quantized.stages[0]!.codebooks.length).toBe(3 * 8 * 2);
    expect(naiveObjective(w, grouped.weight, h)).toBeLessThan(naiveObjective(w, (await vectorQuantizeLayer(w, h, { dimension: 2, codebookBits: 3, backend })).weight, h) * 1.05);
    expect(w.data).toEqual(copy);
  });

  it('is deterministic for a seed and rejects a dimension that does not divide the row', async () => {
    const a = await vectorQuantizeLayer(w, h, { dimension: 4, codebookBits: 6, seed: 3, backend });
    const b = await vectorQuantizeLayer(w, h, { dimension: 4, codebookBits: 6, seed: 3, backend });
    expect(a.weight.data).toEqual(b.weight.data);
    await expect(vectorQuantizeLayer(randomWeight(4, 30, 1), undefined, { dimension: 4, codebookBits: 4 })).rejects.toThrow(/does not divide/);
  });
});

describe('vectorQuantize() step', () => {
  const layers = [
    { name: 'a', weight: randomWeight(8, 32, 1) },
    { name: 'b', weight: randomWeight(16, 32, 2), assignment: { format: parseFormat('int3') } },
  ];
  const h = correlatedHessian(32, 64, 3);
  it('requests the Hessian, honours assignments (bits x dimension), never mutates inputs, honours abort', async () => {
    const step = vectorQuantize({ dimension: 2, codebookBits: 4, backend });
    expect(step.requires).toEqual([{ kind: 'hessian' }]);
    const before = layers.map((l) => Float32Array.from(l.weight.data));
    const { layers: out } = await step.run({ layers, statistics: () => ({ tokens: 64, hessian: h }) });
    layers.forEach((l, i) => expect(l.weight.data).toEqual(before[i]));
    expect(out[0]!.bitsPerWeight).toBeCloseTo((8 * 16 * 4 + 16 * 2 * 16 + 8 * 16) / 256, 10);
    expect(out[1]!.bitsPerWeight).toBeCloseTo((16 * 16 * 6 + 64 * 2 * 16 + 16 * 16) / 512, 10);
    await expect(step.run({ layers, statistics: () => ({ tokens: 0 }) })).rejects.toThrow(/no Hessian/);
    const controller = new AbortController();
    controller.abort();
    await expect(step.run({ layers, statistics: () => ({ tokens: 64, hessian: h }), signal: controller.signal })).rejects.toSatisfy((e) => AbortError.isInstance(e));
  });
});
