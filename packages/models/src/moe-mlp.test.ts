import { describe, expect, it } from 'vitest';
import { createJsBackend } from '@bitsmith/linalg';
import { architectureFixtureDir } from './architecture-fixtures.test-support.js';
import { loadLlamaGraph } from './load-llama-node.js';
import { routeTokens } from './moe-mlp.js';

const backend = createJsBackend();
const PROMPTS = [[1, 5, 9, 17, 33, 2, 40], [1, 60, 3, 12, 7, 7, 21, 44, 50, 11], [1, 30, 31]];

describe('routeTokens', () => {
  it('takes the top-k softmax probabilities (renormalized with normTopK)', () => {
    // Token 0: logits [0, ln 2, ln 3, ln 4] -> softmax [1, 2, 3, 4] / 10; top-2 = experts 3, 2.
    const logits = Float32Array.from([0, Math.log(2), Math.log(3), Math.log(4), 5, 0, 0, 0]);
    const plain = routeTokens(logits, 2, { numExperts: 4, topK: 2, normTopK: false });
    expect(Array.from(plain.experts)).toEqual([3, 2, 0, 1]);
    expect(plain.weights[0]).toBeCloseTo(0.4, 6);
    expect(plain.weights[1]).toBeCloseTo(0.3, 6);
    const e5 = Math.exp(5);
    expect(plain.weights[2]).toBeCloseTo(e5 / (e5 + 3), 6);
    const normed = routeTokens(logits, 2, { numExperts: 4, topK: 2, normTopK: true });
    expect(normed.weights[0]).toBeCloseTo(4 / 7, 6);
    expect(normed.weights[1]).toBeCloseTo(3 / 7, 6);
  });
});

describe('mixture-of-experts calibration (qwen2-moe fixture)', () => {
  it('all-experts: every expert observes every token, the output keeps the true routing; routed: top-k only', async () => {
    const graph = await loadLlamaGraph(architectureFixtureDir('qwen2-moe'), { backend });
    const tokens = PROMPTS.reduce((n, p) => n + p.length, 0);
    const plain = (await graph.forward(PROMPTS)).data;
    const count = async (mode: 'all-experts' | 'routed'): Promise<{ counts: Map<string, number>; logits: Float32Array }> => {
      const counts = new Map<string, number>();
      const logits = (
        await graph.forward(PROMPTS, { moeCalibration: mode, observer: ({ name, input }) => void counts.set(name, (counts.get(name) ?? 0) + input.shape[0]) })
      ).data;
      return { counts, logits };
    };
    const all = await count('all-experts');
    const routed = await count('routed');
    for (const block of graph.blocks) {
      const experts = block.moe!.experts;
      for (const e of experts) for (const l of [e.gateProj, e.upProj, e.downProj]) expect(all.counts.get(l.name)).toBe(tokens);
      const routedTotal = experts.reduce((n, e) => n + routed.counts.get(e.upProj.name)!, 0);
      expect(routedTotal).toBe(tokens * graph.config.moe!.topK);
      expect(routed.counts.get(block.moe!.sharedExpert!.downProj.name)).toBe(tokens);
    }
    for (let i = 0; i < plain.length; i++) {
      expect(Math.abs(all.logits[i]! - plain[i]!)).toBeLessThan(1e-5);
      expect(Math.abs(routed.logits[i]! - plain[i]!)).toBeLessThan(1e-5);
    }
  });
});
