import { readFileSync } from 'node:fs';
import { dequantize, parseFormat, quantize, type LayerState, type Matrix } from '@bitsmith/core';
import { createJsBackend, fillNormal } from '@bitsmith/linalg';
import { llamaQuantizableModel, loadLlamaModel } from '@bitsmith/models';
import { describe, expect, it } from 'vitest';
import type { AllocationProblem } from './allocation-problem.js';
import { baqAllocation, baqTargets } from './baq-allocation.js';
import { bitAllocation } from './bit-allocation.js';
import { allocationProblem, budgetBits, toBitPlan, type BitPlan } from './bit-plan.js';
import { resolveCandidate } from './candidate.js';
import { computeBitPlan } from './compute-bit-plan.js';
import { greedyAllocation } from './greedy-allocation.js';
import { ilpAllocation, mipModel } from './ilp-allocation.js';
import { knapsackAllocation } from './knapsack-allocation.js';
import { hessianTrace, outputError } from './sensitivity.js';
import { CALIBRATION_TEXT, SKIP_SHARED, TINYSTORIES_DIR } from './shared-data.test-support.js';

const backend = createJsBackend();

/** A small seeded generator (LCG) for instances. */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function randomProblem(seed: number, layers: number, optionsPerLayer: number): AllocationProblem {
  const r = lcg(seed);
  const list = Array.from({ length: layers }, (_, l) => {
    const weights = 16 * (1 + Math.floor(r() * 8));
    const scale = 0.1 + r() * 10;
    const options = Array.from({ length: optionsPerLayer }, (_, c) => {
      const bpw = 2 + c + (r() < 0.5 ? 0.5 : 0.25);
      return { bits: Math.round(bpw * weights), error: scale * 2 ** (-2 * bpw) * (0.7 + 0.6 * r()) };
    });
    return { name: `l${l}`, weights, options };
  });
  const total = list.reduce((a, l) => a + l.weights, 0);
  return { layers: list, budgetBits: Math.floor((3 + r() * 1.5) * total) };
}

function bruteForce(problem: AllocationProblem): number {
  let best = Infinity;
  const L = problem.layers.length;
  const visit = (l: number, bits: number, error: number) => {
    if (bits > problem.budgetBits) return;
    if (l === L) {
      best = Math.min(best, error);
      return;
    }
    problem.layers[l]!.options.forEach((o) => visit(l + 1, bits + o.bits, error + o.error));
  };
  visit(0, 0, 0);
  return best;
}

