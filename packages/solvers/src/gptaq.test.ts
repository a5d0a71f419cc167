import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, parseFormat, quantize, type Matrix } from '@bitsmith/core';
import { createJsBackend, createRandom } from '@bitsmith/linalg';
import { gptaq } from './gptaq.js';
import { gptq } from './gptq.js';
import { gptqQuantizeLayer } from './gptq-quantize-layer.js';
import { naiveInverse, randomWeight } from './gptq.test-support.js';

const backend = createJsBackend();

/** Float inputs `X` (correlated channels, an outlier channel) and the quantized model's inputs `X~ = X + noise`. */
function inputs(tokens: number, n: number, seed: number, noise: number): { x: Float64Array; xq: Float64Array } {
  const random = createRandom(seed);
  const x = new Float64Array(tokens * n);
  const xq = new Float64Array(tokens * n);
  for (let t = 0; t < tokens; t++) {
    let previous = 0;
    for (let j = 0; j < n; j++) {
      previous = random.normal() + 0.6 * previous;
      const v = previous * (j % 5 === 2 ? 4 : 1);
      x[t * n + j] = v;
      // Errors of earlier quantized layers: proportional to the signal plus independent noise.
      xq[t * n + j] = v * (1 + noise * random.normal()) + noise * random.normal();
    }
  }
  return { x, xq };
}

/** `A^T B` of two `tokens x n` matrices, float64. */
function crossProduct(a: Float64Array, b: Float64Array, tokens: number, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let t = 0; t < tokens; t++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] += a[t * n + i]! * b[t * n + j]!;
  return out;
}

function statistics(x: Float64Array, xq: Float64Array, tokens: number, n: number): { hessian: Float64Array; cross: Float64Array } {
  const delta = x.map((v, i) => v - xq[i]!);
  return { hessian: crossProduct(xq, xq, tokens, n), cross: crossProduct(delta, xq, tokens, n) };
}

/** Upper factor U of `H^-1 = U^T U` (naive Cholesky of the naive inverse). */
function upperInverseFactor(h: Float64Array, n: number): Float64Array {
  const inv = naiveInverse(h, n);
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = inv[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      l[i * n + j] = i === j ? Math.sqrt(s) : s / l[j * n + j]!;
    }
  }
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) u[i * n + j] = l[j * n + i]!;
  return u;
}

/**
 * The reference GPTAQ column loop (arXiv 2504.02692, the authors' `fasterquant`), naive and in float64, per row with a
 * fixed per-row grid: P = alpha triu(D U^T, 1) U; within a block of `blockSize` columns the later columns move by
 * `-(err_i U[i, j] - w_i P[i, j])` with `w_i` the value before rounding; after the block, the columns beyond it move
 * by the same with the rounded `q_i` in place of `w_i`.
 */
function naiveGptaq(w: Matrix, h: Float64Array, d: Float64Array, alpha: number, blockSize: number, grid: (row: number) => number[]): Float32Array {
  const [rows, n] = w.shape;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h[i * n + i]! / n;
  const hd = Float64Array.from(h);
  for (let i = 0; i < n; i++) hd[i * n + i] += 0.01 * mean;
  const u = upperInverseFactor(hd, n);
  const du = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) for (let k = 0; k < n; k++) du[i * n + j] += d[i * n + k]! * u[j * n + k]!;
  const p = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) p[i * n + j] += alpha * du[i * n + k]! * u[k * n + j]!;
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const row = Float64Array.from(w.data.subarray(r * n, (r + 1) * n));
    const levels = grid(r);
    for (let i1 = 0; i1 < n; i1 += blockSize) {
      const i2 = Math.min(i1 + blockSize, n);
      const errors: number[] = [];
      const rounded: number[] = [];
      for (let i = i1; i < i2; i++) {
        const x = row[i]!;
        let q = levels[0]!;
        for (const g of levels) if (Math.abs(x - g) < Math.abs(x - q)) q = g;
        const e = (x - q) / u[i * n + i]!;
        out[r * n + i] = q;
        errors.push(e);
        rounded.push(q);
        for (let j = i; j < i2; j++) row[j] -= e * u[i * n + j]! - x * p[i * n + j]!;
      }
      for (let j = i2; j < n; j++) for (let i = i1; i < i2; i++) row[j] -= errors[i - i1]! * u[i * n + j]! - rounded[i - i1]! * p[i * n + j]!;
    }
  }
  return out;
}

/** `||Q X~^T - W X^T||^2`: the asymmetric objective GPTAQ minimises (X rows are tokens). */
function asymmetricError(w: Matrix, q: Matrix, x: Float64Array, xq: Float64Array, tokens: number): number {
  const [rows, n] = w.shape;
  let e = 0;
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < rows; r++) {
      let a = 0;
      for (let j = 0; j < n; j++) a += q.data[r * n + j]! * xq[t * n + j]! - w.data[r * n + j]! * x[t * n + j]!;
      e += a * a;
    }
  }
  return e;
}

