import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createJsBackend } from '@bitsmith/linalg';
import { llamaQuantizableModel, loadLlamaGraph } from '@bitsmith/models';
import { foldInputScales } from './fold-scales.js';

const backend = createJsBackend();
const FIXTURES = join(fileURLToPath(import.meta.url), '..', '..', '..', 'models', 'test-fixtures', 'architectures');
const PROMPTS = [[1, 5, 9, 17, 33, 2, 40], [1, 60, 3, 12, 7, 7, 21, 44, 50, 11]];

describe('folding scales into every input group of the mapping table leaves the float model unchanged', () => {
  // Gemma's norms multiply by 1 + w; Qwen2-MoE's post-attention group holds the router, every expert and the shared expert.
  it.each(['gemma2', 'gemma3-text', 'qwen2-moe', 'phi3', 'qwen2'])('%s', async (name) => {
    const graph = await loadLlamaGraph(join(FIXTURES, name), { backend });
    const before = (await graph.forward(PROMPTS)).data.slice();
    const model = llamaQuantizableModel(graph);
    let folded = 0;
    for (const block of model.blocks) {
      for (const group of block.inputGroups) {
        if (group.producer.kind === 'none') continue;
        const n = group.linears[0]!.weight.shape[1];
        foldInputScales(group, Float32Array.from({ length: n }, (_, j) => 0.5 + ((j * 7) % 11) / 5));
        folded++;
      }
    }
    expect(folded).toBeGreaterThanOrEqual(2 * model.blocks.length);
    const after = (await graph.forward(PROMPTS)).data;
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < after.length; i++) {
      diff = Math.max(diff, Math.abs(after[i]! - before[i]!));
      scale = Math.max(scale, Math.abs(before[i]!));
    }
    expect(diff / scale).toBeLessThan(1e-5);
  });
});
