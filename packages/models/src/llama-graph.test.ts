import { describe, expect, it } from 'vitest';
import type { Tensor } from '@bitsmith/core';
import { createBackend, createJsBackend, type Backend } from '@bitsmith/linalg';
import { parseLlamaConfig, type LlamaConfig } from './llama-config.js';
import { createLlamaGraph } from './llama-graph.js';
import { ModelFileError } from './model-file-error.js';
import { readSafetensorsBytes } from './safetensors-reader.js';
import { encodeSafetensors } from './safetensors-writer.js';

const backend = createJsBackend();

function randomWeights(config: LlamaConfig, seed: number): Map<string, Tensor<'float32'>> {
  let s = seed;
  const rnd = (): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  };
  const w = new Map<string, Tensor<'float32'>>();
  const put = (name: string, shape: number[], base = 0): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    w.set(name, { dtype: 'float32', shape, data: Float32Array.from({ length: n }, () => base + rnd()) });
  };
  const { hiddenSize: h, intermediateSize: m, vocabSize: v, numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: d } = config;
  put('model.embed_tokens.weight', [v, h]);
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    put(`${p}.input_layernorm.weight`, [h], 1);
    put(`${p}.post_attention_layernorm.weight`, [h], 1);
    for (const [k, o] of [['q_proj', nh * d], ['k_proj', nkv * d], ['v_proj', nkv * d]] as const) {
      put(`${p}.self_attn.${k}.weight`, [o, h]);
      if (config.qkvBias) put(`${p}.self_attn.${k}.bias`, [o]);
    }
    put(`${p}.self_attn.o_proj.weight`, [h, nh * d]);
    put(`${p}.mlp.gate_proj.weight`, [m, h]);
    put(`${p}.mlp.up_proj.weight`, [m, h]);
    put(`${p}.mlp.down_proj.weight`, [h, m]);
  }
  put('model.norm.weight', [h], 1);
  if (!config.tieWordEmbeddings) put('lm_head.weight', [v, h]);
  return w;
}

