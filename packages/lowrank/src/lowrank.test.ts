import { decodeStored, dequantize, parseFormat, quantize, relativeError, type LayerState, type Matrix, type StepContext } from '@bitsmith/core';
import { createJsBackend, createRandom, fillNormal } from '@bitsmith/linalg';
import { describe, expect, it } from 'vitest';
import { lowRankApproximation, quantizationError } from './compensate-error.js';
import { activationScaleWhitening, eigenspaceWhitening } from './error-whitening.js';
import { eora } from './eora.js';
import { addLowRank, factorBitsPerWeight } from './low-rank-factors.js';
import { lorc } from './lorc.js';
import { lqLora } from './lq-lora.js';
import { lqer } from './lqer.js';
import { svdQuant } from './svdquant.js';
import { truncatedSvd } from './truncated-svd.js';

const backend = createJsBackend();

function randomMatrix(rows: number, columns: number, seed: number): Matrix {
  const d = fillNormal(new Float64Array(rows * columns), seed);
  return { dtype: 'float32', shape: [rows, columns], data: Float32Array.from(d) };
}

/** Inputs with unequal channel scales and correlations, their Hessian X^T X / N and mean |x|. */
function calibration(columns: number, tokens: number, seed: number) {
  const z = fillNormal(new Float64Array(tokens * columns), seed);
  const mix = fillNormal(new Float64Array(columns * columns), seed + 1);
  const x = new Float32Array(tokens * columns);
  for (let t = 0; t < tokens; t++)
    for (let j = 0; j < columns; j++) {
      let s = z[t * columns + j]! * 0.3;
      for (let k = 0; k < 4; k++) s += z[t * columns + ((j + k) % columns)]! * mix[j * columns + k]!;
      x[t * columns + j] = s * (j % 7 === 0 ? 8 : 1);
    }
  const hessian = new Float64Array(columns * columns);
  const absMean = new Float32Array(columns);
  for (let t = 0; t < tokens; t++)
    for (let i = 0; i < columns; i++) {
      const xi = x[t * columns + i]!;
      absMean[i] += Math.abs(xi) / tokens;
      for (let j = 0; j < columns; j++) hessian[i * columns + j] += (xi * x[t * columns + j]!) / tokens;
    }
  return { hessian, absMean };
}

function objective(e: Matrix<'float64'> | Matrix, hessian: Float64Array): number {
  const [rows, columns] = e.shape;
  let total = 0;
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < columns; i++) {
      let s = 0;
      for (let j = 0; j < columns; j++) s += hessian[i * columns + j]! * e.data[r * columns + j]!;
      total += e.data[r * columns + i]! * s;
    }
  return total;
}

function context(layers: LayerState[], statistics: Record<string, unknown> = {}): StepContext {
  return { layers, statistics: () => ({ tokens: 1, ...statistics }) };
}

const int3g32 = { format: parseFormat('int3'), granularity: { type: 'group' as const, size: 32 } };

describe('truncatedSvd', () => {
  it('exact and randomized agree on the leading singular values; wide matrices go through the transpose', async () => {
    const a = Float64Array.from(randomMatrix(40, 90, 3).data);
    const exact = await truncatedSvd(a, 40, 90, 5, { method: 'exact', backend });
    const randomized = await truncatedSvd(a, 40, 90, 5, { method: 'randomized', powerIterations: 8, backend });
    for (let k = 0; k < 5; k++) expect(randomized.s[k]).toBeCloseTo(exact.s[k]!, 3);
    // U S V^T reconstructs the leading part: u is rows x rank, v columns x rank.
    expect(exact.u.length).toBe(40 * 5);
    expect(exact.v.length).toBe(90 * 5);
  });
});

describe('lowRankApproximation', () => {
  it('LoRC factors are the Eckart-Young best rank-r approximation (error = tail of the spectrum)', async () => {
    const e = randomMatrix(48, 32, 7);
    const full = await truncatedSvd(Float64Array.from(e.data), 48, 32, 32, { method: 'exact', backend });
    const r = 6;
    const f = await lowRankApproximation(e, { rank: r, backend, storage: 'float16' });
    const residual = quantizationError(e, addLowRank({ dtype: 'float32', shape: [48, 32], data: new Float32Array(48 * 32) }, f.a, f.b));
    let tail = 0;
    for (let k = r; k < 32; k++) tail += full.s[k]! ** 2;
    let got = 0;
    for (const v of residual.data) got += v * v;
    expect(Math.sqrt(got)).toBeCloseTo(Math.sqrt(tail), 2);
    expect(f.bits).toBe(16 * r * (48 + 32));
  });

  it('LQER with equal channel scales equals LoRC; EoRA minimises the Hessian-weighted error', async () => {
    const w = randomMatrix(64, 64, 11);
    const q = dequantize(quantize(w, int3g32));
    const e = quantizationError(w, q);
    const { hessian, absMean } = calibration(64, 400, 5);
    const plain = await lowRankApproximation(e, { rank: 4, backend });
    const flat = await lowRankApproximation(e, { rank: 4, backend, whitening: activationScaleWhitening(new Float32Array(64).fill(2)) });
    expect(relativeError(addLowRank(q, plain.a, plain.b).data, addLowRank(q, flat.a, flat.b).data)).toBeLessThan(1e-3);
    const scaled = await lowRankApproximation(e, { rank: 4, backend, whitening: activationScaleWhitening(absMean) });
    const eigen = await lowRankApproximation(e, { rank: 4, backend, whitening: await eigenspaceWhitening(hessian, 64, 0) });
    const loss = (f: { a: Matrix; b: Matrix }) => objective(quantizationError(w, addLowRank(q, f.a, f.b)), hessian);
    const base = objective(e, hessian);
    expect(loss(plain)).toBeLessThan(base);
    expect(loss(eigen)).toBeLessThan(loss(plain));
    expect(loss(eigen)).toBeLessThan(loss(scaled));
  });
});

