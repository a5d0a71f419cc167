import { afterAll, describe, expect, it } from 'vitest';
import { matrix, type Tensor } from '@bitsmith/core';
import { createJsBackend, tryCreateWebgpuBackend, webgpuDecoderBlock, webgpuSequences, type WebgpuBackend } from '@bitsmith/linalg';
import { parseLlamaConfig, type LlamaConfig } from './llama-config.js';
import { createLlamaGraph } from './llama-graph.js';
import { ropeTables } from './rope.js';

// linalg's decoder block on the GPU (RMSNorm, RoPE, grouped-query attention, SwiGLU as WGSL kernels, projections as
// GEMMs, Hessians accumulated on the GPU) against this package's CPU forward (LlamaGraph.runBlock on the js backend)
// and the inputs its observer sees. Needs a WebGPU adapter; skipped with the reason elsewhere.
const { backend: gpu, reason } = await tryCreateWebgpuBackend({ minGpuWork: 0, threads: 1 });
if (!gpu) console.warn(`[bitsmith] skipping webgpu decoder-block tests: ${reason}`);

function randomWeights(config: LlamaConfig, seed: number): Map<string, Tensor<'float32'>> {
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
  const { hiddenSize: h, intermediateSize: m, vocabSize: v, numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: d } = config;
  put('model.embed_tokens.weight', [v, h]);
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    put(`${p}.input_layernorm.weight`, [h], 1, 0.4);
    put(`${p}.post_attention_layernorm.weight`, [h], 1, 0.4);
    put(`${p}.self_attn.q_proj.weight`, [nh * d, h], 0, 0.5);
    put(`${p}.self_attn.k_proj.weight`, [nkv * d, h], 0, 0.5);
    put(`${p}.self_attn.v_proj.weight`, [nkv * d, h], 0, 0.5);
    put(`${p}.self_attn.o_proj.weight`, [h, nh * d], 0, 0.5);
    put(`${p}.mlp.gate_proj.weight`, [m, h], 0, 0.5);
    put(`${p}.mlp.up_proj.weight`, [m, h], 0, 0.5);
    put(`${p}.mlp.down_proj.weight`, [h, m], 0, 0.5);
  }
  put('model.norm.weight', [h], 1);
  put('lm_head.weight', [v, h]);
  return w;
}

function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i]! - want[i]!));
    den = Math.max(den, Math.abs(want[i]!));
  }
  return num / den;
}

describe.skipIf(gpu === undefined)('webgpu decoder block against LlamaGraph.runBlock', () => {
  afterAll(() => gpu?.dispose());
  for (const [label, extra] of [
    ['llama (SwiGLU, full attention)', { model_type: 'llama' }],
    ['mistral (sliding window of 16)', { model_type: 'mistral', sliding_window: 16 }],
  ] as const) {
    it(`${label}: block output to 1e-5 and the four Hessians X^T X to 1e-5 of the CPU forward's inputs`, async () => {
      const config = parseLlamaConfig({
        hidden_size: 128,
        intermediate_size: 320,
        num_hidden_layers: 1,
        num_attention_heads: 8,
        num_key_value_heads: 2,
        vocab_size: 50,
        rms_norm_eps: 1e-5,
        rope_theta: 10000,
        max_position_embeddings: 256,
        tie_word_embeddings: false,
        ...extra,
      });
      const weights = randomWeights(config, 11);
      const graph = await createLlamaGraph(config, (n) => weights.get(n), { backend: createJsBackend() });
      const lengths = [45, 30];
      const tokens = 75;
      const hidden = config.hiddenSize;
      const x = Float32Array.from({ length: tokens * hidden }, (_, i) => Math.sin(0.37 * i) + 0.5 * Math.cos(1.3 * i));
      const inputs = new Map<string, Float32Array>();
      const cpu = await graph.runBlock(0, { states: matrix(x, tokens, hidden), lengths }, {
        observer: (e) => {
          const kind = e.name.split('.').at(-1)!;
          inputs.set(kind, e.input.data.slice());
        },
      });
      const block = graph.blocks[0]!;
      expect(block.attentionType).toBe(label.startsWith('mistral') ? 'sliding' : 'full');
      const g = gpu!;
      const up = (t: Tensor<'float32'> | Float32Array, rows: number, columns: number) => g.upload(t instanceof Float32Array ? t : t.data, rows, columns);
      const lin = (name: string) => {
        const t = weights.get(`model.layers.0.${name}.weight`)!;
        return up(t, t.shape[0]!, t.shape[1]!);
      };
      const resident = {
        inputNorm: up(block.inputLayernorm.weight, 1, hidden),
        postAttentionNorm: up(block.postAttentionLayernorm.weight, 1, hidden),
        qProj: lin('self_attn.q_proj'),
        kProj: lin('self_attn.k_proj'),
        vProj: lin('self_attn.v_proj'),
        oProj: lin('self_attn.o_proj'),
        gateProj: lin('mlp.gate_proj'),
        upProj: lin('mlp.up_proj'),
        downProj: lin('mlp.down_proj'),
      };
      const rope = ropeTables(config, 64);
      const cos = up(rope.cos, 64, config.headDim / 2);
      const sin = up(rope.sin, 64, config.headDim / 2);
      const q = config.numAttentionHeads * config.headDim;
      const hessians = { qkv: g.zeros(hidden, hidden), o: g.zeros(q, q), gateUp: g.zeros(hidden, hidden), down: g.zeros(config.intermediateSize, config.intermediateSize) };
      const gx = up(x, tokens, hidden);
      const out = g.zeros(tokens, hidden);
      const sequences = webgpuSequences(g, lengths);
      webgpuDecoderBlock(g, {
        x: gx,
        out,
        weights: resident,
        geometry: {
          hidden,
          intermediate: config.intermediateSize,
          numHeads: config.numAttentionHeads,
          numKvHeads: config.numKeyValueHeads,
          headDim: config.headDim,
          eps: config.rmsNormEps,
          scale: config.attentionScale,
          slidingWindow: block.attentionType === 'sliding' ? config.slidingWindow : undefined,
        },
        sequences,
        cos,
        sin,
        hessians,
      });
      const got = await g.read(out);
      const error = relativeError(got, cpu.states.data);
      console.log(`[webgpu decoder block, ${label}] output max error / max |output|: ${error.toExponential(2)}`);
      expect(error).toBeLessThan(1e-5);
      for (const [key, kind] of [['qkv', 'q_proj'], ['o', 'o_proj'], ['gateUp', 'gate_proj'], ['down', 'down_proj']] as const) {
        const input = inputs.get(kind)!;
        const n = hessians[key].rows;
        const want = new Float64Array(n * n);
        for (let t = 0; t < tokens; t++) for (let a = 0; a < n; a++) {
          const xa = input[t * n + a]!;
          for (let b = a; b < n; b++) want[a * n + b] += xa * input[t * n + b]!;
        }
        const h = await g.read(hessians[key]);
        const upper = new Float64Array(n * n);
        for (let a = 0; a < n; a++) for (let b = a; b < n; b++) upper[a * n + b] = h[a * n + b]!;
        const hError = relativeError(upper, want);
        console.log(`[webgpu decoder block, ${label}] Hessian of ${kind}'s input: ${hError.toExponential(2)}`);
        expect(hError).toBeLessThan(1e-5);
      }
      sequences.release();
      for (const m of [...Object.values(resident), ...Object.values(hessians), cos, sin, gx, out]) g.release(m);
    });
  }
});