/** Independent float64 oracle of the HF Llama forward for one sequence, written from the equations. */
function oracleLogits(config: LlamaConfig, w: Map<string, Tensor<'float32'>>, ids: number[]): Float64Array {
  const g = (n: string): Float32Array => w.get(n)!.data;
  const { hiddenSize: H, vocabSize: V, numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: d, rmsNormEps: eps } = config;
  const T = ids.length;
  const lin = (x: number[][], name: string, out: number, inp: number, bias?: Float32Array): number[][] =>
    x.map((row) => Array.from({ length: out }, (_, o) => row.reduce((s, xv, j) => s + xv * g(name)[o * inp + j]!, bias ? bias[o]! : 0)));
  const norm = (x: number[][], wn: Float32Array): number[][] =>
    x.map((row) => {
      const r = Math.sqrt(row.reduce((s, v) => s + v * v, 0) / row.length + eps);
      return row.map((v, j) => (v / r) * wn[j]!);
    });
  const rope = (x: number[][], heads: number): number[][] =>
    x.map((row, p) => {
      const out = row.slice();
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < d / 2; i++) {
          const a = row[h * d + i]!;
          const b = row[h * d + i + d / 2]!;
          const ang = p * config.ropeTheta ** (-(2 * i) / d);
          out[h * d + i] = a * Math.cos(ang) - b * Math.sin(ang);
          out[h * d + i + d / 2] = b * Math.cos(ang) + a * Math.sin(ang);
        }
      return out;
    });
  const embed = w.get('model.embed_tokens.weight')?.data ?? g('lm_head.weight');
  let x = ids.map((id) => Array.from(embed.subarray(id * H, (id + 1) * H)));
  for (let l = 0; l < config.numHiddenLayers; l++) {
    const p = `model.layers.${l}`;
    const n = norm(x, g(`${p}.input_layernorm.weight`));
    const bias = (k: string): Float32Array | undefined => w.get(`${p}.self_attn.${k}.bias`)?.data;
    const q = rope(lin(n, `${p}.self_attn.q_proj.weight`, nh * d, H, bias('q_proj')), nh);
    const k = rope(lin(n, `${p}.self_attn.k_proj.weight`, nkv * d, H, bias('k_proj')), nkv);
    const v = lin(n, `${p}.self_attn.v_proj.weight`, nkv * d, H, bias('v_proj'));
    const att = Array.from({ length: T }, () => new Array<number>(nh * d).fill(0));
    for (let h = 0; h < nh; h++) {
      const kh = Math.floor(h / (nh / nkv));
      for (let i = 0; i < T; i++) {
        const sc = Array.from({ length: i + 1 }, (_, j) => q[i]!.slice(h * d, h * d + d).reduce((s, qv, t) => s + qv * k[j]![kh * d + t]!, 0) / Math.sqrt(d));
        const m = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < d; t++) att[i]![h * d + t] = e.reduce((s, ev, j) => s + (ev / z) * v[j]![kh * d + t]!, 0);
      }
    }
    const o = lin(att, `${p}.self_attn.o_proj.weight`, H, nh * d);
    x = x.map((row, i) => row.map((val, j) => val + o[i]![j]!));
    const n2 = norm(x, g(`${p}.post_attention_layernorm.weight`));
    const gate = lin(n2, `${p}.mlp.gate_proj.weight`, config.intermediateSize, H);
    const up = lin(n2, `${p}.mlp.up_proj.weight`, config.intermediateSize, H);
    const act = gate.map((row, i) => row.map((gv, j) => (gv / (1 + Math.exp(-gv))) * up[i]![j]!));
    const down = lin(act, `${p}.mlp.down_proj.weight`, H, config.intermediateSize);
    x = x.map((row, i) => row.map((val, j) => val + down[i]![j]!));
  }
  const head = w.get('lm_head.weight')?.data ?? embed;
  const out = norm(x, g('model.norm.weight'));
  const logits = new Float64Array(T * V);
  out.forEach((row, i) => {
    for (let vv = 0; vv < V; vv++) logits[i * V + vv] = row.reduce((s, xv, j) => s + xv * head[vv * H + j]!, 0);
  });
  return logits;
}

const baseConfig = {
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 20,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 64,
};

