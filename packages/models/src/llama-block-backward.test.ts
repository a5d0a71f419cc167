import { describe, expect, it } from 'vitest';
import { UnsupportedFormatError, type Tensor } from '@bitsmith/core';
import { createJsBackend, createOrtBackend, createRandom, type Backend } from '@bitsmith/linalg';
import { architectureFixtureDir } from './architecture-fixtures.test-support.js';
import { BlockWorkspace, llamaBlockBackward, llamaBlockForward } from './llama-block-backward.js';
import { llamaBlockGradients, type BlockGradientsMemory } from './llama-block-gradients.js';
import { parseLlamaConfig } from './llama-config.js';
import { llamaQuantizableModel } from './quantizable-model.js';
import { createLlamaGraph, type HiddenStates, type LlamaGraph } from './llama-graph.js';
import { loadLlamaGraph } from './load-llama-node.js';

const backend = createJsBackend();

function random(seed: number): () => number {
  const r = createRandom(seed);
  return () => r.uniform() - 0.5;
}

async function tinyGraph(modelType: 'llama' | 'qwen2' | 'mistral', seed: number, layers = 1): Promise<LlamaGraph> {
  const raw = {
    model_type: modelType,
    vocab_size: 8,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: layers,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 4,
    rms_norm_eps: 1e-5,
    ...(modelType === 'mistral' ? { sliding_window: 3 } : {}),
    ...(modelType === 'qwen2' ? { attention_bias: true } : {}),
  };
  const config = parseLlamaConfig(raw);
  const rnd = random(seed);
  const weights = new Map<string, Tensor<'float32'>>();
  const put = (name: string, shape: number[], scale: number, base = 0): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    weights.set(name, { dtype: 'float32', shape, data: Float32Array.from({ length: n }, () => base + 2 * scale * rnd()) });
  };
  const { hiddenSize: h, intermediateSize: m, numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: d } = config;
  put('model.embed_tokens.weight', [8, h], 1);
  put('model.norm.weight', [h], 0.1, 1);
  put('lm_head.weight', [8, h], 1);
  for (let layer = 0; layer < layers; layer++) {
    const p = `model.layers.${layer}`;
    put(`${p}.input_layernorm.weight`, [h], 0.2, 1);
    put(`${p}.post_attention_layernorm.weight`, [h], 0.2, 1);
    for (const [k, o] of [['q_proj', nh * d], ['k_proj', nkv * d], ['v_proj', nkv * d]] as const) {
      put(`${p}.self_attn.${k}.weight`, [o, h], 1 / Math.sqrt(h));
      if (config.qkvBias) put(`${p}.self_attn.${k}.bias`, [o], 0.3);
    }
    put(`${p}.self_attn.o_proj.weight`, [h, nh * d], 1 / Math.sqrt(nh * d));
    put(`${p}.mlp.gate_proj.weight`, [m, h], 1 / Math.sqrt(h));
    put(`${p}.mlp.up_proj.weight`, [m, h], 1 / Math.sqrt(h));
    put(`${p}.mlp.down_proj.weight`, [h, m], 1 / Math.sqrt(m));
  }
  return createLlamaGraph(config, (n) => weights.get(n), { backend });
}

function hiddenStates(lengths: number[], size: number, seed: number): HiddenStates {
  const rnd = random(seed);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  return { states: { dtype: 'float32', shape: [tokens, size], data: Float32Array.from({ length: tokens * size }, () => 2 * rnd()) }, lengths };
}

/** The largest absolute difference between `actual` and `expected`, over `expected`'s largest magnitude. */
function largestRelativeDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return worst / scale;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

describe('llamaBlockForward', () => {
  it('computes exactly what LlamaGraph.runBlock computes, and uses trial weights without modifying the block', async () => {
    const graph = await tinyGraph('llama', 1);
    const input = hiddenStates([5, 3], 16, 2);
    const reference = await graph.runBlock(0, input);
    const out = await llamaBlockForward(graph.config, graph.blocks[0]!, input, backend);
    expect(Array.from(out)).toEqual(Array.from(reference.states.data));

    const down = graph.blocks[0]!.mlp!.downProj;
    const trial = down.weight.data.map((v) => v * 0.5);
    const before = down.weight.data.slice();
    const changed = await llamaBlockForward(graph.config, graph.blocks[0]!, input, backend, { weights: new Map([[down.name, trial]]) });
    expect(Array.from(down.weight.data)).toEqual(Array.from(before));
    down.weight = { dtype: 'float32', shape: down.weight.shape, data: trial };
    expect(Array.from(changed)).toEqual(Array.from((await graph.runBlock(0, input)).states.data));
  });
});

