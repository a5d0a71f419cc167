import { describe, expect, it } from 'vitest';
import type { Tensor } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { parseLlamaConfig } from './llama-config.js';
import { createLlamaGraph } from './llama-graph.js';
import { llamaQuantizableModel, tokenBatches } from './quantizable-model.js';

async function tinyGraph() {
  const config = parseLlamaConfig({
    model_type: 'llama', hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2,
    num_key_value_heads: 1, vocab_size: 10, tie_word_embeddings: true,
  });
  const shapes: Record<string, number[]> = {
    'model.embed_tokens.weight': [10, 8], 'model.norm.weight': [8],
    'model.layers.0.input_layernorm.weight': [8], 'model.layers.0.post_attention_layernorm.weight': [8],
    'model.layers.0.self_attn.q_proj.weight': [8, 8], 'model.layers.0.self_attn.k_proj.weight': [4, 8],
    'model.layers.0.self_attn.v_proj.weight': [4, 8], 'model.layers.0.self_attn.o_proj.weight': [8, 8],
    'model.layers.0.mlp.gate_proj.weight': [12, 8], 'model.layers.0.mlp.up_proj.weight': [12, 8], 'model.layers.0.mlp.down_proj.weight': [8, 12],
  };
  let seed = 1;
  const weights = new Map<string, Tensor<'float32'>>(
    Object.entries(shapes).map(([n, s]) => [n, { dtype: 'float32', shape: s, data: Float32Array.from({ length: s.reduce((a, b) => a * b) }, () => Math.sin(seed++)) }]),
  );
  return createLlamaGraph(config, (n) => weights.get(n), { backend: createJsBackend() });
}

describe('llamaQuantizableModel', () => {
  it('splits sequences into consecutive batches of whole sequences within the token budget', () => {
    expect(tokenBatches([3, 2, 4, 1, 5], 5)).toEqual([[3, 2], [4, 1], [5]]);
    expect(tokenBatches([7, 2], 5)).toEqual([[7], [2]]);
    expect(tokenBatches([1, 1, 1], 100)).toEqual([[1, 1, 1]]);
  });

  it('runs a block in token batches with the same output as the whole input, and observes every batch', async () => {
    const graph = await tinyGraph();
    const seqs = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [2, 2]];
    const whole = await graph.runBlock(0, graph.embed(seqs));
    const wholeInputs = new Map<string, number[]>();
    await graph.runBlock(0, graph.embed(seqs), { observer: ({ name, input }) => void wholeInputs.set(name, Array.from(input.data)) });
    const model = llamaQuantizableModel(graph, { batchTokens: 5 });
    const seen = new Map<string, number[]>();
    const rows: number[] = [];
    const out = (await model.runBlock(0, await model.embed(seqs), (name, input) => {
      if (name.endsWith('q_proj')) rows.push(input.shape[0]);
      seen.set(name, [...(seen.get(name) ?? []), ...Array.from(input.data)]);
    })) as typeof whole;
    expect(rows).toEqual([5, 4, 2]); // [3, 2], [4], [2]
    expect(out.lengths).toEqual([3, 2, 4, 2]);
    // Sequences are independent: the batches' rows together are the whole input's, up to GEMM rounding.
    for (let i = 0; i < whole.states.data.length; i++) expect(out.states.data[i]).toBeCloseTo(whole.states.data[i]!, 5);
    for (const [name, data] of wholeInputs) {
      const batched = seen.get(name)!;
      expect(batched.length, name).toBe(data.length);
      for (let i = 0; i < data.length; i++) expect(batched[i]).toBeCloseTo(data[i]!, 5);
    }
    expect(() => llamaQuantizableModel(graph, { batchTokens: 0 })).toThrow(/batchTokens: must be a positive integer/);
  });

  it('discardOutput: the observer sees the same inputs, bit for bit, no output is gathered and down_proj\'s product is skipped', async () => {
    const graph = await tinyGraph();
    const seqs = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [2, 2]];
    const model = llamaQuantizableModel(graph, { batchTokens: 5 });
    const observed = async (discardOutput: boolean) => {
      const seen: number[] = [];
      const out = await model.runBlock(0, await model.embed(seqs), (_name, input) => void seen.push(...input.data), { discardOutput });
      return { seen, out: out as Awaited<ReturnType<typeof graph.runBlock>> };
    };
    // Count the products that read the MLP's intermediate (down_proj's): skipped when the output is discarded.
    const backend = graph.backend;
    const sgemm = backend.sgemm.bind(backend);
    let downProducts = 0;
    backend.sgemm = (args) => {
      if (args.k === graph.config.intermediateSize) downProducts++;
      return sgemm(args);
    };
    const kept = await observed(false);
    const keptProducts = downProducts;
    const discarded = await observed(true);
    backend.sgemm = sgemm;
    expect(keptProducts).toBe(3); // one per batch
    expect(downProducts - keptProducts).toBe(0);
    expect(discarded.seen).toEqual(kept.seen);
    expect(kept.out.states.shape).toEqual([11, 8]);
    expect(discarded.out.states.shape).toEqual([0, 8]);
    expect(discarded.out.lengths).toEqual([]);
  });

  it('gives live views, input groups, untying and block-by-block execution equal to the graph', async () => {
    const graph = await tinyGraph();
    const model = llamaQuantizableModel(graph);
    const block = model.blocks[0]!;
    expect(block.linears.map((l) => l.kind)).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    expect(block.inputGroups.map((g) => g.producer.kind)).toEqual(['norm', 'none', 'norm', 'linear']);
    expect(block.norms.map((n) => n.name)).toEqual(['model.layers.0.input_layernorm', 'model.layers.0.post_attention_layernorm']);
    expect(model.tiedEmbeddings).toBe(true);
    model.untieEmbeddings();
    expect(model.tiedEmbeddings).toBe(false);
    expect(model.lmHead.weight.data).toEqual(model.embedding.data);

    const seqs = [[1, 2, 3], [4, 5]];
    const names: string[] = [];
    let h = await model.embed(seqs);
    h = await model.runBlock(0, h, (name) => void names.push(name));
    const logits = await model.logits(h);
    expect(names).toHaveLength(7);
    expect(logits.data).toEqual((await graph.forward(seqs)).data);
    // Writes through the view reach the graph.
    block.linears[0]!.weight = { dtype: 'float32', shape: [8, 8], data: new Float32Array(64) };
    expect(graph.blocks[0]!.selfAttention.qProj.weight.data.every((v) => v === 0)).toBe(true);
  });
});