describe('LlamaGraph against an independent float64 oracle', () => {
  for (const [label, raw] of [
    ['llama, untied', { ...baseConfig, model_type: 'llama', tie_word_embeddings: false }],
    ['qwen2 with q/k/v biases, tied', { ...baseConfig, model_type: 'qwen2', tie_word_embeddings: true }],
  ] as const) {
    it(`computes logits for a batch of two sequences (${label})`, async () => {
      const config = parseLlamaConfig(raw);
      const weights = randomWeights(config, 7);
      const graph = await createLlamaGraph(config, (n) => weights.get(n), { backend });
      const seqs = [[1, 5, 9, 3, 3, 17], [2, 4]];
      const logits = await graph.forward(seqs);
      let row = 0;
      for (const s of seqs) {
        const expected = oracleLogits(config, weights, s);
        expected.forEach((e, i) => expect(logits.data[row * config.vocabSize + i]).toBeCloseTo(e, 4));
        row += s.length;
      }
      const last = await graph.forward(seqs, { lastTokenOnly: true });
      expect(last.shape).toEqual([2, config.vocabSize]);
      expect(last.data.subarray(0, config.vocabSize)).toEqual(logits.data.subarray(5 * config.vocabSize, 6 * config.vocabSize));
    });
  }

  it('uses lm_head.weight as the embedding when only it is stored (tied)', async () => {
    const config = parseLlamaConfig({ ...baseConfig, model_type: 'llama', tie_word_embeddings: true });
    const weights = randomWeights(config, 3);
    weights.set('lm_head.weight', weights.get('model.embed_tokens.weight')!);
    weights.delete('model.embed_tokens.weight');
    const graph = await createLlamaGraph(config, (n) => weights.get(n), { backend });
    expect(graph.embedTokens).toBe(graph.lmHead.weight);
    expect(graph.embedTokens.data).toBe(weights.get('lm_head.weight')!.data);
    // The graph's tensors round-trip through safetensors into an equal graph.
    const file = readSafetensorsBytes(encodeSafetensors(graph.tensors()));
    expect(file.has('model.embed_tokens.weight')).toBe(true);
    expect(file.has('lm_head.weight')).toBe(false);
  });

  it('names a missing or misshapen tensor', async () => {
    const config = parseLlamaConfig({ ...baseConfig, model_type: 'llama' });
    const weights = randomWeights(config, 3);
    weights.delete('model.layers.1.mlp.up_proj.weight');
    await expect(createLlamaGraph(config, (n) => weights.get(n), { backend }, 'x.safetensors')).rejects.toThrow(/x\.safetensors: missing tensor "model\.layers\.1\.mlp\.up_proj\.weight"/);
    const w2 = randomWeights(config, 3);
    w2.set('model.norm.weight', { dtype: 'float32', shape: [3], data: new Float32Array(3) });
    await expect(createLlamaGraph(config, (n) => w2.get(n), { backend })).rejects.toThrow(ModelFileError);
  });

  it('runs block by block with observers, input transforms and replaced weights', async () => {
    const config = parseLlamaConfig({ ...baseConfig, model_type: 'llama' });
    const weights = randomWeights(config, 11);
    const graph = await createLlamaGraph(config, (n) => weights.get(n), { backend });
    const seqs = [[1, 2, 3, 4]];
    const reference = await graph.forward(seqs);
    // An input transform that negates down_proj's input, with the weight negated to match: same function.
    const down = graph.blocks[0]!.mlp!.downProj;
    down.weight = { ...down.weight, data: down.weight.data.map((x) => -x) };
    down.inputTransform = { name: 'negate', apply: (x) => void x.forEach((v, i) => (x[i] = -v)), describe: () => ({ kind: 'negate' }) };
    const names: string[] = [];
    let downInput: Float32Array | undefined;
    let hidden = graph.embed(seqs);
    for (const block of graph.blocks) {
      hidden = await graph.runBlock(block.index, hidden, {
        observer: ({ name, input }) => {
          names.push(name);
          if (name === down.name) downInput = input.data.slice();
        },
      });
    }
    const logits = await graph.head(hidden);
    logits.data.forEach((v, i) => expect(v).toBeCloseTo(reference.data[i]!, 4));
    expect(names).toHaveLength(14);
    expect(names[6]).toBe('model.layers.0.mlp.down_proj');
    expect(downInput!.length).toBe(4 * config.intermediateSize);
    // The observer saw the transformed input: SwiGLU outputs negated.
    expect(downInput!.some((v) => v !== 0)).toBe(true);
    // A replacement weight of the wrong shape is rejected with a clear message.
    down.weight = { dtype: 'float32', shape: [2, 2], data: new Float32Array(4) };
    await expect(graph.forward(seqs)).rejects.toThrow(/down_proj\.weight.*keep the shape/);
  });
});

describe('LlamaGraph scratch buffers', () => {
  it('runBlock calls overlapping in time (sharing no scratch) give what one at a time gives, and releaseScratch changes nothing', async () => {
    const config = parseLlamaConfig({ ...baseConfig, model_type: 'llama' });
    const weights = randomWeights(config, 5);
    const graph = await createLlamaGraph(config, (n) => weights.get(n), { backend });
    const a = graph.embed([[1, 2, 3, 4, 5], [6, 7]]);
    const b = graph.embed([[9, 8, 7]]);
    const alone = [(await graph.runBlock(0, a)).states.data, (await graph.runBlock(0, b)).states.data];
    // An observer that yields makes the two calls interleave at every linear layer.
    const observer = () => new Promise<void>((resolve) => setTimeout(resolve, 0));
    const together = await Promise.all([graph.runBlock(0, a, { observer }), graph.runBlock(0, b, { observer })]);
    expect(Array.from(together[0]!.states.data)).toEqual(Array.from(alone[0]!));
    expect(Array.from(together[1]!.states.data)).toEqual(Array.from(alone[1]!));
    // Outputs are never scratch: a later block does not overwrite an earlier block's output.
    const first = await graph.runBlock(0, a);
    const kept = first.states.data.slice();
    await graph.runBlock(1, first);
    expect(Array.from(first.states.data)).toEqual(Array.from(kept));
    graph.releaseScratch();
    expect(Array.from((await graph.runBlock(0, a)).states.data)).toEqual(Array.from(alone[0]!));
  });
});

