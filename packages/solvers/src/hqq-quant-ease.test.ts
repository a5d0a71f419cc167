import { describe, expect, it } from 'vitest';
import { AbortError, dequantize, parseFormat, quantize, storedGrid, type Granularity, type Matrix } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { gptq } from './gptq.js';
import { gptqQuantizeLayer } from './gptq-quantize-layer.js';
import { hqq } from './hqq.js';
import { hqqQuantizeLayer } from './hqq-quantize-layer.js';
import { quantEase } from './quant-ease.js';
import { quantEaseQuantizeLayer } from './quant-ease-quantize-layer.js';
import { correlatedHessian, naiveObjective, randomWeight } from './gptq.test-support.js';

const backend = createJsBackend();
const g32: Granularity = { type: 'group', size: 32 };

function meanAbsError(a: Matrix, b: Matrix): number {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += Math.abs(a.data[i]! - b.data[i]!);
  return s / a.data.length;
}

describe('HQQ', () => {
  const w = randomWeight(32, 128, 3, 0.05);
  for (const bits of [2, 3, 4]) {
    it(`${bits} bits g32: mean |W - Q| at or below min-max RTN with zero points, scales/zeros on the stored grid`, () => {
      const rtn = dequantize(quantize(w, { format: parseFormat(`int${bits}-asym`), granularity: g32 }));
      for (const zeroPoint of ['float', 'integer'] as const) {
        const result = hqqQuantizeLayer(w, { bits, granularity: g32, zeroPoint });
        expect(meanAbsError(w, result.weight)).toBeLessThanOrEqual(meanAbsError(w, rtn) * (1 + 1e-9));
        expect(result.error.final).toBeLessThanOrEqual(result.error.initial * (1 + 1e-6));
        expect(Array.from(result.weight.data)).toEqual(Array.from(dequantize(result.quantized).data));
        for (const c of result.quantized.codes) expect(c).toBeLessThan(2 ** bits);
        if (zeroPoint === 'integer') for (const z of result.quantized.zeroPoints!) expect(Number.isInteger(z)).toBe(true);
        expect(result.bitsPerWeight).toBeCloseTo(bits + (16 + (zeroPoint === 'integer' ? bits : 16)) / 32, 10);
      }
    });
  }

  it('optionally updates scales; the step needs no statistics, honours assignments, never mutates inputs', async () => {
    const scaled = hqqQuantizeLayer(w, { bits: 3, granularity: g32, optimizeScale: true });
    expect(meanAbsError(w, scaled.weight)).toBeLessThan(meanAbsError(w, dequantize(quantize(w, { format: parseFormat('int3-asym'), granularity: g32 }))));
    const step = hqq({ bits: 4, granularity: g32 });
    expect(step.requires).toEqual([]);
    const copy = Float32Array.from(w.data);
    const { layers } = await step.run({
      layers: [{ name: 'a', weight: w }, { name: 'b', weight: w, assignment: { format: parseFormat('int2'), granularity: { type: 'group', size: 64 } } }],
      statistics: () => { throw new Error('HQQ must not read statistics'); },
    });
    expect(w.data).toEqual(copy);
    expect(layers[0]!.bitsPerWeight).toBeCloseTo(4 + 32 / 32, 10);
    expect(layers[1]!.bitsPerWeight).toBeCloseTo(2 + 32 / 64, 10);
    // Float zero points stay in the stored grid, counted at 16 bits each, and decode to the returned weight.
    const floatZero = storedGrid(layers[0]!.stored)!;
    expect(floatZero.zeroPointEncoding).toBe('float16');
    expect(Array.from(dequantize(floatZero).data)).toEqual(Array.from(layers[0]!.weight.data));
    const integer = await hqq({ bits: 4, granularity: g32, zeroPoint: 'integer' }).run({ layers: [{ name: 'a', weight: w }], statistics: () => ({ tokens: 0 }) });
    expect(storedGrid(integer.layers[0]!.stored)?.format).toEqual({ type: 'int', bits: 4, symmetric: false });
    expect(integer.layers[0]!.bitsPerWeight).toBeCloseTo(4 + 20 / 32, 10);
    const controller = new AbortController();
    controller.abort();
    await expect(step.run({ layers: [{ name: 'a', weight: w }], statistics: () => ({ tokens: 0 }), signal: controller.signal })).rejects.toSatisfy((e) => AbortError.isInstance(e));
  });
});

