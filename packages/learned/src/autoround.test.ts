import { describe, expect, it } from 'vitest';
import { dequantize, parseFormat, quantize, type BlockGradients, type LayerState, type Matrix } from '@bitsmith/core';
import { createRandom } from '@bitsmith/linalg';
import { autoRound } from './autoround.js';

/**
 * A small differentiable block with a closed-form backward, written here in float64: y = x + relu-free MLP
 * (x A^T) B^T over `count` sequences of `length` tokens; weights A [m, n] and B [n, m] by name.
 */
function twoLayerBlock(n: number, m: number, count: number, length: number, seed: number): { g: BlockGradients; layers: LayerState[] } {
  const r = createRandom(seed);
  const tokens = count * length;
  // Inputs with a few large channels, as real activations have.
  const x = Float32Array.from({ length: tokens * n }, (_, i) => r.normal() * (i % n < 3 ? 6 : 1));
  const A = Float32Array.from({ length: m * n }, () => r.normal() / Math.sqrt(n));
  const B = Float32Array.from({ length: n * m }, () => r.normal() / Math.sqrt(m));
  const layers: LayerState[] = [
    { name: 'a', weight: { dtype: 'float32', shape: [m, n], data: A } },
    { name: 'b', weight: { dtype: 'float32', shape: [n, m], data: B } },
  ];
  const rowsOf = (batch?: readonly number[]): number[] => (batch ?? Array.from({ length: count }, (_, i) => i)).flatMap((s) => Array.from({ length: length }, (_, t) => s * length + t));
  const run = (a: Float32Array, b: Float32Array, rows: number[]): { h: Float64Array; y: Float32Array; xs: Float32Array } => {
    const xs = new Float32Array(rows.length * n);
    rows.forEach((row, k) => xs.set(x.subarray(row * n, (row + 1) * n), k * n));
    const h = new Float64Array(rows.length * m);
    const y = new Float32Array(rows.length * n);
    for (let k = 0; k < rows.length; k++) {
      for (let i = 0; i < m; i++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += xs[k * n + j]! * a[i * n + j]!;
        h[k * m + i] = s;
      }
      for (let j = 0; j < n; j++) {
        let s = xs[k * n + j]!;
        for (let i = 0; i < m; i++) s += h[k * m + i]! * b[j * m + i]!;
        y[k * n + j] = s;
      }
    }
    return { h, y, xs };
  };
  const pick = (weights: ReadonlyMap<string, Float32Array>) => [weights.get('a') ?? A, weights.get('b') ?? B] as const;
  const matrix = (data: Float32Array): Matrix => ({ dtype: 'float32', shape: [data.length / n, n], data });
  const g: BlockGradients = {
    lengths: Array.from({ length: count }, () => length),
    hiddenSize: n,
    input: (batch) => matrix(run(A, B, rowsOf(batch)).xs),
    target: async (batch) => matrix(run(A, B, rowsOf(batch)).y),
    forward: async (weights, batch) => matrix(run(...pick(weights), rowsOf(batch)).y),
    async backward(weights, batch, seed) {
      const [a, b] = pick(weights);
      const rows = rowsOf(batch);
      const { h, y, xs } = run(a, b, rows);
      const dy = seed(matrix(y));
      const dA = new Float64Array(m * n);
      const dB = new Float64Array(n * m);
      for (let k = 0; k < rows.length; k++) {
        for (let j = 0; j < n; j++) for (let i = 0; i < m; i++) dB[j * m + i] += dy[k * n + j]! * h[k * m + i]!;
        for (let i = 0; i < m; i++) {
          let dh = 0;
          for (let j = 0; j < n; j++) dh += dy[k * n + j]! * b[j * m + i]!;
          for (let j = 0; j < n; j++) dA[i * n + j] += dh * xs[k * n + j]!;
        }
      }
      return { output: matrix(y), weightGradients: new Map([['a', Float32Array.from(dA)], ['b', Float32Array.from(dB)]]) };
    },
  };
  return { g, layers };
}

async function blockMse(g: BlockGradients, weights: Map<string, Float32Array>): Promise<number> {
  const y = (await g.forward(weights)).data;
  const t = (await g.target()).data;
  let s = 0;
  for (let i = 0; i < y.length; i++) s += (y[i]! - t[i]!) ** 2;
  return s / y.length;
}

