import { describe, expect, it } from 'vitest';
import { createJsBackend } from '@bitsmith/linalg';
import { loadLlamaGraph } from './load-llama-node.js';
import { llamaQuantizableModel } from './quantizable-model.js';
import { SKIP_SHARED, TINYSTORIES_DIR } from './shared-data.test-support.js';

const sequences = [[1, 80, 147, 300, 12, 9, 44], [1, 5, 600, 7]];

describe.skipIf(SKIP_SHARED)('llamaQuantizableModel on tinystories-656k: folding and block-by-block runs', () => {
  it('exposes blocks and input groups whose scale folding leaves the logits unchanged', async () => {
    const backend = createJsBackend();
    const graph = await loadLlamaGraph(TINYSTORIES_DIR, { backend });
    const model = llamaQuantizableModel(graph);
    const before = (await graph.forward(sequences)).data.slice();
    expect(model.blocks).toHaveLength(2);
    const block = model.blocks[0]!;
    expect(block.linears.map((l) => l.kind)).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    expect(block.inputGroups.map((g) => g.producer.kind)).toEqual(['norm', 'none', 'norm', 'linear']); // GQA: 8 query heads, 4 kv heads
    // Fold an arbitrary positive scale through every foldable group of every block.
    for (const b of model.blocks) {
      for (const group of b.inputGroups) {
        if (group.producer.kind === 'none') continue;
        const columns = group.linears[0]!.weight.shape[1];
        const s = Float32Array.from({ length: columns }, (_, j) => 0.5 + ((j * 7919) % 13) / 6);
        if (group.producer.kind === 'norm') {
          const w = group.producer.norm.weight;
          for (let j = 0; j < columns; j++) w[j] = w[j]! / s[j]!;
        } else {
          const p = group.producer.linear;
          const data = p.weight.data.slice();
          for (let j = 0; j < columns; j++) for (let c = 0; c < p.weight.shape[1]; c++) data[j * p.weight.shape[1] + c]! /= s[j]!;
          p.weight = { dtype: 'float32', shape: p.weight.shape, data };
        }
        for (const l of group.linears) {
          const data = l.weight.data.slice();
          for (let r = 0; r < l.weight.shape[0]; r++) for (let j = 0; j < columns; j++) data[r * columns + j]! *= s[j]!;
          l.weight = { dtype: 'float32', shape: l.weight.shape, data };
        }
      }
    }
    const after = (await graph.forward(sequences)).data;
    let maxDiff = 0;
    for (let i = 0; i < after.length; i++) maxDiff = Math.max(maxDiff, Math.abs(after[i]! - before[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it('runs block by block like the graph, reports every linear input, and unties embeddings on request', async () => {
    const graph = await loadLlamaGraph(TINYSTORIES_DIR, { backend: createJsBackend() });
    const model = llamaQuantizableModel(graph);
    const seen: string[] = [];
    let hidden = await model.embed(sequences);
    for (let i = 0; i < model.blocks.length; i++) hidden = await model.runBlock(i, hidden, (name, input) => void seen.push(`${name}:${input.shape[0]}`));
    const logits = await model.logits(hidden);
    const direct = await graph.forward(sequences);
    expect(Array.from(logits.data)).toEqual(Array.from(direct.data));
    expect(seen).toHaveLength(2 * 7);
    expect(seen[0]).toBe('model.layers.0.self_attn.q_proj:11');
    expect(model.tiedEmbeddings).toBe(true);
    model.untieEmbeddings();
    expect(model.tiedEmbeddings).toBe(false);
    expect(Array.from(model.lmHead.weight.data.subarray(0, 8))).toEqual(Array.from(model.embedding.data.subarray(0, 8)));
  });
});
