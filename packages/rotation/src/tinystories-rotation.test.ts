import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createJsBackend } from '@bitsmith/linalg';
import { llamaQuantizableModel, loadLlamaModel, type LlamaModel } from '@bitsmith/models';
import { hadamardRotation, type HadamardRotationOptions } from './hadamard-rotation.js';
import { DEV_HELDOUT, SKIP_SHARED, TINYSTORIES_DIR } from './shared-data.test-support.js';
import { applyingResults } from '@bitsmith/core';

/** Runs a step and applies its result to the block or model it ran on, as the runner does (step contract v2). */
const applying = applyingResults;

const backend = createJsBackend();

describe.skipIf(SKIP_SHARED)('QuaRot rotation of tinystories-656k (real Llama model): float outputs unchanged', () => {
  let reference: LlamaModel;
  let sequences: number[][];
  let before: Float32Array;

  beforeAll(async () => {
    reference = await loadLlamaModel(TINYSTORIES_DIR, { backend });
    const ids = reference.tokenizer.encode(readFileSync(DEV_HELDOUT, 'utf8'));
    // Four sequences of dev-heldout.txt: [BOS] + 63 tokens each, from different places in the text.
    sequences = [0, 1, 2, 3].map((i) => [reference.tokenizer.bosTokenId ?? 1, ...ids.slice(i * 997, i * 997 + 63)]);
    before = (await reference.graph.forward(sequences)).data.slice();
  });

  const cases: [string, HadamardRotationOptions][] = [
    ['randomized Hadamard, online Hadamard on down_proj (384 = 12 x 32), value Hadamard', { rotation: 'hadamard', seed: 0 }],
    ['randomized Hadamard, no online Hadamard, no value Hadamard', { rotation: 'hadamard', seed: 1, onlineHadamard: false, valueHadamard: false }],
    ['random orthogonal, online Hadamard', { rotation: 'orthogonal', seed: 2 }],
    ['random orthogonal, no online Hadamard', { rotation: 'orthogonal', seed: 3, onlineHadamard: false }],
  ];

  it.each(cases)('%s: max |logit difference| < 1e-4', async (_, options) => {
    const { graph } = await loadLlamaModel(TINYSTORIES_DIR, { backend });
    const model = llamaQuantizableModel(graph);
    expect(model.tiedEmbeddings).toBe(true);
    const result = await applying(hadamardRotation({ ...options, backend })).run({ layers: [], statistics: () => ({ tokens: 0 }), model });
    expect(result.warnings).toEqual([]);
    expect(model.tiedEmbeddings).toBe(false);
    for (const block of graph.blocks) {
      expect(block.mlp!.downProj.inputTransform?.name).toBe(options.onlineHadamard === false ? undefined : 'hadamard');
      expect(Array.from(block.inputLayernorm.weight).every((w) => w === 1)).toBe(true);
    }
    const after = (await graph.forward(sequences)).data;
    let maxDiff = 0;
    let maxLogit = 0;
    for (let i = 0; i < after.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(after[i]! - before[i]!));
      maxLogit = Math.max(maxLogit, Math.abs(before[i]!));
    }
    console.log(`tinystories-656k ${_}: max |logit diff| = ${maxDiff.toExponential(3)} over ${after.length} logits (max |logit| ${maxLogit.toFixed(2)})`);
    expect(maxDiff).toBeLessThan(1e-4);
  });
});