describe('QuantEase', () => {
  const w = randomWeight(40, 128, 11, 0.5);
  const h = correlatedHessian(128, 512, 12);
  for (const [format, granularity] of [['int3', g32], ['int2', g32], ['int4', { type: 'channel' }], ['nf4', g32]] as [string, Granularity][]) {
    it(`${format} ${JSON.stringify(granularity)}: objective never increases over passes and ends at or below GPTQ`, async () => {
      const result = await quantEaseQuantizeLayer(w, h, { format, granularity, backend });
      const start = await gptqQuantizeLayer(w, h, { format, granularity, backend });
      const base = naiveObjective(w, start.weight, h);
      expect(result.objectives[0]! / base).toBeCloseTo(1, 8);
      for (let i = 1; i < result.objectives.length; i++) expect(result.objectives[i]!).toBeLessThanOrEqual(result.objectives[i - 1]! * (1 + 1e-9));
      const ours = naiveObjective(w, result.weight, h);
      expect(ours).toBeLessThanOrEqual(base * (1 + 1e-9));
      expect(Array.from(result.quantized.scales)).toEqual(Array.from(start.quantized.scales));
      expect(Array.from(result.weight.data)).toEqual(Array.from(dequantize(result.quantized).data));
      console.log(`QuantEase/GPTQ ${format}: ${(ours / base).toFixed(3)} after ${result.objectives.length - 1} passes`);
    });
  }

  it('from RTN also ends below RTN; the step requires the Hessian and honours assignments', async () => {
    const result = await quantEaseQuantizeLayer(w, h, { format: 'int3', granularity: g32, init: 'rtn', backend });
    expect(result.objectives.at(-1)!).toBeLessThan(result.objectives[0]!);
    const step = quantEase({ format: 'int4', granularity: g32, backend, passes: 2 });
    expect(step.requires).toEqual([{ kind: 'hessian' }]);
    const { layers } = await step.run({ layers: [{ name: 'a', weight: w, assignment: { format: parseFormat('int2') } }], statistics: () => ({ tokens: 1, hessian: h }) });
    expect(storedGrid(layers[0]!.stored)!.format).toEqual(parseFormat('int2'));
    expect(storedGrid(layers[0]!.stored)!.granularity).toEqual(g32);
    await expect(step.run({ layers: [{ name: 'a', weight: w }], statistics: () => ({ tokens: 1 }) })).rejects.toThrow(/no Hessian/);
  });
});

describe('gptq() honours layer.assignment', () => {
  it('uses the assigned format and granularity for that layer only', async () => {
    const w = randomWeight(16, 64, 31);
    const h = correlatedHessian(64, 128, 32);
    const step = gptq({ format: 'int4', granularity: g32, backend });
    const { layers } = await step.run({
      layers: [
        { name: 'plain', weight: w },
        { name: 'planned', weight: w, assignment: { format: parseFormat('int2'), granularity: { type: 'group', size: 16 }, label: 'int2-g16' } },
        { name: 'format-only', weight: w, assignment: { format: parseFormat('int3') } },
      ],
      statistics: () => ({ tokens: 128, hessian: h }),
    });
    expect(layers[0]!.bitsPerWeight).toBeCloseTo(4.5, 10);
    expect(storedGrid(layers[1]!.stored)!.format).toEqual(parseFormat('int2'));
    expect(layers[1]!.bitsPerWeight).toBeCloseTo(3, 10);
    const direct = await gptqQuantizeLayer(w, h, { format: 'int2', granularity: { type: 'group', size: 16 }, backend });
    expect(Array.from(storedGrid(layers[1]!.stored)!.codes)).toEqual(Array.from(direct.quantized.codes));
    expect(storedGrid(layers[2]!.stored)!.granularity).toEqual(g32);
    expect(layers[2]!.bitsPerWeight).toBeCloseTo(3.5, 10);
  });
});