describe('allocators', () => {
  it('the knapsack DP finds the brute-force optimum; ILP gives the same plan; both at most greedy’s error; all within budget', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const problem = randomProblem(seed, 2 + (seed % 5), 2 + (seed % 3));
      const optimum = bruteForce(problem);
      const dp = knapsackAllocation(problem);
      const ilp = await ilpAllocation(problem, { solver: 'branch-and-bound' });
      const greedy = greedyAllocation(problem);
      const baq = baqAllocation(problem);
      expect(dp.exact).toBe(true);
      expect(dp.error).toBeCloseTo(optimum, 12);
      expect(ilp.error).toBeCloseTo(optimum, 12);
      expect(Array.from(ilp.choice)).toEqual(Array.from(dp.choice)); // continuous random errors: the optimum is unique
      expect(dp.error).toBeLessThanOrEqual(greedy.error + 1e-12);
      expect(dp.error).toBeLessThanOrEqual(baq.error + 1e-12);
      for (const a of [dp, ilp, greedy, baq]) expect(a.bits).toBeLessThanOrEqual(problem.budgetBits);
    }
  });

  it('the real HiGHS solver (the highs package, WebAssembly) finds the same optimum as the knapsack DP', async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const problem = randomProblem(seed, 3 + (seed % 5), 2 + (seed % 3));
      const dp = knapsackAllocation(problem);
      const ilp = await ilpAllocation(problem, { solver: 'highs' });
      expect(ilp.solver).toBe('highs');
      expect(ilp.error).toBeCloseTo(dp.error, 9);
      expect(Array.from(ilp.choice)).toEqual(Array.from(dp.choice));
      expect(ilp.bits).toBeLessThanOrEqual(problem.budgetBits);
    }
  });

  it('ilp: the MIP in LP format, and a clear error when HiGHS is asked for but not installed', async () => {
    const problem = randomProblem(3, 2, 2);
    const lp = mipModel(problem);
    expect(lp).toMatch(/^Minimize\n obj: /);
    expect(lp).toContain(' one_0: + x_0_0 + x_0_1 = 1');
    expect(lp).toContain(`<= ${problem.budgetBits}`);
    expect(lp).toMatch(/Binary\n x_0_0 x_0_1 x_1_0 x_1_1\nEnd$/);
    await expect(ilpAllocation(problem, { solver: 'highs', loadHighs: () => Promise.reject(new Error('not found')) })).rejects.toThrow(/highs/);
    // A solver stub that returns the knapsack's solution is read back correctly.
    const dp = knapsackAllocation(problem);
    const columns: Record<string, { Primal: number }> = {};
    problem.layers.forEach((layer, l) => layer.options.forEach((_, c) => (columns[`x_${l}_${c}`] = { Primal: dp.choice[l] === c ? 1 : 0 })));
    const viaStub = await ilpAllocation(problem, { solver: 'highs', loadHighs: async () => ({ solve: () => ({ Status: 'Optimal', Columns: columns }) }) });
    expect(viaStub.solver).toBe('highs');
    expect(Array.from(viaStub.choice)).toEqual(Array.from(dp.choice));
  });

  it('BAQ closed form matches a hand computation and the budget is met exactly by the repair', () => {
    // c = [1, 4], equal sizes: geomean 2, b_i = 3 + 1/2 log2(c_i / 2) = [2.5, 3.5].
    const t = baqTargets(Float64Array.of(1, 4), Float64Array.of(100, 100), 3);
    expect(t[0]).toBeCloseTo(2.5, 12);
    expect(t[1]).toBeCloseTo(3.5, 12);
    // Weighted by sizes: n = [300, 100], c = [1, 16]: log2 geomean = (0 * 300 + 4 * 100) / 400 = 1 -> b = 3 + [-0.5, 1.5].
    const w = baqTargets(Float64Array.of(1, 16), Float64Array.of(300, 100), 3);
    expect(w[0]).toBeCloseTo(2.5, 12);
    expect(w[1]).toBeCloseTo(4.5, 12);
    // Errors following D = c n 2^{-2b} exactly at bits 2, 3, 4: the fit recovers c and the targets round to the plan.
    const layer = (name: string, c: number, n: number) => ({ name, weights: n, options: [2, 3, 4].map((b) => ({ bits: b * n, error: c * n * 2 ** (-2 * b) })) });
    const problem = { layers: [layer('a', 1, 100), layer('b', 16, 100)], budgetBits: 700 };
    const baq = baqAllocation(problem);
    expect(baq.targets[0]).toBeCloseTo(2.5, 9);
    expect(baq.targets[1]).toBeCloseTo(4.5, 9);
    expect(baq.bits).toBeLessThanOrEqual(700);
    expect(Array.from(baq.choice)).toEqual([1, 2]); // 3 and 4 bits: exactly the budget of 3.5 average
    expect(budgetBits({ bitsPerWeight: 3.5 }, 200)).toBe(700);
    expect(budgetBits({ bytes: 100 }, 200)).toBe(800);
  });
});