describe('llamaBlockBackward', () => {
  // The float32 block against central differences along random directions: d/dt L(theta + t D) at t = 0 must equal
  // <grad, D>, for L = sum(output * R) accumulated in float64.
  for (const [modelType, arithmetic] of [['llama', 'reference'], ['qwen2', 'reference'], ['mistral', 'reference'], ['llama', 'native'], ['mistral', 'native']] as const) {
    it(`gradients of every weight, bias, norm gain and the input match directional finite differences (${modelType}, ${arithmetic} arithmetic)`, async () => {
      const graph = await tinyGraph(modelType, 3);
      const block = graph.blocks[0]!;
      const input = hiddenStates([6, 4], 16, 4);
      const rnd = random(5);
      const probe = Float32Array.from({ length: input.states.data.length }, () => 2 * rnd());
      const loss = async (): Promise<number> => dot(await llamaBlockForward(graph.config, block, input, backend, { arithmetic }), probe);
      const result = await llamaBlockBackward(graph.config, block, input, backend, () => probe, { arithmetic });
      expect(dot(result.output, probe)).toBeCloseTo(await loss(), 4);

      const check = async (params: Float32Array, grad: Float32Array, label: string): Promise<void> => {
        const direction = Float32Array.from({ length: params.length }, () => 2 * rnd());
        const keep = params.slice();
        const h = 1e-2;
        for (let i = 0; i < params.length; i++) params[i] = keep[i]! + h * direction[i]!;
        const up = await loss();
        for (let i = 0; i < params.length; i++) params[i] = keep[i]! - h * direction[i]!;
        const down = await loss();
        params.set(keep);
        const numeric = (up - down) / (2 * h);
        const analytic = dot(grad, direction);
        expect(Math.abs(analytic - numeric), `${label}: analytic ${analytic}, numeric ${numeric}`).toBeLessThan(2e-3 * Math.max(1, Math.abs(numeric)));
      };
      for (const l of block.linears) {
        await check(l.weight.data, result.weightGradients.get(l.name)!, l.name);
        if (l.bias) await check(l.bias, result.biasGradients.get(l.name)!, `${l.name}.bias`);
      }
      expect(result.biasGradients.size).toBe(modelType === 'qwen2' ? 3 : 0);
      for (const norm of [block.inputLayernorm, block.postAttentionLayernorm]) await check(norm.weight, result.normGradients.get(norm.name)!, norm.name);
      await check(input.states.data, result.inputGradient, 'input');
    });
  }

  it('gives bit-identical results with a reused workspace, across batches of different sizes and after a larger one', async () => {
    const graph = await tinyGraph('qwen2', 8);
    const block = graph.blocks[0]!;
    const workspace = new BlockWorkspace();
    const rnd = random(9);
    for (const lengths of [[6, 4], [9, 7, 3], [5], [6, 4]]) {
      const input = hiddenStates(lengths, 16, lengths.length);
      const probe = Float32Array.from({ length: input.states.data.length }, () => 2 * rnd());
      const fresh = await llamaBlockBackward(graph.config, block, input, backend, () => probe);
      const reused = await llamaBlockBackward(graph.config, block, input, backend, () => probe, { workspace });
      expect(Array.from(reused.output)).toEqual(Array.from(fresh.output));
      expect(Array.from(reused.inputGradient)).toEqual(Array.from(fresh.inputGradient));
      for (const [name, g] of fresh.weightGradients) expect(Array.from(reused.weightGradients.get(name)!), name).toEqual(Array.from(g));
      for (const [name, g] of fresh.normGradients) expect(Array.from(reused.normGradients.get(name)!), name).toEqual(Array.from(g));
      expect(Array.from(await llamaBlockForward(graph.config, block, input, backend, { workspace }))).toEqual(Array.from(fresh.output));
    }
    expect(workspace.bytes).toBeGreaterThan(0);
  });

  it('after prepare, keeps its arrays in its kernels\' memory and gives the same bits (fresh, lean and transient passes, as sizes change)', async () => {
    const graph = await tinyGraph('qwen2', 13);
    const block = graph.blocks[0]!;
    const workspace = new BlockWorkspace();
    const rnd = random(14);
    expect(workspace.kernels).toBeUndefined();
    for (const lengths of [[6, 4], [9, 7, 3], [5], [9, 7, 3], [6, 4]]) {
      const input = hiddenStates(lengths, 16, lengths.length + 30);
      const probe = Float32Array.from({ length: input.states.data.length }, () => 2 * rnd());
      const full = await llamaBlockBackward(graph.config, block, input, backend, () => probe);
      for (const lean of [false, true]) {
        await workspace.prepare();
        const r = await llamaBlockBackward(graph.config, block, input, backend, () => probe, { workspace, ...(lean ? { weightGradientsOnly: true, transientResults: true } : {}) });
        expect(Array.from(r.output)).toEqual(Array.from(full.output));
        for (const [name, g] of full.weightGradients) expect(Array.from(r.weightGradients.get(name)!), name).toEqual(Array.from(g));
        if (!lean) expect(Array.from(r.inputGradient)).toEqual(Array.from(full.inputGradient));
      }
      await workspace.prepare();
      expect(Array.from(await llamaBlockForward(graph.config, block, input, backend, { workspace }))).toEqual(Array.from(full.output));
    }
    // Weight gradients written into the caller's arrays (a wrong-sized one is passed over).
    const input = hiddenStates([6, 4], 16, 31);
    const probe = Float32Array.from({ length: input.states.data.length }, () => 2 * rnd());
    const full = await llamaBlockBackward(graph.config, block, input, backend, () => probe);
    const [first, second] = block.linears;
    const into = new Map([[first!.name, new Float32Array(first!.outFeatures * first!.inFeatures).fill(NaN)], [second!.name, new Float32Array(3)]]);
    await workspace.prepare();
    const r = await llamaBlockBackward(graph.config, block, input, backend, () => probe, { workspace, weightGradientsOnly: true, transientResults: true, weightGradientsInto: into });
    expect(r.weightGradients.get(first!.name)).toBe(into.get(first!.name));
    expect(r.weightGradients.get(second!.name)).not.toBe(into.get(second!.name));
    for (const [name, g] of full.weightGradients) expect(Array.from(r.weightGradients.get(name)!), name).toEqual(Array.from(g));
    // The tape's arrays share one buffer, the kernels' memory (ordinary arrays would each have their own).
    expect(workspace.kernels).toBeDefined();
    expect(workspace.uninitialised('gate', 4).buffer).toBe(workspace.uninitialised('n1', 4).buffer);
    expect(workspace.float64('silu-exps', 4).buffer).toBe(workspace.uninitialised('n1', 4).buffer);
    // After the first prepare, a new array is placed in the reserved room as it is first asked for (no second prepare
    // needed); one that does not fit the room stays ordinary until a prepare grows the room for it.
    const fresh = new BlockWorkspace({ arenaBytes: 1 << 20 });
    await fresh.prepare();
    const a = fresh.uninitialised('a', 1000);
    expect(a.buffer).toBe(fresh.uninitialised('b', 1000).buffer);
    expect(fresh.float64('c', 1000).buffer).toBe(a.buffer);
    const big = fresh.uninitialised('big', 300_000); // 1.2 MB: more than arenaBytes allows
    expect(big.buffer).not.toBe(a.buffer);
    await fresh.prepare();
    expect(fresh.uninitialised('big', 300_000).buffer).not.toBe(fresh.uninitialised('a', 1000).buffer);
    const roomy = new BlockWorkspace({ arenaBytes: 64 << 20 });
    await roomy.prepare();
    roomy.uninitialised('x', 1000);
    const outside = roomy.uninitialised('huge', 20 << 20); // 80 MB: beyond the room, within nothing
    expect(outside.buffer).not.toBe(roomy.uninitialised('x', 1000).buffer);
    expect(roomy.bytes).toBeGreaterThanOrEqual(4 * (20 << 20));
    // Without an arena (arenaBytes 0) prepare leaves them ordinary.
    const plain = new BlockWorkspace({ arenaBytes: 0 });
    plain.uninitialised('n1', 4);
    await plain.prepare();
    expect(plain.kernels).toBeUndefined();
    expect(plain.uninitialised('gate', 4).buffer).not.toBe(plain.uninitialised('n1', 4).buffer);
    expect(() => new BlockWorkspace({ arenaBytes: -1 })).toThrow(/arenaBytes/);
  });

  it('gives the same weight gradients bit for bit with weightGradientsOnly and transientResults, and leaves the input and norm gradients out', async () => {
    const graph = await tinyGraph('qwen2', 11);
    const block = graph.blocks[0]!;
    const workspace = new BlockWorkspace();
    const rnd = random(12);
    for (const lengths of [[6, 4], [9, 7, 3], [6, 4]]) {
      const input = hiddenStates(lengths, 16, lengths.length + 20);
      const probe = Float32Array.from({ length: input.states.data.length }, () => 2 * rnd());
      const full = await llamaBlockBackward(graph.config, block, input, backend, () => probe);
      const lean = await llamaBlockBackward(graph.config, block, input, backend, () => probe, { workspace, weightGradientsOnly: true, transientResults: true });
      expect(Array.from(lean.output)).toEqual(Array.from(full.output));
      expect(lean.inputGradient.length).toBe(0);
      expect(lean.normGradients.size).toBe(0);
      expect([...lean.weightGradients.keys()].sort()).toEqual([...full.weightGradients.keys()].sort());
      for (const [name, g] of full.weightGradients) expect(Array.from(lean.weightGradients.get(name)!), name).toEqual(Array.from(g));
      for (const [name, g] of full.biasGradients) expect(Array.from(lean.biasGradients.get(name)!), name).toEqual(Array.from(g));
    }
  });

  it('gives the gradient with respect to trial weights, not the block’s own', async () => {
    const graph = await tinyGraph('llama', 7);
    const block = graph.blocks[0]!;
    const input = hiddenStates([4], 16, 8);
    const up = block.mlp!.upProj;
    const trial = up.weight.data.map((v) => -v);
    const probe = new Float32Array(input.states.data.length).fill(1);
    const withTrial = await llamaBlockBackward(graph.config, block, input, backend, () => probe, { weights: new Map([[up.name, trial]]) });
    up.weight = { dtype: 'float32', shape: up.weight.shape, data: trial };
    const swapped = await llamaBlockBackward(graph.config, block, input, backend, () => probe);
    for (const l of block.linears) expect(Array.from(withTrial.weightGradients.get(l.name)!)).toEqual(Array.from(swapped.weightGradients.get(l.name)!));
  });

  it('refuses a layer with a run-time input transform', async () => {
    const graph = await tinyGraph('llama', 9);
    const block = graph.blocks[0]!;
    block.mlp!.downProj.inputTransform = { name: 'hadamard', apply: () => undefined, describe: () => ({}) };
    await expect(llamaBlockBackward(graph.config, block, hiddenStates([3], 16, 1), backend, (y) => y)).rejects.toThrow(UnsupportedFormatError);
  });
});

