import { afterAll, describe, expect, it } from 'vitest';
import { matrix, type Tensor } from '@bitsmith/core';
import { createJsBackend, tryCreateWebgpuBackend, type WebgpuBackend } from '@bitsmith/linalg';
import { parseLlamaConfig } from './llama-config.js';
import { createLlamaGraph } from './llama-graph.js';
import { llamaQuantizableModel } from './quantizable-model.js';
import { runBlockOnWebgpu } from './webgpu-block-run.js';

// runBlockOnWebgpu's output-error measurement (the recipe runner's propagation on the GPU) against float64 sums over
// the inputs that the CPU forward's observer sees. Needs a WebGPU adapter; skipped with the reason elsewhere.
const { backend: gpu, reason } = await tryCreateWebgpuBackend({ minGpuWork: 0, threads: 1 });
if (!gpu) console.warn(`[bitsmith] skipping webgpu block-run tests: ${reason}`);

const config = parseLlamaConfig({
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 160,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 50,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 128,
  tie_word_embeddings: false,
});

function weights(seed: number): Map<string, Tensor<'float32'>> {
  let s = seed;
  const rnd = (): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  };
  const w = new Map<string, Tensor<'float32'>>();
  const put = (name: string, shape: number[], base = 0, spread = 1): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    w.set(name, { dtype: 'float32', shape, data: Float32Array.from({ length: n }, () => base + spread * rnd()) });
  };
  const { hiddenSize: h, intermediateSize: m, numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: d } = config;
  put('model.embed_tokens.weight', [config.vocabSize, h]);
  put('model.layers.0.input_layernorm.weight', [h], 1, 0.4);
  put('model.layers.0.post_attention_layernorm.weight', [h], 1, 0.4);
  put('model.layers.0.self_attn.q_proj.weight', [nh * d, h], 0, 0.5);
  put('model.layers.0.self_attn.k_proj.weight', [nkv * d, h], 0, 0.5);
  put('model.layers.0.self_attn.v_proj.weight', [nkv * d, h], 0, 0.5);
  put('model.layers.0.self_attn.o_proj.weight', [h, nh * d], 0, 0.5);
  put('model.layers.0.mlp.gate_proj.weight', [m, h], 0, 0.5);
  put('model.layers.0.mlp.up_proj.weight', [m, h], 0, 0.5);
  put('model.layers.0.mlp.down_proj.weight', [h, m], 0, 0.5);
  put('model.norm.weight', [h], 1);
  put('lm_head.weight', [config.vocabSize, h]);
  return w;
}

