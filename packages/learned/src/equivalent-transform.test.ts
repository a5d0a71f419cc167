import { describe, expect, it } from 'vitest';
import { applyModelEdits, dequantize, parseFormat, quantize, type BlockGradients, type BlockView, type LayerState, type LinearView, type Matrix, type NormView } from '@bitsmith/core';
import { createRandom } from '@bitsmith/linalg';
import { autoRound } from './autoround.js';
import { accumulateScaleGradients, layerTransforms, transformGroups, transformWeight } from './equivalent-transform.js';
import { learnableWeightClipping } from './learnable-weight-clipping.js';

/**
 * A small block with a norm-like gain in front of two linears, written here in float64 with a closed-form backward:
 * `y = x + ((x * gain) A^T) B^T`. The gain is read from a writable norm view at every pass (so folded scales take
 * effect); the float target is fixed at creation. Input groups: gain -> a, a -> b.
 */
function gainBlock(n: number, m: number, count: number, length: number, seed: number) {
  const r = createRandom(seed);
  const tokens = count * length;
  const x = Float32Array.from({ length: tokens * n }, (_, i) => r.normal() * (i % n < 3 ? 6 : 1));
  const A = Float32Array.from({ length: m * n }, (_, i) => (r.normal() / Math.sqrt(n)) * (i % n === 5 ? 8 : 1));
  const B = Float32Array.from({ length: n * m }, (_, i) => (r.normal() / Math.sqrt(m)) * (i % m < 2 ? 5 : 1));
  const norm: NormView = { name: 'norm', type: 'rms', weight: Float32Array.from({ length: n }, () => 0.5 + r.uniform()) };
  const matrix = (data: Float32Array, rows: number, columns: number): Matrix<'float32'> => ({ dtype: 'float32', shape: [rows, columns], data });
  const viewA: LinearView = { name: 'a', kind: 'up_proj', weight: matrix(A, m, n), bias: undefined, inputTransform: undefined };
  const viewB: LinearView = { name: 'b', kind: 'down_proj', weight: matrix(B, n, m), bias: undefined, inputTransform: undefined };
  const block: BlockView = {
    index: 0,
    name: 'block',
    linears: [viewA, viewB],
    norms: [norm],
    inputGroups: [
      { producer: { kind: 'norm', norm }, linears: [viewA] },
      { producer: { kind: 'linear', linear: viewA }, linears: [viewB] },
    ],
  };
  const layers: LayerState[] = [
    { name: 'a', weight: viewA.weight },
    { name: 'b', weight: viewB.weight },
  ];
  const rowsOf = (batch?: readonly number[]): number[] => (batch ?? Array.from({ length: count }, (_, i) => i)).flatMap((s) => Array.from({ length }, (_, t) => s * length + t));
  const run = (a: Float32Array, b: Float32Array, gain: Float32Array, rows: number[]) => {
    const xs = new Float32Array(rows.length * n);
    rows.forEach((row, k) => xs.set(x.subarray(row * n, (row + 1) * n), k * n));
    const u = new Float64Array(rows.length * n);
    for (let i = 0; i < u.length; i++) u[i] = xs[i]! * gain[i % n]!;
    const h = new Float64Array(rows.length * m);
    const y = new Float32Array(rows.length * n);
    for (let k = 0; k < rows.length; k++) {
      for (let i = 0; i < m; i++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += u[k * n + j]! * a[i * n + j]!;
        h[k * m + i] = s;
      }
      for (let j = 0; j < n; j++) {
        let s = xs[k * n + j]!;
        for (let i = 0; i < m; i++) s += h[k * m + i]! * b[j * m + i]!;
        y[k * n + j] = s;
      }
    }
    return { u, h, y, xs };
  };
  const floatGain = norm.weight.slice();
  const targetAll = run(A, B, floatGain, rowsOf()).y;
  const pick = (weights: ReadonlyMap<string, Float32Array>) => [weights.get('a') ?? A, weights.get('b') ?? B] as const;
  const out = (data: Float32Array): Matrix => matrix(data, data.length / n, n);
  const g: BlockGradients = {
    lengths: Array.from({ length: count }, () => length),
    hiddenSize: n,
    input: (batch) => out(run(A, B, norm.weight, rowsOf(batch)).xs),
    target: async (batch) => out(Float32Array.from(rowsOf(batch).flatMap((row) => Array.from(targetAll.subarray(row * n, (row + 1) * n))))),
    forward: async (weights, batch) => out(run(...pick(weights), norm.weight, rowsOf(batch)).y),
    async backward(weights, batch, seed) {
      const [a, b] = pick(weights);
      const rows = rowsOf(batch);
      const { u, h, y } = run(a, b, norm.weight, rows);
      const dy = seed(out(y));
      const dA = new Float64Array(m * n);
      const dB = new Float64Array(n * m);
      for (let k = 0; k < rows.length; k++) {
        for (let j = 0; j < n; j++) for (let i = 0; i < m; i++) dB[j * m + i] += dy[k * n + j]! * h[k * m + i]!;
        for (let i = 0; i < m; i++) {
          let dh = 0;
          for (let j = 0; j < n; j++) dh += dy[k * n + j]! * b[j * m + i]!;
          for (let j = 0; j < n; j++) dA[i * n + j] += dh * u[k * n + j]!;
        }
      }
      return { output: out(y), weightGradients: new Map([['a', Float32Array.from(dA)], ['b', Float32Array.from(dB)]]) };
    },
  };
  return { g, layers, block, norm, A, B };
}