describe('llamaBlockBackward against PyTorch autograd (fixture from scripts/device/make-block-gradients.py)', () => {
  // Hugging Face LlamaDecoderLayer (transformers 5.17) in float64, GQA 4:2, two sequences of lengths 7 and 5, loss
  // sum(output * probe). Our float32 block must reproduce its output and every gradient to float32 accuracy.
  it('reproduces the output, the input gradient and every weight and norm gradient (reference and native arithmetic)', async () => {
    const { readFile } = await import('node:fs/promises');
    const dir = new URL('../fixtures/', import.meta.url);
    const meta = JSON.parse(await readFile(new URL('block-gradients.json', dir), 'utf8')) as {
      config: Record<string, number>;
      lengths: number[];
      tensors: Record<string, { shape: number[]; offset: number; length: number }>;
    };
    const bytes = await readFile(new URL('block-gradients.bin', dir));
    const values = new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
    const get = (name: string): Float64Array => {
      const t = meta.tensors[name];
      if (!t) throw new Error(`fixture has no tensor ${name}`);
      return values.subarray(t.offset, t.offset + t.length);
    };
    const c = meta.config;
    const config = parseLlamaConfig({
      model_type: 'llama',
      vocab_size: 4,
      hidden_size: c.hiddenSize,
      intermediate_size: c.intermediateSize,
      num_hidden_layers: 1,
      num_attention_heads: c.numAttentionHeads,
      num_key_value_heads: c.numKeyValueHeads,
      head_dim: c.headDim,
      rms_norm_eps: c.rmsNormEps,
      rope_theta: c.ropeTheta,
      tie_word_embeddings: true,
    });
    const graph = await createLlamaGraph(config, (name) => {
      if (name === 'model.embed_tokens.weight') return { dtype: 'float32', shape: [4, c.hiddenSize!], data: new Float32Array(4 * c.hiddenSize!) };
      if (name === 'model.norm.weight') return { dtype: 'float32', shape: [c.hiddenSize!], data: new Float32Array(c.hiddenSize!).fill(1) };
      const t = meta.tensors[name];
      return t ? { dtype: 'float32', shape: t.shape, data: Float32Array.from(get(name)) } : undefined;
    });
    const input = get('input');
    const hidden: HiddenStates = { states: { dtype: 'float32', shape: [input.length / c.hiddenSize!, c.hiddenSize!], data: Float32Array.from(input) }, lengths: meta.lengths };
    const block = graph.blocks[0]!;
    for (const arithmetic of ['reference', 'native'] as const) {
      const result = await llamaBlockBackward(config, block, hidden, backend, () => Float32Array.from(get('probe')), { arithmetic });

      const compare = (actual: ArrayLike<number>, expected: Float64Array, label: string): void => {
        let scale = 0;
        let worst = 0;
        for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
        for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
        expect(actual.length, label).toBe(expected.length);
        expect(scale, label).toBeGreaterThan(0);
        expect(worst / scale, `${label} (${arithmetic}): max error ${worst} at scale ${scale}`).toBeLessThan(2e-5);
      };
      compare(result.output, get('output'), 'output');
      compare(result.inputGradient, get('grad.input'), 'input gradient');
      for (const l of block.linears) compare(result.weightGradients.get(l.name)!, get(`grad.${l.name}.weight`), l.name);
      for (const n of [block.inputLayernorm, block.postAttentionLayernorm]) compare(result.normGradients.get(n.name)!, get(`grad.${n.name}.weight`), n.name);
    }
  });
});