describe('LlamaGraph.forward buffers', () => {
  it('kept hidden-state buffers and a caller logits buffer give the logits of separate block runs, across sizes and overlapping calls', async () => {
    const config = parseLlamaConfig({ ...baseConfig, model_type: 'llama' });
    const weights = randomWeights(config, 13);
    const graph = await createLlamaGraph(config, (n) => weights.get(n), { backend });
    const byBlocks = async (seqs: number[][]): Promise<number[]> => {
      let h = graph.embed(seqs);
      for (const block of graph.blocks) h = await graph.runBlock(block.index, h);
      return Array.from((await graph.head(h)).data);
    };
    const big = [[1, 2, 3, 4, 5, 6, 7], [8, 9, 10]];
    const small = [[3, 1]];
    const logits = new Float32Array(64 * config.vocabSize).fill(Number.NaN);
    for (const seqs of [big, small, big]) {
      const out = await graph.forward(seqs, { logits });
      expect(out.data.buffer).toBe(logits.buffer);
      expect(Array.from(out.data)).toEqual(await byBlocks(seqs));
    }
    // Two forwards at once: the second finds the buffers taken and allocates its own.
    const [a, b] = await Promise.all([graph.forward(big), graph.forward(small)]);
    expect(Array.from(a.data)).toEqual(await byBlocks(big));
    expect(Array.from(b.data)).toEqual(await byBlocks(small));
    await expect(graph.forward(big, { logits: new Float32Array(3) })).rejects.toThrow(/out/);
  });
});

let ort: Backend | undefined;
try {
  ort = await createBackend('ort');
} catch {
  ort = undefined;
}

describe.skipIf(!ort)('LlamaGraph.forward with packed weights (ort backend, constantB)', () => {
  it('matches the plain js forward over 2,400 tokens, and follows weights edited in place or replaced', async () => {
    const config = parseLlamaConfig({ ...baseConfig, model_type: 'qwen2', tie_word_embeddings: true, max_position_embeddings: 1024 });
    const weights = randomWeights(config, 5);
    // Both graphs read the same weight arrays: an edit of one is an edit of the other.
    const packed = await createLlamaGraph(config, (n) => weights.get(n), { backend: ort! });
    const plain = await createLlamaGraph(config, (n) => weights.get(n), { backend });
    const seqs = Array.from({ length: 4 }, (_, s) => Array.from({ length: 600 }, (_, i) => (i * 7 + s * 3) % config.vocabSize));
    const agree = async (): Promise<void> => {
      const ours = (await packed.forward(seqs)).data;
      const ref = (await plain.forward(seqs)).data;
      let worst = 0;
      for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - ref[i]!) / (1 + Math.abs(ref[i]!)));
      expect(worst).toBeLessThan(1e-4);
    };
    await agree();
    await agree();
    packed.blocks[0]!.selfAttention.qProj.weight.data[3]! += 2; // in place, in a weight packed by the first calls
    packed.blocks[1]!.mlp!.downProj.weight.data.fill(0.1, 0, 50);
    await agree();
    const up = packed.blocks[1]!.mlp!.upProj;
    up.weight = { dtype: 'float32', shape: up.weight.shape, data: up.weight.data.map((v) => -v) };
    plain.blocks[1]!.mlp!.upProj.weight = up.weight;
    await agree();
    packed.embedTokens.data[0]! += 1; // the tied head
    await agree();
  });
});

