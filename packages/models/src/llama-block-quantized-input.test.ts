import { describe, expect, it } from 'vitest';
import type { LinearInputQuantizer } from '@bitsmith/core';
import { createJsBackend, createRandom } from '@bitsmith/linalg';
import { architectureFixtureDir } from './architecture-fixtures.test-support.js';
import { llamaBlockBackward, llamaBlockForward } from './llama-block-backward.js';
import { llamaBlockGradients } from './llama-block-gradients.js';
import type { HiddenStates } from './llama-graph.js';
import { loadLlamaGraph } from './load-llama-node.js';

const backend = createJsBackend();

function hiddenStates(lengths: number[], size: number, seed: number): HiddenStates {
  const random = createRandom(seed);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  return { states: { dtype: 'float32', shape: [tokens, size], data: Float32Array.from({ length: tokens * size }, () => 2 * random.uniform() - 1) }, lengths };
}

function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe('the block pass with input quantizers (quantizeInput) and replaced input rows', () => {
  it('an input quantizer x -> c x with adjoint g -> c g is the block with every weight scaled by c (output, weight and input gradients)', async () => {
    // Exact oracle: scaling a linear's input by c is scaling its weight by c. The weight gradient is then dY^T (c X)
    // = c times the scaled block's, and the input gradient passes the adjoint's c, as the scaled weight's backward does.
    const graph = await loadLlamaGraph(architectureFixtureDir('llama3'), { backend });
    const block = graph.blocks[0]!;
    const input = hiddenStates([5, 3], graph.config.hiddenSize, 1);
    const c = 1.5;
    const seen: string[] = [];
    const quantizeInput: LinearInputQuantizer = (name, x, rows, columns) => {
      seen.push(name);
      for (let i = 0; i < rows * columns; i++) x[i]! *= c;
      return (g) => {
        for (let i = 0; i < g.length; i++) g[i]! *= c;
      };
    };
    const scaled = new Map(block.linears.map((l) => [l.name, l.weight.data.map((v) => v * c)] as const));
    const random = createRandom(2);
    const probe = Float32Array.from({ length: input.states.data.length }, () => random.uniform() - 0.5);
    const a = await llamaBlockBackward(graph.config, block, input, backend, () => probe, { quantizeInput });
    const b = await llamaBlockBackward(graph.config, block, input, backend, () => probe, { weights: scaled });
    expect(seen).toEqual(block.linears.map((l) => l.name));
    expect(maxDifference(a.output, b.output)).toBeLessThan(1e-5);
    expect(maxDifference(a.inputGradient, b.inputGradient)).toBeLessThan(1e-5);
    for (const l of block.linears) {
      const ga = a.weightGradients.get(l.name)!;
      const gb = b.weightGradients.get(l.name)!.map((v) => v * c);
      expect(maxDifference(ga, gb), l.name).toBeLessThan(1e-5);
    }
    // Without an adjoint the quantizer is straight-through: the same as an identity adjoint (the per-layer path that
    // adds each linear's own input gradient agrees with the accumulating GEMMs).
    const scaleOnly: LinearInputQuantizer = (_, x, rows, columns) => {
      for (let i = 0; i < rows * columns; i++) x[i]! *= c;
    };
    const ste = await llamaBlockBackward(graph.config, block, input, backend, () => probe, { quantizeInput: scaleOnly });
    const identity = await llamaBlockBackward(graph.config, block, input, backend, () => probe, { quantizeInput: (...args) => (scaleOnly(...args), () => undefined) });
    expect(maxDifference(ste.inputGradient, identity.inputGradient)).toBeLessThan(1e-6);
    expect(maxDifference(ste.inputGradient, a.inputGradient)).toBeGreaterThan(1e-3);
    expect(maxDifference(await llamaBlockForward(graph.config, block, input, backend, { quantizeInput }), a.output)).toBe(0);
  });

  it('BlockGradients takes replacement input rows and the quantizer, and returns the input gradient', async () => {
    const graph = await loadLlamaGraph(architectureFixtureDir('llama3'), { backend });
    const hidden = hiddenStates([4, 6, 2], graph.config.hiddenSize, 3);
    const other = hiddenStates([4, 6, 2], graph.config.hiddenSize, 4);
    const g = llamaBlockGradients(graph, 1, hidden);
    const batch = [2, 0];
    const rows = other.states.data.slice(10 * 32, 12 * 32);
    const replacement = new Float32Array(6 * 32);
    replacement.set(rows, 0);
    replacement.set(other.states.data.subarray(0, 4 * 32), 2 * 32);
    const seed = (o: { data: ArrayLike<number> }) => Float32Array.from(o.data, (v) => 2 * v);
    const r = await g.backward(new Map(), batch, seed, { input: { dtype: 'float32', shape: [6, 32], data: replacement } });
    const direct = await llamaBlockBackward(graph.config, graph.blocks[1]!, { states: { dtype: 'float32', shape: [6, 32], data: replacement }, lengths: [2, 4] }, backend, (y) => y.map((v) => 2 * v), { arithmetic: 'native' }); // the capability's default arithmetic
    expect(Array.from(r.output.data)).toEqual(Array.from(direct.output));
    expect(Array.from(r.inputGradient!.data)).toEqual(Array.from(direct.inputGradient));
    const f = await g.forward(new Map(), batch, { input: { dtype: 'float32', shape: [6, 32], data: replacement } });
    expect(Array.from(f.data)).toEqual(Array.from(direct.output));
    await expect(g.backward(new Map(), batch, seed, { input: { dtype: 'float32', shape: [5, 32], data: replacement.subarray(0, 160) } })).rejects.toThrow(/overrides\.input/);
  });
});