describe('llamaBlockBackward with native arithmetic on onnxruntime (its attention graph)', () => {
  it('stays within float32 rounding of the reference, and its gradients match directional finite differences', async () => {
    const ort: Backend = await createOrtBackend({ threads: 2 });
    try {
      const graph = await tinyGraph('llama', 31);
      const block = graph.blocks[0]!;
      const input = hiddenStates([7, 5], 16, 32);
      const reference = await llamaBlockForward(graph.config, block, input, ort);
      const native = await llamaBlockForward(graph.config, block, input, ort, { arithmetic: 'native' });
      expect(largestRelativeDifference(native, reference)).toBeLessThan(1e-5);
      const rnd = random(33);
      const probe = Float32Array.from({ length: native.length }, () => 2 * rnd());
      const result = await llamaBlockBackward(graph.config, block, input, ort, () => probe, { arithmetic: 'native' });
      const loss = async (): Promise<number> => dot(await llamaBlockForward(graph.config, block, input, ort, { arithmetic: 'native' }), probe);
      for (const l of block.linears) {
        const direction = Float32Array.from({ length: l.weight.data.length }, () => 2 * rnd());
        const keep = l.weight.data.slice();
        const h = 1e-2;
        for (let i = 0; i < keep.length; i++) l.weight.data[i] = keep[i]! + h * direction[i]!;
        const up = await loss();
        for (let i = 0; i < keep.length; i++) l.weight.data[i] = keep[i]! - h * direction[i]!;
        const down = await loss();
        l.weight.data.set(keep);
        const numeric = (up - down) / (2 * h);
        const analytic = dot(result.weightGradients.get(l.name)!, direction);
        expect(Math.abs(analytic - numeric), `${l.name}: analytic ${analytic}, numeric ${numeric}`).toBeLessThan(2e-3 * Math.max(1, Math.abs(numeric)));
      }
    } finally {
      await ort.dispose();
    }
  });
});