describe('autoRound', () => {
  for (const [name, arithmetic] of [['int3', 'reference'], ['int2-asym', 'reference'], ['int3', 'native'], ['int2-asym', 'native']] as const) {
    it(`lowers the block output error well below round-to-nearest (${name}, groups of 16, a capability of ${arithmetic} arithmetic)`, async () => {
      const { g: plain, layers } = twoLayerBlock(32, 48, 8, 16, 1);
      const g: BlockGradients = { ...plain, arithmetic };
      const granularity = { type: 'group', size: 16 } as const;
      const step = autoRound({ format: name, granularity, iterations: 150, batchSize: 4, seed: 1 });
      const result = await step.run({ layers, statistics: () => ({ tokens: 0 }), blockGradients: g });
      if (arithmetic === 'native') {
        // The rounding's loops follow the capability's arithmetic: one it does not know is refused, naming it.
        const odd: BlockGradients = { ...plain, arithmetic: 'fast' as 'native' };
        await expect(step.run({ layers, statistics: () => ({ tokens: 0 }), blockGradients: odd })).rejects.toThrow(/arithmetic: got "fast"/);
      }
      expect(result.warnings).toEqual([]);
      const rtn = new Map(layers.map((l) => [l.name, dequantize(quantize(l.weight, { format: parseFormat(name), granularity })).data as Float32Array]));
      const learned = new Map(result.layers.map((l) => [l.name, l.weight.data as Float32Array]));
      const rtnError = await blockMse(g, rtn);
      const learnedError = await blockMse(g, learned);
      expect(learnedError).toBeLessThan(0.8 * rtnError);
      // An ordinary uniform stored form that decodes to the returned weight.
      for (const l of result.layers) {
        expect(l.quantized!.format).toEqual(parseFormat(name));
        expect(Array.from(dequantize(l.quantized!).data)).toEqual(Array.from(l.weight.data));
        expect(l.bitsPerWeight).toBeGreaterThan(Number(name[3]));
      }
    });
  }

  it('is reproducible for a seed and never worse than round-to-nearest on the full batch with best-iterate selection', async () => {
    const { g, layers } = twoLayerBlock(16, 16, 2, 8, 4);
    const options = { format: 'int4', granularity: { type: 'group', size: 16 } as const, iterations: 20, batchSize: 2 };
    const a = await autoRound(options).run({ layers, statistics: () => ({ tokens: 0 }), blockGradients: g });
    const b = await autoRound(options).run({ layers, statistics: () => ({ tokens: 0 }), blockGradients: g });
    expect(Array.from(a.layers[0]!.weight.data)).toEqual(Array.from(b.layers[0]!.weight.data));
    const rtn = new Map(layers.map((l) => [l.name, dequantize(quantize(l.weight, { format: parseFormat('int4'), granularity: options.granularity })).data as Float32Array]));
    expect(await blockMse(g, new Map(a.layers.map((l) => [l.name, l.weight.data as Float32Array])))).toBeLessThanOrEqual(await blockMse(g, rtn));
  });

  it('falls back to round-to-nearest with a warning when no block capability is given', async () => {
    const { layers } = twoLayerBlock(16, 16, 1, 4, 5);
    const result = await autoRound({ format: 'int4' }).run({ layers, statistics: () => ({ tokens: 0 }) });
    expect(result.warnings[0]!.message).toMatch(/round-to-nearest/);
    expect(Array.from(result.layers[0]!.weight.data)).toEqual(Array.from(dequantize(quantize(layers[0]!.weight, { format: parseFormat('int4') })).data));
  });

  it('rejects formats other than uniform integers', () => {
    expect(() => autoRound({ format: 'nf4' })).toThrow(/uniform integer/);
  });
});

describe('learnableWeightClipping (OmniQuant-style LWC)', () => {
  it('learns only the clipping factors: every code stays round-to-nearest of its own (learned) grid, and the block error drops below RTN', async () => {
    const { learnableWeightClipping } = await import('./learnable-weight-clipping.js');
    const { g, layers } = twoLayerBlock(32, 48, 8, 16, 2);
    const granularity = { type: 'group', size: 16 } as const;
    const result = await learnableWeightClipping({ format: 'int3', granularity, iterations: 100, batchSize: 4 }).run({ layers, statistics: () => ({ tokens: 0 }), blockGradients: g });
    const rtn = new Map(layers.map((l) => [l.name, dequantize(quantize(l.weight, { format: parseFormat('int3'), granularity })).data as Float32Array]));
    expect(await blockMse(g, new Map(result.layers.map((l) => [l.name, l.weight.data as Float32Array])))).toBeLessThan(await blockMse(g, rtn));
    for (const [k, l] of result.layers.entries()) {
      const q = l.quantized!;
      const w = layers[k]!.weight.data;
      // Plain rounding on the learned scales: code = clamp(round(w / s)) + 4 (core's symmetric int3).
      for (let i = 0; i < w.length; i++) {
        const s = q.scales[Math.floor(i / 16)]!;
        expect(q.codes[i]).toBe(Math.min(7, Math.max(0, Math.round(w[i]! / s) + 4)));
      }
    }
  });
});