describe.skipIf(gpu === undefined)('runBlockOnWebgpu with outputErrors', () => {
  afterAll(() => gpu?.dispose());

  it('gives the CPU forward\'s output and, per measured layer, ||X (W - Q)^T||^2 and ||X W^T||^2 on the first rows (over two chunks) to 1e-4', async () => {
    const w = weights(5);
    const lengths = [45, 30, 20];
    const tokens = 95;
    const rows = 60; // the first chunk (45 rows) and 15 rows of the second (30 + 20)
    const x = Float32Array.from({ length: tokens * config.hiddenSize }, (_, i) => Math.sin(0.37 * i) + 0.5 * Math.cos(1.3 * i));
    const measured = ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.o_proj', 'model.layers.0.mlp.up_proj', 'model.layers.0.mlp.down_proj'];
    // Q: each measured weight rounded to a grid of 1/8 (the block runs with Q; W is the reference).
    const references = new Map<string, Float32Array>();
    const graphs = await Promise.all([createJsBackend(), gpu!].map((backend) => createLlamaGraph(config, (n) => w.get(n), { backend })));
    for (const graph of graphs) {
      for (const l of graph.blocks[0]!.linears) {
        if (!measured.includes(l.name)) continue;
        references.set(l.name, l.weight.data);
        l.weight = matrix(Float32Array.from(l.weight.data, (v) => Math.round(v * 8) / 8), l.outFeatures, l.inFeatures);
      }
    }
    const [cpuGraph, gpuGraph] = graphs as [typeof graphs[0], typeof graphs[0]];
    const want = new Map<string, { e: number; y: number }>();
    const cpu = await cpuGraph.runBlock(0, { states: matrix(x, tokens, config.hiddenSize), lengths }, {
      observer: ({ name, input }) => {
        const layer = cpuGraph.blocks[0]!.linears.find((l) => l.name === name)!;
        const reference = references.get(name);
        if (!reference) return;
        const q = layer.weight.data;
        const [n, k] = [layer.outFeatures, layer.inFeatures];
        let e = 0;
        let y = 0;
        for (let t = 0; t < rows; t++) for (let o = 0; o < n; o++) {
          let se = 0;
          let sy = 0;
          for (let j = 0; j < k; j++) {
            const v = input.data[t * k + j]!;
            se += v * (reference[o * k + j]! - q[o * k + j]!);
            sy += v * reference[o * k + j]!;
          }
          e += se * se;
          y += sy * sy;
        }
        want.set(name, { e, y });
      },
    });
    const result = await runBlockOnWebgpu(gpuGraph, 0, { states: matrix(x, tokens, config.hiddenSize), lengths }, { chunkTokens: 50, outputErrors: { references, rows } });
    let outError = 0;
    let outMax = 0;
    result.output!.states.data.forEach((v, i) => {
      outError = Math.max(outError, Math.abs(v - cpu.states.data[i]!));
      outMax = Math.max(outMax, Math.abs(cpu.states.data[i]!));
    });
    expect(outError / outMax).toBeLessThan(1e-5);
    expect([...result.errors!.keys()].sort()).toEqual([...measured].sort());
    for (const name of measured) {
      const got = result.errors!.get(name)!;
      const expected = want.get(name)!;
      expect(got.rows).toBe(rows);
      expect(expected.e).toBeGreaterThan(0);
      console.log(`[webgpu block run] ${name}: squared error ${got.squaredError.toPrecision(6)} (float64 ${expected.e.toPrecision(6)}), squared reference ${got.squaredReference.toPrecision(6)} (${expected.y.toPrecision(6)})`);
      expect(Math.abs(got.squaredError - expected.e) / expected.e).toBeLessThan(1e-4);
      expect(Math.abs(got.squaredReference - expected.y) / expected.y).toBeLessThan(1e-4);
    }
  });

  it('gives each requested Hessian as the full symmetric X^T X / tokens of the CPU forward\'s inputs (float64 oracle) to 1e-5', async () => {
    const w = weights(7);
    const lengths = [40, 33];
    const tokens = 73;
    const x = Float32Array.from({ length: tokens * config.hiddenSize }, (_, i) => Math.cos(0.21 * i) - 0.3 * Math.sin(2.1 * i));
    const cpuGraph = await createLlamaGraph(config, (n) => w.get(n), { backend: createJsBackend() });
    const inputs = new Map<string, Float32Array>();
    await cpuGraph.runBlock(0, { states: matrix(x, tokens, config.hiddenSize), lengths }, { observer: ({ name, input }) => void inputs.set(name, input.data.slice()) });
    const gpuGraph = await createLlamaGraph(config, (n) => w.get(n), { backend: gpu! });
    const names = ['model.layers.0.self_attn.k_proj', 'model.layers.0.mlp.down_proj'];
    const { hessians } = await runBlockOnWebgpu(gpuGraph, 0, { states: matrix(x, tokens, config.hiddenSize), lengths }, { hessians: new Set(names), output: false, chunkTokens: 40 });
    expect(hessians!.tokens).toBe(tokens);
    expect([...hessians!.hessians.keys()].sort()).toEqual([...names].sort());
    for (const name of names) {
      const input = inputs.get(name)!;
      const n = input.length / tokens;
      const h = hessians!.hessians.get(name)!;
      let error = 0;
      let max = 0;
      for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) {
        let s = 0;
        for (let t = 0; t < tokens; t++) s += input[t * n + a]! * input[t * n + b]!;
        s /= tokens;
        error = Math.max(error, Math.abs(h[a * n + b]! - s));
        max = Math.max(max, Math.abs(s));
        if (a > b) expect(h[a * n + b]).toBe(h[b * n + a]);
      }
      expect(error / max).toBeLessThan(1e-5);
    }
  });

  it('measures nothing and reports zero rows for rows 0; refuses a reference of the wrong size', async () => {
    const w = weights(6);
    const graph = await createLlamaGraph(config, (n) => w.get(n), { backend: gpu! });
    const hidden = { states: matrix(new Float32Array(10 * config.hiddenSize).fill(0.5), 10, config.hiddenSize), lengths: [10] };
    const name = 'model.layers.0.mlp.down_proj';
    const reference = graph.blocks[0]!.linears.find((l) => l.name === name)!.weight.data;
    const none = await runBlockOnWebgpu(graph, 0, hidden, { outputErrors: { references: new Map([[name, reference]]), rows: 0 } });
    expect(none.errors!.get(name)).toEqual({ rows: 0, squaredError: 0, squaredReference: 0 });
    await expect(runBlockOnWebgpu(graph, 0, hidden, { outputErrors: { references: new Map([[name, reference.subarray(1)]]), rows: 4 } })).rejects.toThrow(/expected 64 x 160/);
  });

  it('through the quantizable model: resident Hessians read back as the host ones; the propagation reusing the Hessian pass\'s uploads gives a fresh run\'s output and error terms exactly', async () => {
    const w = weights(8);
    const lengths = [45, 30, 20];
    const tokens = 95;
    const x = Float32Array.from({ length: tokens * config.hiddenSize }, (_, i) => Math.sin(0.29 * i) - 0.4 * Math.cos(0.9 * i));
    const hidden = { states: matrix(x, tokens, config.hiddenSize), lengths };
    const graph = await createLlamaGraph(config, (n) => w.get(n), { backend: gpu! });
    const model = llamaQuantizableModel(graph);
    const block = graph.blocks[0]!;
    const names = new Set(block.linears.map((l) => l.name));
    const host = (await model.blockHessians!(0, hidden, names))!;
    const given = (await model.blockHessians!(0, hidden, names, { resident: true }))!;
    expect(given.tokens).toBe(tokens);
    expect(given.hessians.size).toBe(0);
    for (const name of names) {
      const resident = given.resident!.get(name)!;
      expect(resident.columns).toBe(block.linears.find((l) => l.name === name)!.inFeatures);
      expect(resident.scale).toBe(1 / tokens);
      expect(await resident.read()).toEqual(host.hessians.get(name));
    }
    // As the runner does: the float weights become the references, the layers get new (rounded) weights.
    const references = new Map<string, typeof block.linears[0]['weight']>();
    const floats = new Map<string, Float32Array>();
    for (const l of block.linears) {
      references.set(l.name, l.weight);
      floats.set(l.name, l.weight.data.slice());
      l.weight = matrix(Float32Array.from(l.weight.data, (v) => Math.round(v * 8) / 8), l.outFeatures, l.inFeatures);
    }
    const rows = 60;
    const measured = (await model.blockOutputErrors!(0, hidden, references, rows))!;
    const fresh = await runBlockOnWebgpu(graph, 0, hidden, { outputErrors: { references: floats, rows } });
    expect(measured.output).toBeDefined();
    const out = (measured.output as typeof hidden).states.data;
    let same = true;
    for (let i = 0; i < out.length; i++) if (out[i] !== fresh.output!.states.data[i]) same = false;
    expect(same).toBe(true);
    for (const name of names) expect(measured.errors.get(name)).toEqual(fresh.errors!.get(name));
    model.releaseBlock!(0, new Map());
  });
});