describe('llamaBlockGradients (core\'s BlockGradients capability)', () => {
  it('serves inputs and float targets by sequence, keeps the float reference when weights are replaced, and runs trial weights', async () => {
    const graph = await tinyGraph('llama', 21);
    const input = hiddenStates([5, 3, 4], 16, 22);
    const g = llamaBlockGradients(graph, 0, input, { arithmetic: 'reference' });
    expect(g.lengths).toEqual([5, 3, 4]);
    const full = await graph.runBlock(0, input);
    expect(Array.from((await g.target()).data)).toEqual(Array.from(full.states.data));
    // Sequences are independent causal contexts: the target of [2, 0] is rows 8..11 then rows 0..4 of the full output.
    const picked = (await g.target([2, 0])).data;
    expect(Array.from(picked)).toEqual([...full.states.data.subarray(8 * 16, 12 * 16), ...full.states.data.subarray(0, 5 * 16)]);
    expect(Array.from(g.input([1]).data)).toEqual(Array.from(input.states.data.subarray(5 * 16, 8 * 16)));

    const down = graph.blocks[0]!.mlp!.downProj;
    const trial = down.weight.data.map((v) => v * 0.9);
    const fresh = llamaBlockGradients(graph, 0, input, { arithmetic: 'reference' });
    down.weight = { dtype: 'float32', shape: down.weight.shape, data: trial }; // a step replaces the weight object
    expect(Array.from((await fresh.target([1])).data)).toEqual(Array.from(full.states.data.subarray(5 * 16, 8 * 16)));
    const viaCapability = await fresh.backward(new Map([[down.name, trial]]), [1], (y) => new Float32Array(y.data.length).fill(1));
    const direct = await llamaBlockBackward(graph.config, graph.blocks[0]!, { states: fresh.input([1]) as HiddenStates['states'], lengths: [3] }, backend, (y) => new Float32Array(y.length).fill(1));
    expect(Array.from(viaCapability.weightGradients.get(down.name)!)).toEqual(Array.from(direct.weightGradients.get(down.name)!));
    expect(() => g.input([3])).toThrow(/outside/);
  });

  it('computes the float target in batches of whole sequences with the same bits as one forward over all of them', async () => {
    const graph = await tinyGraph('llama', 23);
    const input = hiddenStates([5, 3, 4, 2], 16, 24);
    const full = await graph.runBlock(0, input);
    for (const targetTokens of [1, 4, 8, 9, 10_000]) {
      const g = llamaBlockGradients(graph, 0, input, { targetTokens, arithmetic: 'reference' });
      expect(Array.from((await g.target()).data), `targetTokens ${targetTokens}`).toEqual(Array.from(full.states.data));
    }
    expect(() => llamaBlockGradients(graph, 0, input, { targetTokens: 0 })).toThrow(/targetTokens/);
  });

  it('native arithmetic (the default): targets in batches are the bits of one native forward, within float32 rounding of the reference; the passes agree with it', async () => {
    const graph = await tinyGraph('llama', 25);
    const block = graph.blocks[0]!;
    const input = hiddenStates([5, 3, 4, 2], 16, 26);
    const native = await llamaBlockForward(graph.config, block, input, backend, { arithmetic: 'native' });
    const reference = (await graph.runBlock(0, input)).states.data;
    expect(largestRelativeDifference(native, reference)).toBeLessThan(1e-5);
    expect(Array.from(native)).not.toEqual(Array.from(reference)); // float32 SiLU: not the reference's bits
    for (const targetTokens of [1, 4, 9, 10_000]) {
      const g = llamaBlockGradients(graph, 0, input, { targetTokens });
      expect(Array.from((await g.target()).data), `targetTokens ${targetTokens}`).toEqual(Array.from(native));
    }
    // The capability's passes run the same arithmetic as its target: with the float weights the output is the target.
    const g = llamaBlockGradients(graph, 0, input);
    const weights = new Map(block.linears.map((l) => [l.name, l.weight.data] as const));
    const pass = await g.backward(weights, [2, 0], (y) => new Float32Array(y.data.length).fill(1));
    expect(Array.from(pass.output.data)).toEqual(Array.from((await g.target([2, 0])).data));
    expect(() => llamaBlockGradients(graph, 0, input, { arithmetic: 'fast' as 'native' })).toThrow(/arithmetic/);
    // The quantizable model: native unless it was made with the reference, and a step may ask for either.
    const model = llamaQuantizableModel(graph);
    // Each capability tells its arithmetic (a learned step runs its own loops in it).
    expect(g.arithmetic).toBe('native');
    expect(llamaBlockGradients(graph, 0, input, { arithmetic: 'reference' }).arithmetic).toBe('reference');
    expect(model.blockGradients(0, input).arithmetic).toBe('native');
    expect(model.blockGradients(0, input, { arithmetic: 'reference' }).arithmetic).toBe('reference');
    expect(Array.from((await model.blockGradients(0, input).target()).data)).toEqual(Array.from(native));
    expect(Array.from((await model.blockGradients(0, input, { arithmetic: 'reference' }).target()).data)).toEqual(Array.from(reference));
    const referenceModel = llamaQuantizableModel(graph, { trainingArithmetic: 'reference' });
    expect(Array.from((await referenceModel.blockGradients(0, input).target()).data)).toEqual(Array.from(reference));
    expect(Array.from((await referenceModel.blockGradients(0, input, { arithmetic: 'native' }).target()).data)).toEqual(Array.from(native));
    expect(() => llamaQuantizableModel(graph, { trainingArithmetic: 'fast' as 'native' })).toThrow(/trainingArithmetic/);
  });
});