async function blockMse(g: BlockGradients, weights: Map<string, Float32Array>): Promise<number> {
  const y = (await g.forward(weights)).data;
  const t = (await g.target()).data;
  let s = 0;
  for (let i = 0; i < y.length; i++) s += (y[i]! - t[i]!) ** 2;
  return s / y.length;
}

describe('equivalent transform (OmniQuant LET, scales only)', () => {
  it('log-scale gradients equal central finite differences (identity quantizer, a norm group and a linear pair)', () => {
    // Loss L = sum(G0 * T) over the trial weights T of a (reads the norm, produces b's input) and b.
    const r = createRandom(3);
    const n = 6;
    const m = 5;
    const k = 4;
    const A = Float32Array.from({ length: m * n }, () => r.normal());
    const B = Float32Array.from({ length: k * m }, () => r.normal());
    const GA = Float64Array.from({ length: m * n }, () => r.normal());
    const GB = Float64Array.from({ length: k * m }, () => r.normal());
    const sigmaNorm = Float64Array.from({ length: n }, () => 0.3 * r.normal());
    const sigmaPair = Float64Array.from({ length: m }, () => 0.3 * r.normal());
    // T_a = (diag(1/r) A diag(c)) diag(1/c) (a norm-produced column scale, quantizer = identity), T_b = B diag(r).
    const loss = (sn: Float64Array, sp: Float64Array): number => {
      const c = sn.map(Math.exp);
      const rr = sp.map(Math.exp);
      let L = 0;
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) L += GA[i * n + j]! * (((A[i * n + j]! * c[j]!) / rr[i]!) / c[j]!);
      for (let i = 0; i < k; i++) for (let j = 0; j < m; j++) L += GB[i * m + j]! * B[i * m + j]! * rr[j]!;
      return L;
    };
    const c = Float64Array.from(sigmaNorm, Math.exp);
    const rr = Float64Array.from(sigmaPair, Math.exp);
    const wtA = transformWeight(A, m, n, c, rr, new Float32Array(m * n));
    const trialA = wtA.map((v, i) => v / c[i % n]!);
    const wtB = transformWeight(B, k, m, rr, undefined, new Float32Array(k * m));
    const dNorm = new Float64Array(n);
    const dPair = new Float64Array(m);
    // dL/dW~ of an identity quantizer: dL/dR, with R = W~ and T = R / c for a.
    const gradWtA = Float32Array.from(GA, (v, i) => v / c[i % n]!);
    accumulateScaleGradients(m, n, wtA, trialA, Float32Array.from(GA), gradWtA, true, dNorm, dPair);
    accumulateScaleGradients(k, m, wtB, wtB, Float32Array.from(GB), Float32Array.from(GB), false, dPair, undefined);
    const h = 1e-5;
    const fd = (which: 'norm' | 'pair', j: number): number => {
      const plus = which === 'norm' ? sigmaNorm.slice() : sigmaPair.slice();
      const minus = plus.slice();
      plus[j] += h;
      minus[j] -= h;
      return which === 'norm' ? (loss(plus, sigmaPair) - loss(minus, sigmaPair)) / (2 * h) : (loss(sigmaNorm, plus) - loss(sigmaNorm, minus)) / (2 * h);
    };
    for (let j = 0; j < n; j++) expect(dNorm[j]).toBeCloseTo(fd('norm', j), 4); // 0: a scale folded into the norm cancels
    for (let j = 0; j < m; j++) expect(dPair[j]).toBeCloseTo(fd('pair', j), 4);
    expect(Math.max(...Array.from(dPair, Math.abs))).toBeGreaterThan(0.1);
  });

  it('finds the norm group and the producing-linear pair, and skips a group whose producer is outside the step', () => {
    const { block } = gainBlock(8, 8, 1, 2, 1);
    const both = transformGroups(block, new Set(['a', 'b']), 'lwc');
    expect(both.groups.map((g) => [g.producer.kind, g.producer.name, g.linears])).toEqual([
      ['norm', 'norm', ['a']],
      ['linear', 'a', ['b']],
    ]);
    expect(layerTransforms(both.groups).get('a')).toEqual({ column: 0, row: 1, unscaleColumns: true });
    const onlyB = transformGroups(block, new Set(['b']), 'lwc');
    expect(onlyB.groups).toEqual([]);
    expect(onlyB.warnings[0]!.message).toMatch(/producer a is not among the step's layers/);
  });

  it('LWC + LET: the folded model (norm edit applied, returned weights) reproduces the best training loss, with scales learned', async () => {
    const count = 4;
    const { g, layers, block, norm, A, B } = gainBlock(32, 48, count, 16, 2);
    const granularity = { type: 'group', size: 16 } as const;
    const messages: string[] = [];
    const result = await learnableWeightClipping({ format: 'int3', granularity, iterations: 60, batchSize: count, equivalentTransform: true }).run({
      layers,
      statistics: () => ({ tokens: 0 }),
      blockGradients: g,
      block,
      progress: (_done, _total, message) => void messages.push(message ?? ''),
    });
    expect(result.warnings).toEqual([]);
    const edits = result.edits ?? [];
    expect(edits.map((e) => [e.kind, 'target' in e ? e.target : ''])).toEqual([['scale-norm', 'norm']]);
    const divisor = (edits[0] as { divisor: Float32Array }).divisor;
    expect(Math.max(...Array.from(divisor, (s) => Math.abs(Math.log(s))))).toBeGreaterThan(1e-3); // the scales moved
    // Stored forms decode to the weights; the references are the transformed float weights diag(1/r) W diag(c).
    const [a, b] = result.layers as [LayerState, LayerState];
    for (const l of [a, b]) expect(Array.from(dequantize(l.quantized!).data)).toEqual(Array.from(l.weight.data));
    const rowScale = Float64Array.from({ length: 48 }, (_, i) => b.reference!.data[i]! / B[i]!); // b's column i = B's * r_i
    for (let i = 0; i < 48; i++) for (let j = 0; j < 32; j += 7) expect(a.reference!.data[i * 32 + j]).toBeCloseTo((A[i * 32 + j]! * divisor[j]!) / rowScale[i]!, 4);
    // Fold the norm edit like the runner does; the block then computes the best iterate's loss on the full batch.
    const gain = norm.weight.slice();
    applyModelEdits(block, edits, 'lwc');
    for (let j = 0; j < 32; j++) expect(norm.weight[j]).toBeCloseTo(gain[j]! / divisor[j]!, 6);
    const folded = await blockMse(g, new Map([['a', a.weight.data as Float32Array], ['b', b.weight.data as Float32Array]]));
    const best = Number(/best ([0-9.e+-]+)/.exec(messages.at(-1)!)![1]);
    expect(Math.abs(folded - best) / best).toBeLessThan(2e-3);
  });

  it('at iteration 0 (scales 1) LWC with the transform is LWC without it, bit for bit; refused with init: gptq', async () => {
    const { g, layers, block } = gainBlock(16, 16, 2, 8, 4);
    const options = { format: 'int4', granularity: { type: 'group', size: 16 } as const, iterations: 1, batchSize: 2 };
    const plain = await learnableWeightClipping(options).run({ layers, statistics: () => ({ tokens: 0 }), blockGradients: g, block });
    const withLet = await learnableWeightClipping({ ...options, equivalentTransform: true }).run({ layers, statistics: () => ({ tokens: 0 }), blockGradients: g, block });
    for (let k = 0; k < 2; k++) expect(Array.from(withLet.layers[k]!.quantized!.codes)).toEqual(Array.from(plain.layers[k]!.quantized!.codes));
    expect(Array.from((withLet.edits![0] as { divisor: Float32Array }).divisor)).toEqual(Array(16).fill(1));
    expect(() => autoRound({ format: 'int4', init: 'gptq', equivalentTransform: true })).toThrow(/equivalentTransform/);
    // Round-to-nearest is iteration 0 of both.
    expect(Array.from(plain.layers[0]!.weight.data)).toEqual(Array.from(dequantize(quantize(layers[0]!.weight, { format: parseFormat('int4'), granularity: options.granularity })).data));
  });
});