describe.skipIf(!ort)('LlamaGraph reference arithmetic (ort backend)', () => {
  it('runBlock with reference equals the blocks on attentionWithSgemm, bit for bit; forward runs it in blocks with an input transform', async () => {
    const config = parseLlamaConfig({ ...baseConfig, model_type: 'llama', max_position_embeddings: 1024 });
    const weights = randomWeights(config, 9);
    const graph = await createLlamaGraph(config, (n) => weights.get(n), { backend: ort! });
    const seqs = Array.from({ length: 3 }, (_, s) => Array.from({ length: 300 }, (_, i) => (i * 5 + s * 11) % config.vocabSize));
    const viaBlocks = async (reference: boolean): Promise<Float32Array> => {
      let h = graph.embed(seqs);
      for (const block of graph.blocks) h = await graph.runBlock(block.index, h, { reference });
      return (await graph.head(h)).data;
    };
    // The reference on the JavaScript loops: ort's attention and activation swapped for attentionWithSgemm on ort's
    // sgemm with the JavaScript softmax, and gatedActivationLoop.
    const { attentionWithSgemm, gatedActivationLoop } = await import('@bitsmith/linalg');
    const loops: Backend = {
      ...ort!,
      sgemm: (g) => ort!.sgemm(g),
      attention: (a) => attentionWithSgemm((g) => ort!.sgemm(g), a, undefined, null),
      gatedActivation: async (a) => gatedActivationLoop(a),
    };
    const looped = await createLlamaGraph(config, (n) => weights.get(n), { backend: loops });
    let h = looped.embed(seqs);
    for (const block of looped.blocks) h = await looped.runBlock(block.index, h);
    const want = (await looped.head(h)).data;
    const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
    expect(same(await viaBlocks(true), want)).toBe(true);
    // An identity input transform on one layer (as simulated activation quantization installs) makes forward take the reference.
    const down = graph.blocks[1]!.mlp!.downProj;
    down.inputTransform = { name: 'identity', apply: () => undefined, describe: () => ({ kind: 'identity' }) };
    const forwardOut = (await graph.forward(seqs)).data;
    let h2 = graph.embed(seqs);
    for (const block of graph.blocks) h2 = await graph.runBlock(block.index, h2, { reference: block.index === 1 });
    expect(same(forwardOut, (await graph.head(h2)).data)).toBe(true);
  });
});

describe('parseLlamaConfig', () => {
  it('reads families, biases, GQA, head_dim and rope scaling', () => {
    const q = parseLlamaConfig({ ...baseConfig, model_type: 'qwen2' });
    expect([q.qkvBias, q.outputBias, q.headDim, q.slidingWindow]).toEqual([true, false, 4, undefined]);
    const m = parseLlamaConfig({ ...baseConfig, model_type: 'mistral', sliding_window: 4096, head_dim: 8 });
    expect([m.qkvBias, m.slidingWindow, m.headDim]).toEqual([false, 4096, 8]);
    const l = parseLlamaConfig({ ...baseConfig, model_type: 'llama', attention_bias: true, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
    expect([l.qkvBias, l.outputBias, l.ropeScaling.type]).toEqual([true, true, 'llama3']);
    expect(parseLlamaConfig({ ...baseConfig, model_type: 'llama', rope_scaling: { type: 'linear', factor: 2 } }).ropeScaling).toEqual({ type: 'linear', factor: 2 });
  });
  it('rejects what it cannot run, naming the file', () => {
    expect(() => parseLlamaConfig({ ...baseConfig, model_type: 'gpt2' }, 'c.json')).toThrow(/c\.json: model_type "gpt2" is not supported/);
    expect(() => parseLlamaConfig({ ...baseConfig, model_type: 'llama', hidden_size: 'x' }, 'c.json')).toThrow(/c\.json: "hidden_size" must be a positive integer/);
    expect(() => parseLlamaConfig({ ...baseConfig, model_type: 'llama', num_key_value_heads: 3 })).toThrow(/multiple/);
    expect(() => parseLlamaConfig({ ...baseConfig, model_type: 'llama', rope_scaling: { type: 'yarn', factor: 2 } })).toThrow(/yarn/);
  });
});