describe('autoRound initialised by GPTQ (init: gptq)', () => {
  /** X^T X of the float inputs of both layers of the test block (a reads x, b reads h = x A^T). */
  async function hessians(g: BlockGradients, layers: LayerState[]): Promise<Map<string, Float64Array>> {
    const x = g.input().data;
    const [m, n] = layers[0]!.weight.shape;
    const A = layers[0]!.weight.data;
    const tokens = x.length / n;
    const h = new Float64Array(tokens * m);
    for (let k = 0; k < tokens; k++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) h[k * m + i] += x[k * n + j]! * A[i * n + j]!;
    const gram = (rows: ArrayLike<number>, width: number): Float64Array => {
      const H = new Float64Array(width * width);
      for (let k = 0; k < tokens; k++) for (let i = 0; i < width; i++) for (let j = 0; j < width; j++) H[i * width + j] += rows[k * width + i]! * rows[k * width + j]!;
      return H;
    };
    return new Map([['a', gram(x, n)], ['b', gram(h, m)]]);
  }

  it("starts exactly at GPTQ's solution and, with best-iterate selection on the full batch, never ends worse than it", async () => {
    const { gptqQuantizeLayer } = await import('@bitsmith/solvers');
    const { learnableRounding } = await import('./learnable-rounding.js');
    const { g, layers } = twoLayerBlock(32, 48, 4, 16, 7);
    const H = await hessians(g, layers);
    const granularity = { type: 'group', size: 16 } as const;
    const statistics = (name: string) => ({ tokens: 64, hessian: H.get(name)! });
    const gptqWeights = new Map<string, Float32Array>();
    for (const l of layers) {
      const solved = await gptqQuantizeLayer(l.weight, H.get(l.name)!, { format: parseFormat('int3'), granularity });
      gptqWeights.set(l.name, solved.weight.data as Float32Array);
      // Iteration 0 of the refinement is GPTQ's weight, bit for bit, although GPTQ's scales are not round-to-nearest's.
      const rounding = learnableRounding(l.weight, { format: parseFormat('int3'), granularity, start: solved.quantized });
      expect(Array.from(rounding.dequantize(rounding.initial()))).toEqual(Array.from(solved.weight.data));
      expect(Array.from(rounding.quantize(rounding.initial()).codes)).toEqual(Array.from(solved.quantized.codes));
    }
    const rtn = new Map(layers.map((l) => [l.name, dequantize(quantize(l.weight, { format: parseFormat('int3'), granularity })).data as Float32Array]));
    const gptqError = await blockMse(g, gptqWeights);
    expect(gptqError).not.toEqual(await blockMse(g, rtn)); // the test separates the two starting points
    const step = autoRound({ format: 'int3', granularity, iterations: 30, batchSize: 4, init: 'gptq' });
    expect(step.requires).toEqual([{ kind: 'hessian' }]);
    const result = await step.run({ layers, statistics, blockGradients: g });
    const refined = await blockMse(g, new Map(result.layers.map((l) => [l.name, l.weight.data as Float32Array])));
    expect(refined).toBeLessThanOrEqual(gptqError);
    expect(refined).toBeLessThan(0.98 * gptqError);
    // Without a block capability the step returns GPTQ's solution and says so.
    const loose = await autoRound({ format: 'int3', granularity, init: 'gptq' }).run({ layers, statistics });
    expect(loose.warnings[0]!.message).toMatch(/GPTQ's solution/);
    expect(Array.from(loose.layers[1]!.weight.data)).toEqual(Array.from(gptqWeights.get('b')!));
  });

  it('refuses asymmetric grids for init: gptq, naming the option', () => {
    expect(() => autoRound({ format: 'int3-asym', init: 'gptq' })).toThrow(/init.*symmetric/);
  });
});
