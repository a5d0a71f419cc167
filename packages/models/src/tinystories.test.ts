import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createJsBackend } from '@bitsmith/linalg';
import { captureCalibration } from './calibration.js';
import { evaluateLanguageModel } from './evaluate.js';
import { perplexityRatioInterval } from './perplexity-interval.js';
import { generateGreedy } from './generate.js';
import { loadLlamaGraph, loadLlamaModel } from './load-llama-node.js';
import type { LlamaModel } from './load-llama.js';
import { SHARED_DIR, SKIP_SHARED, TINYSTORIES_DIR } from './shared-data.test-support.js';

interface Reference {
  prompt: string;
  promptIds: number[];
  greedyIds: number[];
  greedyText: string;
  logitsAtPromptPositions: number[][];
  devHeldout: { file: string; protocol: string; ctx: number; tokens: number; perplexity: number; nll: number };
}

describe.skipIf(SKIP_SHARED)('tinystories-656k against reference.json', () => {
  let model: LlamaModel;
  let reference: Reference;
  beforeAll(async () => {
    model = await loadLlamaModel(TINYSTORIES_DIR, { backend: createJsBackend() });
    reference = JSON.parse(readFileSync(join(TINYSTORIES_DIR, 'reference.json'), 'utf8')) as Reference;
  });

  it('reads the config and both quirks (tied lm_head-only weights, BOS)', () => {
    expect(model.config.numKeyValueHeads).toBe(4);
    expect(model.graph.embedTokens).toBe(model.graph.lmHead.weight);
    expect(model.tokenizer.bosTokenId).toBe(1);
    expect(model.tokenizer.eosTokenId).toBe(2);
  });

  it('tokenizes the prompt to the reference ids', () => {
    expect(model.tokenizer.encode(reference.prompt, { bos: true })).toEqual(reference.promptIds);
    expect(model.tokenizer.decode(reference.greedyIds)).toBe(reference.greedyText);
  });

  it('matches the reference logits at the prompt positions to 1e-4', async () => {
    const logits = await model.graph.forward([reference.promptIds]);
    const vocab = model.config.vocabSize;
    let maxDiff = 0;
    reference.logitsAtPromptPositions.forEach((row, p) => {
      for (let j = 0; j < vocab; j++) maxDiff = Math.max(maxDiff, Math.abs(logits.data[p * vocab + j]! - row[j]!));
    });
    console.log(`max |logit - reference| = ${maxDiff.toExponential(3)}`);
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it('continues the prompt greedily with exactly the reference tokens', async () => {
    const ids = await generateGreedy(model.graph, reference.promptIds, { maxNewTokens: reference.greedyIds.length });
    expect(ids).toEqual(reference.greedyIds);
  });

  it('reproduces the reference perplexity on dev-heldout.txt within 0.1%', async () => {
    const text = readFileSync(join(SHARED_DIR, 'data', 'dev-heldout.txt'), 'utf8');
    const ids = model.tokenizer.encode(text);
    const result = await evaluateLanguageModel(model.graph, ids, { ctx: reference.devHeldout.ctx });
    console.log(`perplexity ${result.perplexity} vs reference ${reference.devHeldout.perplexity}`);
    expect(result.tokens).toBe(reference.devHeldout.tokens);
    expect(Math.abs(result.perplexity / reference.devHeldout.perplexity - 1)).toBeLessThan(1e-3);
    expect(result.protocol).toContain('[BOS] + chunk');
    // Per-window sums add up to the totals; against itself the paired interval is exactly [1, 1].
    const tokens = result.perWindow.tokens.reduce((a, t) => a + t, 0);
    const nll = result.perWindow.nll.reduce((a, v) => a + v, 0);
    expect(tokens).toBe(result.tokens);
    expect(nll / tokens).toBeCloseTo(result.nll, 12);
    const self = perplexityRatioInterval(result, result);
    expect([self.ratio, self.low, self.high, self.standardError]).toEqual([1, 1, 1, 0]);
  });

  it('gives KL 0 and top-1 agreement 1 against itself (a second, independently loaded copy)', async () => {
    const text = readFileSync(join(SHARED_DIR, 'data', 'dev-heldout.txt'), 'utf8');
    const ids = model.tokenizer.encode(text).slice(0, 1000);
    const copy = await loadLlamaGraph(TINYSTORIES_DIR, { backend: createJsBackend() });
    const result = await evaluateLanguageModel(model.graph, ids, { reference: copy, ctx: 128 });
    expect(result.kl).toBe(0);
    expect(result.top1Agreement).toBe(1);
    expect(result.tokens).toBe(1000);
    expect(result.perWindow.kl).toHaveLength(result.windows);
    expect(result.perWindow.kl!.every((v) => v === 0)).toBe(true);
    // Against a perturbed copy: positive KL, and the per-window KL sums add up to it.
    const down = copy.linear('model.layers.0.mlp.down_proj');
    down.weight = { ...down.weight, data: Float32Array.from(down.weight.data, (v) => v * 1.5) };
    const perturbed = await evaluateLanguageModel(model.graph, ids, { reference: copy, ctx: 128 });
    expect(perturbed.kl).toBeGreaterThan(1e-3);
    expect(perturbed.perWindow.kl!.reduce((a, v) => a + v, 0) / perturbed.tokens).toBeCloseTo(perturbed.kl!, 12);
  });

  it('captures calibration inputs block by block and ends with the forward pass hidden states', async () => {
    const text = readFileSync(join(SHARED_DIR, 'data', 'calib.txt'), 'utf8');
    const ids = model.tokenizer.encode(text);
    const sequences = [0, 1, 2].map((i) => [1, ...ids.slice(i * 63, (i + 1) * 63)]);
    const seen: string[] = [];
    const blocksSeen: number[] = [];
    const final = await captureCalibration(model.graph, sequences, {
      batchSize: 2,
      observer: ({ name, input, layer }) => {
        seen.push(name);
        expect(input.shape[1]).toBe(layer.inFeatures);
        expect(input.data.length).toBe(input.shape[0] * input.shape[1]);
      },
      onBlock: (step) => {
        blocksSeen.push(step.index);
        expect(step.input.states.shape).toEqual([192, 128]);
      },
    });
    expect(blocksSeen).toEqual([0, 1]);
    // Two batches (2 + 1 sequences) x 2 blocks x 7 linears.
    expect(seen.length).toBe(28);
    expect(seen.slice(0, 7)).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((k) => `model.layers.0.self_attn.${k}`).concat(['gate_proj', 'up_proj', 'down_proj'].map((k) => `model.layers.0.mlp.${k}`)));
    let hidden = model.graph.embed(sequences);
    for (const block of model.graph.blocks) hidden = await model.graph.runBlock(block.index, hidden);
    expect(final.states.data).toEqual(hidden.states.data);
  });
});