describe('gptqQuantizeLayer with the GPTAQ term', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: equals the reference column loop (naive float64) for a single block and across blocks`, async () => {
      const rows = 3;
      const n = 8;
      const tokens = 64;
      const w = randomWeight(rows, n, 40 + seed);
      const { x, xq } = inputs(tokens, n, 50 + seed, 0.2);
      const { hessian, cross } = statistics(x, xq, tokens, n);
      const format = parseFormat('int3');
      const rtn = quantize(w, { format, granularity: { type: 'channel' } });
      // int3 symmetric per channel: levels {-4..3} * scale of the row (scales from the original weights).
      const grid = (r: number) => [-4, -3, -2, -1, 0, 1, 2, 3].map((k) => k * rtn.scales[r]!);
      for (const [alpha, blockSize] of [
        [0.25, 8],
        [1, 8],
        [0.25, 3],
        [1, 1],
      ] as const) {
        const expected = naiveGptaq(w, hessian, cross, alpha, blockSize, grid);
        const result = await gptqQuantizeLayer(w, hessian, { format, blockSize, backend }, { cross, alpha });
        expect(Array.from(result.quantized.scales)).toEqual(Array.from(rtn.scales));
        for (let i = 0; i < expected.length; i++) expect(result.weight.data[i]).toBeCloseTo(expected[i]!, 5);
      }
    });
  }

  it('with X_float = X (no cross term) it is GPTQ, code for code', async () => {
    const w = randomWeight(16, 48, 7);
    const { xq } = inputs(200, 48, 8, 0.1);
    const hessian = crossProduct(xq, xq, 200, 48);
    const format = parseFormat('int4');
    const granularity = { type: 'group', size: 16 } as const;
    const plain = await gptqQuantizeLayer(w, hessian, { format, granularity, backend });
    const zero = await gptqQuantizeLayer(w, hessian, { format, granularity, backend }, { cross: new Float64Array(48 * 48) });
    expect(Array.from(zero.quantized.codes)).toEqual(Array.from(plain.quantized.codes));
  });

  it('fits the float model\'s output better than GPTQ: ||Q X~ - W X|| lower on every seed, with and without act-order', async () => {
    const rows = 32;
    const n = 64;
    const tokens = 512;
    for (const seed of [11, 12, 13]) {
      const w = randomWeight(rows, n, seed);
      const { x, xq } = inputs(tokens, n, seed + 100, 0.15);
      const { hessian, cross } = statistics(x, xq, tokens, n);
      for (const actOrder of [false, true]) {
        const options = { format: 'int4', granularity: { type: 'group', size: 16 } as const, actOrder, backend };
        const plain = await gptqQuantizeLayer(w, hessian, options);
        const asym = await gptqQuantizeLayer(w, hessian, options, { cross, alpha: 0.25 });
        const full = await gptqQuantizeLayer(w, hessian, options, { cross, alpha: 1 });
        const e0 = asymmetricError(w, plain.weight, x, xq, tokens);
        expect(asymmetricError(w, asym.weight, x, xq, tokens)).toBeLessThan(e0);
        expect(asymmetricError(w, full.weight, x, xq, tokens)).toBeLessThan(e0);
      }
    }
  });

  it('refuses a cross term of the wrong size, a non-finite one and alpha outside [0, 1]', async () => {
    const w = randomWeight(4, 8, 1);
    const { x, xq } = inputs(32, 8, 2, 0.1);
    const { hessian, cross } = statistics(x, xq, 32, 8);
    await expect(gptqQuantizeLayer(w, hessian, { format: 'int4', backend }, { cross: new Float64Array(7 * 7) })).rejects.toThrow(/cross.*8 x 8/);
    const bad = Float64Array.from(cross);
    bad[5] = Number.NaN;
    await expect(gptqQuantizeLayer(w, hessian, { format: 'int4', backend }, { cross: bad })).rejects.toThrow(/cross term element \[0, 5\] is NaN/);
    await expect(gptqQuantizeLayer(w, hessian, { format: 'int4', backend }, { cross, alpha: 2 })).rejects.toThrow(InvalidArgumentError);
  });
});

describe('gptaq() quantize step', () => {
  it('asks for the Hessian and the float-input cross term, and fails clearly without the cross term', async () => {
    const step = gptaq({ format: 'int4' });
    expect(step.id).toBe('gptaq');
    expect(step.requires).toEqual([{ kind: 'hessian' }, { kind: 'float-input-cross' }]);
    const w = randomWeight(4, 8, 3);
    const { xq } = inputs(32, 8, 4, 0.1);
    const hessian = crossProduct(xq, xq, 32, 8);
    await expect(step.run({ layers: [{ name: 'l', weight: w }], statistics: () => ({ tokens: 32, hessian }) })).rejects.toThrow(/no float-input cross term was observed for layer 'l'/);
  });
});