describe('code-bit budgets', () => {
  const g32 = [2, 3, 4, 8].map((bits) => resolveCandidate({ format: `int${bits}`, granularity: { type: 'group', size: 32 } }));
  it('counts only the codes: the optimum under 3.5 code bits equals a brute force over code bits; the plan reports stored bits', () => {
    // Stored bits carry a 0.5 b/w scale overhead (fp16 per 32 weights); the budget must ignore it.
    const r = lcg(7);
    const layers = [64, 128, 96, 32].map((n, l) => ({
      name: `l${l}`,
      weights: n,
      options: [2, 3, 4, 8].map((b) => ({ bits: (b + 0.5) * n, error: (1 + l * r()) * n * 2 ** (-2 * b) })),
    }));
    const problem = allocationProblem(layers, g32, { codeBitsPerWeight: 3.5 });
    const total = layers.reduce((a, l) => a + l.weights, 0);
    expect(problem.budgetBits).toBe(3.5 * total);
    expect(problem.layers[1]!.options.map((o) => o.bits)).toEqual([2, 3, 4, 8].map((b) => b * 128));
    const dp = knapsackAllocation(problem);
    expect(dp.error).toBeCloseTo(bruteForce(problem), 12);
    const plan = toBitPlan(problem, dp, g32, { budget: { codeBitsPerWeight: 3.5 }, allocator: 'knapsack' });
    expect(plan.averageCodeBitsPerWeight).toBeLessThanOrEqual(3.5);
    // Stored = code + 0.5 for every layer here.
    expect(plan.averageBitsPerWeight).toBeCloseTo(plan.averageCodeBitsPerWeight! + 0.5, 12);
    for (const e of Object.values(plan.layers)) expect(e.bitsPerWeight - parseFloat(e.format.slice(3))).toBeCloseTo(0.5, 12);
    // The same budget in stored bits (3.5) is a tighter problem: at most 3 code bits on average.
    const stored = allocationProblem(layers, g32, { bitsPerWeight: 3.5 });
    expect(knapsackAllocation(stored).error).toBeGreaterThan(dp.error);
  });
  it('rejects candidates of different granularities (their scales would be free)', () => {
    const mixed = [resolveCandidate({ format: 'int3', granularity: { type: 'group', size: 32 } }), resolveCandidate({ format: 'int4' })];
    expect(() => allocationProblem([], mixed, { codeBitsPerWeight: 3.5 })).toThrow(/same granularity.*int3|group|channel/);
    expect(() => budgetBits({ codeBitsPerWeight: 0 }, 10)).toThrow(/budget.codeBitsPerWeight/);
  });
});

describe('sensitivity', () => {
  it('the Hessian trace tr(dW H dW^T) equals the mean squared output error computed directly, and outputError', async () => {
    const rows = 24;
    const columns = 32;
    const tokens = 50;
    const w: Matrix = { dtype: 'float32', shape: [rows, columns], data: Float32Array.from(fillNormal(new Float64Array(rows * columns), 1)) };
    const x: Matrix = { dtype: 'float32', shape: [tokens, columns], data: Float32Array.from(fillNormal(new Float64Array(tokens * columns), 2)) };
    const q = dequantize(quantize(w, { format: parseFormat('int3'), granularity: { type: 'group', size: 16 } }));
    const h = new Float64Array(columns * columns);
    for (let t = 0; t < tokens; t++) for (let i = 0; i < columns; i++) for (let j = 0; j < columns; j++) h[i * columns + j] += (x.data[t * columns + i]! * x.data[t * columns + j]!) / tokens;
    let direct = 0;
    for (let t = 0; t < tokens; t++)
      for (let o = 0; o < rows; o++) {
        let s = 0;
        for (let c = 0; c < columns; c++) s += (w.data[o * columns + c]! - q.data[o * columns + c]!) * x.data[t * columns + c]!;
        direct += (s * s) / tokens;
      }
    expect(await hessianTrace(w, q, h, { backend })).toBeCloseTo(direct, 9);
    expect(outputError(w, q, x)).toBeCloseTo(direct, 4);
  });
});