describe('compensate steps', () => {
  it('lorc, lqer and eora add A B to Q(W), count the factors in bits per weight, and pass through layers without a reference', async () => {
    const w = randomMatrix(64, 96, 2);
    const q = quantize(w, int3g32);
    const layer: LayerState = { name: 'fc', weight: dequantize(q), reference: w, stored: { kind: 'grid', tensor: q }, bitsPerWeight: 3.5 };
    const { hessian, absMean } = calibration(96, 300, 9);
    const stats = { hessian, inputAbsMean: absMean };
    for (const step of [lorc({ rank: 8, backend }), lqer({ rank: 8, backend }), eora({ rank: 8, backend })]) {
      expect(step.kind).toBe('compensate');
      const { layers, warnings } = await step.run(context([layer], stats));
      expect(warnings).toEqual([]);
      expect(layers[0]!.bitsPerWeight).toBeCloseTo(3.5 + factorBitsPerWeight(64, 96, 8, 'float16'), 12);
      // The stored form keeps the grid and adds the factors; it decodes to the returned weight exactly.
      const stored = layers[0]!.stored!;
      expect(stored.kind === 'low-rank' && stored.base.kind === 'grid' && stored.base.tensor === q).toBe(true);
      expect(Array.from(decodeStored(stored).data)).toEqual(Array.from(layers[0]!.weight.data));
      expect(relativeError(w.data, layers[0]!.weight.data)).toBeLessThan(relativeError(w.data, layer.weight.data));
    }
    const int8 = await lorc({ rank: 8, factorStorage: 'int8', backend }).run(context([layer]));
    expect(int8.layers[0]!.bitsPerWeight).toBeCloseTo(3.5 + factorBitsPerWeight(64, 96, 8, 'int8'), 12);
    expect(factorBitsPerWeight(64, 96, 8, 'int8')).toBeCloseTo((8 * 160 * 8 + (64 + 8) * 16) / (64 * 96), 12);
    const loose = await lorc({ rank: 8, backend }).run(context([{ name: 'x', weight: w }]));
    expect(loose.layers[0]!.weight).toBe(w);
    expect(loose.warnings).toHaveLength(1);
  });

  it('svdQuant moves an outlier-heavy rank-1 part into the branch and beats RTN; lqLora beats RTN + LoRC', async () => {
    const base = randomMatrix(64, 64, 4);
    const data = Float32Array.from(base.data);
    for (let i = 0; i < 64; i++) for (let j = 0; j < 64; j++) data[i * 64 + j] += (j % 16 === 3 ? 30 : 0.5) * ((i % 5) - 2);
    const w: Matrix = { dtype: 'float32', shape: [64, 64], data };
    const rtnWeight = dequantize(quantize(w, int3g32));
    const { layers } = await svdQuant({ ...int3g32, rank: 4, backend }).run(context([{ name: 'fc', weight: w }]));
    expect(relativeError(w.data, layers[0]!.weight.data)).toBeLessThan(0.5 * relativeError(w.data, rtnWeight.data));
    expect(layers[0]!.bitsPerWeight).toBeCloseTo(3.5 + factorBitsPerWeight(64, 64, 4, 'float16'), 12);
    // The weight is Q(W - L) + L: the stored form carries the branch (the grid alone would differ by the branch).
    const svd = layers[0]!.stored!;
    expect(svd.kind).toBe('low-rank');
    expect(Array.from(decodeStored(svd).data)).toEqual(Array.from(layers[0]!.weight.data));
    if (svd.kind === 'low-rank') expect(relativeError(layers[0]!.weight.data, decodeStored(svd.base).data)).toBeGreaterThan(0.1);
    const lorcResult = await lorc({ rank: 4, backend }).run(context([{ name: 'fc', weight: rtnWeight, reference: w, bitsPerWeight: 3.5 }]));
    const alternated = await lqLora({ ...int3g32, rank: 4, iterations: 4, backend }).run(context([{ name: 'fc', weight: w }]));
    const lq = alternated.layers[0]!.stored!;
    expect(lq.kind).toBe('low-rank');
    expect(Array.from(decodeStored(lq).data)).toEqual(Array.from(alternated.layers[0]!.weight.data));
    expect(relativeError(w.data, alternated.layers[0]!.weight.data)).toBeLessThanOrEqual(relativeError(w.data, lorcResult.layers[0]!.weight.data) + 1e-7);
  });
});