describe('llamaBlockGradients: release', () => {
  it("hands its workspace and float output's array to the next capability, whose results are a fresh one's bits; later calls are refused", async () => {
    const graph = await tinyGraph('llama', 41, 2);
    const input = hiddenStates([5, 3, 4], 16, 42);
    const weights = new Map(graph.blocks[1]!.linears.map((l) => [l.name, l.weight.data.map((v) => v * 0.9)] as const));
    const seed = (y: { data: ArrayLike<number> }) => Float32Array.from(y.data, (v, i) => v * (i % 3));
    // What block 1's capability gives with memory of its own.
    const fresh = llamaBlockGradients(graph, 1, input);
    const freshTarget = Array.from((await fresh.target()).data);
    const freshPass = await fresh.backward(weights, [2, 0], seed);
    let handed: BlockGradientsMemory | undefined;
    const first = llamaBlockGradients(graph, 0, input, { onRelease: (m) => (handed = m) });
    const firstTarget = (await first.target()).data;
    await first.backward(new Map(), [1], seed, { transientResults: true });
    first.release!();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(handed!.target).toBe(firstTarget);
    await expect(first.target()).resolves.toBeDefined(); // the float output was computed before: nothing runs
    await expect(first.forward(new Map(), [0])).rejects.toThrow(/block 0 was released/);
    await expect(first.backward(new Map(), [0], seed)).rejects.toThrow(/released/);
    const second = llamaBlockGradients(graph, 1, input, { memory: handed! });
    const secondTarget = (await second.target()).data;
    expect(secondTarget).toBe(firstTarget); // the same array, rewritten
    expect(Array.from(secondTarget)).toEqual(freshTarget);
    const pass = await second.backward(weights, [2, 0], seed);
    expect(Array.from(pass.output.data)).toEqual(Array.from(freshPass.output.data));
    for (const [name, g] of freshPass.weightGradients) expect(Array.from(pass.weightGradients.get(name)!), name).toEqual(Array.from(g));
  });

  it('llamaQuantizableModel gives a released capability\'s memory to the next block, not beyond its last block', async () => {
    const graph = await tinyGraph('llama', 43, 3);
    const model = llamaQuantizableModel(graph);
    const input = hiddenStates([4, 4], 16, 44);
    const last = graph.blocks.length - 1;
    const a = model.blockGradients(last - 1, input);
    const aTarget = (await a.target()).data;
    a.release!();
    await new Promise((resolve) => setTimeout(resolve, 0));
    const b = model.blockGradients(last, input);
    const bTarget = (await b.target()).data;
    expect(bTarget).toBe(aTarget);
    expect(Array.from(bTarget)).toEqual(Array.from((await llamaBlockGradients(graph, last, input).target()).data));
    b.release!();
    await new Promise((resolve) => setTimeout(resolve, 0));
    // After the model's last block nothing is kept.
    expect((await model.blockGradients(0, input).target()).data).not.toBe(bTarget);
  });
});

describe('llamaBlockBackward: other architectures', () => {
  it('refuses blocks that do not compute as Llama (Gemma norms and soft-capping, Qwen3 q/k norms, experts)', async () => {
    for (const name of ['gemma2', 'qwen3', 'qwen2-moe']) {
      const graph = await loadLlamaGraph(architectureFixtureDir(name), { backend });
      const input = graph.embed([[1, 5, 9]]);
      await expect(llamaBlockBackward(graph.config, graph.blocks[0]!, input, backend, (y) => y)).rejects.toThrow(/computes differently/);
    }
  });
});