describe('bitAllocation step', () => {
  const candidates = [2, 3, 4, 8].map((bits) => ({ format: `int${bits}`, granularity: { type: 'group' as const, size: 16 } }));
  it('per block: sets assignments within the budget; with a plan: applies it and warns about missing layers', async () => {
    const layers: LayerState[] = [0, 1, 2].map((i) => ({
      name: `l${i}`,
      weight: { dtype: 'float32', shape: [16, 32], data: Float32Array.from(fillNormal(new Float64Array(512), 10 + i), (v: number) => v * (1 + 3 * i)) },
    }));
    const hessian = new Float64Array(32 * 32);
    for (let i = 0; i < 32; i++) hessian[i * 32 + i] = 1;
    let plan: BitPlan | undefined;
    const step = bitAllocation({ candidates, budget: { bitsPerWeight: 4.0 }, allocator: 'ilp', backend, onPlan: (p) => (plan = p) });
    expect(step.kind).toBe('allocate');
    expect(step.requires).toEqual([{ kind: 'hessian' }]);
    const result = await step.run({ layers, statistics: () => ({ tokens: 1, hessian }) });
    expect(plan!.averageBitsPerWeight).toBeLessThanOrEqual(4.0);
    const bits = result.layers.map((l) => plan!.layers[l.name]!.bitsPerWeight);
    expect(bits.reduce((a, b) => a + b, 0) / 3).toBeLessThanOrEqual(4.0);
    expect(result.layers.every((l) => l.assignment?.label === plan!.layers[l.name]!.label)).toBe(true);
    expect(plan!.layers.l2!.bitsPerWeight).toBeGreaterThanOrEqual(plan!.layers.l0!.bitsPerWeight); // larger weights, larger error
    const json = JSON.parse(JSON.stringify(plan)) as BitPlan;
    delete json.layers.l1;
    const applied = await bitAllocation({ plan: json }).run({ layers, statistics: () => ({ tokens: 0 }) });
    expect(applied.layers[0]!.assignment).toEqual({ format: parseFormat(json.layers.l0!.format), granularity: { type: 'group', size: 16 }, label: json.layers.l0!.label });
    expect(applied.layers[1]!.assignment).toBeUndefined();
    expect(applied.warnings).toHaveLength(1);
    expect(resolveCandidate(candidates[1]!).label).toBe('int3-g16');
  });
});

describe.skipIf(SKIP_SHARED)('computeBitPlan on tinystories-656k', () => {
  it('global plan at 3.5 bits: knapsack and ILP agree, at most greedy’s error, within budget', async () => {
    const loaded = await loadLlamaModel(TINYSTORIES_DIR, { backend });
    const ids = loaded.tokenizer.encode(readFileSync(CALIBRATION_TEXT, 'utf8').slice(0, 6000), { bos: false });
    const sequences = [0, 1, 2, 3].map((i) => [1, ...ids.slice(i * 63, (i + 1) * 63)]);
    const model = llamaQuantizableModel(loaded.graph);
    const candidates = [2, 3, 4, 8].map((bits) => ({ format: `int${bits}`, granularity: { type: 'group' as const, size: 32 } }));
    const plans: Record<string, BitPlan> = {};
    for (const allocator of ['knapsack', 'ilp', 'greedy', 'baq'] as const) {
      plans[allocator] = await computeBitPlan(model, sequences, { candidates, budget: { bitsPerWeight: 3.5 }, allocator, backend });
    }
    const total = (p: BitPlan) => Object.values(p.layers).reduce((a, e) => a + e.error, 0);
    expect(Object.keys(plans.knapsack!.layers)).toHaveLength(14);
    expect(plans.ilp!.layers).toEqual(plans.knapsack!.layers);
    expect(total(plans.knapsack!)).toBeLessThanOrEqual(total(plans.greedy!) * (1 + 1e-12));
    expect(total(plans.knapsack!)).toBeLessThanOrEqual(total(plans.baq!) * (1 + 1e-12));
    for (const p of Object.values(plans)) expect(p.averageBitsPerWeight).toBeLessThanOrEqual(3.5);
  });
});
