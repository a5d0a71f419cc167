import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { llamaQuantizableModel, loadLlamaGraph } from '@bitsmith/models';
import { rotateModel } from './rotate-model.js';

const backend = createJsBackend();
const FIXTURES = join(fileURLToPath(import.meta.url), '..', '..', '..', 'models', 'test-fixtures', 'architectures');
const PROMPTS = [[1, 5, 9, 17, 33, 2, 40], [1, 60, 3, 12, 7, 7, 21, 44, 50, 11]];

describe('rotation reads the architecture mapping table (tiny transformers checkpoints)', () => {
  // Residual rotation + online Hadamards on the mapping's MLP outputs + value Hadamard; the float outputs stay.
  it.each(['llama3', 'smollm2', 'qwen2', 'qwen3', 'phi3', 'qwen2-moe'])('%s: logits unchanged (relative 1e-5)', async (name) => {
    const graph = await loadLlamaGraph(join(FIXTURES, name), { backend });
    const before = (await graph.forward(PROMPTS)).data.slice();
    const model = llamaQuantizableModel(graph);
    const router = graph.blocks[0]!.moe?.router.weight.data.slice();
    const { warnings } = await rotateModel(model, { seed: 3, rotation: name === 'smollm2' ? 'orthogonal' : 'hadamard', backend });
    expect(warnings).toEqual([]);
    const after = (await graph.forward(PROMPTS)).data;
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < after.length; i++) {
      diff = Math.max(diff, Math.abs(after[i]! - before[i]!));
      scale = Math.max(scale, Math.abs(before[i]!));
    }
    expect(diff / scale).toBeLessThan(1e-5);
    // Every MLP output got its online Hadamard: each expert's and the shared expert's down_proj in the MoE.
    const downs = graph.blocks.flatMap((b) => b.linears.filter((l) => l.kind === 'down_proj'));
    expect(downs.length).toBe(name === 'qwen2-moe' ? 2 * 5 : 2);
    for (const l of downs) expect(l.inputTransform?.name).toBe('hadamard');
    // The router was rotated with the other readers (the routing, hence the logits, would change otherwise).
    if (router) expect(Array.from(graph.blocks[0]!.moe!.router.weight.data)).not.toEqual(Array.from(router));
  });

  it('refuses Gemma (its post-norms sit between branch and residual) before any write; residual: false still works', async () => {
    for (const name of ['gemma2', 'gemma3-text']) {
      const graph = await loadLlamaGraph(join(FIXTURES, name), { backend });
      const model = llamaQuantizableModel(graph);
      const embedding = model.embedding;
      const error = await rotateModel(model, { backend }).catch((e: unknown) => e);
      expect(InvalidArgumentError.isInstance(error)).toBe(true);
      expect(String(error)).toMatch(/post_attention_layernorm.*residual add/);
      expect(model.embedding).toBe(embedding);
      const before = (await graph.forward(PROMPTS)).data.slice();
      await rotateModel(model, { residual: false, onlineHadamard: 'all', backend });
      const after = (await graph.forward(PROMPTS)).data;
      let diff = 0;
      for (let i = 0; i < after.length; i++) diff = Math.max(diff, Math.abs(after[i]! - before[i]!));
      expect(diff).toBeLessThan(1e-4);
    }
  });
});
