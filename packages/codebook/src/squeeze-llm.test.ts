import { describe, expect, it } from 'vitest';
import { AbortError, csrStorageBits, decodeStored, dequantize, dequantizeLut, parseFormat, quantize, relativeError, storedBitsPerWeight } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { squeezeLlm } from './squeeze-llm.js';
import { squeezeLlmQuantizeLayer } from './squeeze-llm-quantize-layer.js';
import { correlatedHessian, naiveObjective, randomWeight } from './codebook.test-support.js';

const backend = createJsBackend();

describe('squeezeLlmQuantizeLayer', () => {
  for (const bits of [2, 3, 4]) {
    it(`${bits}-bit per-row tables reconstruct heavy-tailed rows better than uniform RTN (symmetric and min-max) per channel`, async () => {
      const w = randomWeight(32, 128, 40 + bits, true);
      const lut = await squeezeLlmQuantizeLayer(w, { bits });
      const ours = relativeError(w.data, lut.weight.data);
      for (const format of [`int${bits}`, `int${bits}-asym`]) {
        const rtn = dequantize(quantize(w, { format: parseFormat(format), granularity: { type: 'channel' } }));
        expect(ours).toBeLessThan(relativeError(w.data, rtn.data));
      }
      expect(lut.bitsPerWeight).toBeCloseTo(bits + (2 ** bits * 16) / 128, 10);
      expect(Array.from(lut.weight.data)).toEqual(Array.from(dequantizeLut(lut.quantized).data));
      // Every table entry is a float16 value and every decoded weight is an entry of its row's table.
      for (let r = 0; r < 32; r++) {
        const table = Array.from(lut.quantized.lut.subarray(r * 2 ** bits, (r + 1) * 2 ** bits));
        for (let c = 0; c < 128; c++) expect(table).toContain(lut.weight.data[r * 128 + c]);
      }
    });
  }

  it('dense-and-sparse keeps exactly the chosen largest-magnitude outliers in float32', async () => {
    const w = randomWeight(16, 64, 5, true);
    const fraction = 0.02;
    const result = await squeezeLlmQuantizeLayer(w, { bits: 3, outlierFraction: fraction });
    const count = Math.round(fraction * 16 * 64);
    const expected = Array.from({ length: w.data.length }, (_, i) => i)
      .sort((a, b) => Math.abs(w.data[b]!) - Math.abs(w.data[a]!) || a - b)
      .slice(0, count)
      .sort((a, b) => a - b);
    expect(Array.from(result.outliers)).toEqual(expected);
    const sparse = result.sparse!;
    expect(result.stored.kind).toBe('sparse-outliers');
    expect(Array.from(decodeStored(result.stored).data)).toEqual(Array.from(result.weight.data));
    expect(sparse.values.length).toBe(count);
    for (const p of expected) expect(result.weight.data[p]).toBe(w.data[p]);
    const positions: number[] = [];
    for (let r = 0; r < 16; r++) for (let i = sparse.rowPointers[r]!; i < sparse.rowPointers[r + 1]!; i++) positions.push(r * 64 + sparse.columnIndices[i]!);
    expect(positions).toEqual(expected);
    expect(csrStorageBits(sparse)).toBe(count * 48 + 17 * 32);
    expect(storedBitsPerWeight(result.stored)).toBeCloseTo(3 + (8 * 16) / 64 + (count * 48 + 17 * 32) / (16 * 64), 10);
    // Removing the outliers from the clustering lowers the error of the rest.
    const plain = await squeezeLlmQuantizeLayer(w, { bits: 3 });
    expect(relativeError(w.data, result.weight.data)).toBeLessThan(relativeError(w.data, plain.weight.data));
  });

  it('sensitivity weights favour important columns; error feedback lowers the Hessian objective', async () => {
    const w = randomWeight(24, 64, 8);
    const h = correlatedHessian(64, 256, 9);
    const diag = Float64Array.from({ length: 64 }, (_, j) => h[j * 64 + j]!);
    const none = await squeezeLlmQuantizeLayer(w, { bits: 2 });
    const weighted = await squeezeLlmQuantizeLayer(w, { bits: 2, sensitivity: diag });
    const diagError = (q: Float32Array): number => {
      let s = 0;
      for (let i = 0; i < q.length; i++) s += diag[i % 64]! * (w.data[i]! - q[i]!) ** 2;
      return s;
    };
    expect(diagError(weighted.weight.data)).toBeLessThan(diagError(none.weight.data));
    const fed = await squeezeLlmQuantizeLayer(w, { bits: 2, sensitivity: diag, hessian: h, backend });
    expect(naiveObjective(w, fed.weight, h)).toBeLessThan(naiveObjective(w, weighted.weight, h));
    expect(Array.from(fed.weight.data)).toEqual(Array.from(dequantizeLut(fed.quantized).data));
  });
});

describe('squeezeLlm() step', () => {
  const layers = [
    { name: 'a', weight: randomWeight(8, 32, 1) },
    { name: 'b', weight: randomWeight(16, 32, 2), assignment: { format: parseFormat('int2') } },
  ];
  const h = correlatedHessian(32, 64, 3);

  it('declares what it needs, honours assignments, never mutates inputs', async () => {
    expect(squeezeLlm({ bits: 3 }).requires).toEqual([{ kind: 'hessian' }]);
    expect(squeezeLlm({ bits: 3, sensitivity: 'fisher' }).requires).toEqual([{ kind: 'input-absmean' }]);
    expect(squeezeLlm({ bits: 3, sensitivity: 'none' }).requires).toEqual([]);
    const before = layers.map((l) => Float32Array.from(l.weight.data));
    const progress: number[] = [];
    const { layers: out, warnings } = await squeezeLlm({ bits: 3 }).run({ layers, statistics: () => ({ tokens: 64, hessian: h }), progress: (d) => progress.push(d) });
    expect(warnings).toEqual([]);
    expect(progress).toEqual([1, 2]);
    layers.forEach((l, i) => expect(l.weight.data).toEqual(before[i]));
    expect(out[0]!.bitsPerWeight).toBeCloseTo(3 + (8 * 16) / 32, 10);
    expect(out[1]!.bitsPerWeight).toBeCloseTo(2 + (4 * 16) / 32, 10);
    expect(new Set(out[1]!.weight.data.subarray(0, 32)).size).toBeLessThanOrEqual(4);
    const fisher = await squeezeLlm({ bits: 3, sensitivity: 'fisher' }).run({ layers, statistics: () => ({ tokens: 1, inputAbsMean: new Float32Array(32).fill(1) }) });
    expect(fisher.layers).toHaveLength(2);
  });

  it('needs its statistics and honours the abort signal', async () => {
    await expect(squeezeLlm({ bits: 3 }).run({ layers, statistics: () => ({ tokens: 0 }) })).rejects.toThrow(/no Hessian/);
    const controller = new AbortController();
    controller.abort();
    await expect(squeezeLlm({ bits: 3, sensitivity: 'none' }).run({ layers, statistics: () => ({ tokens: 0 }), signal: controller.signal })).rejects.toSatisfy((e) => AbortError.isInstance(e));
  });
});
