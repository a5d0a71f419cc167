import { describe, expect, it } from 'vitest';
import { UnsupportedFormatError } from '@bitsmith/core';
import { parseLlamaConfig } from './llama-config.js';
import { ModelFileError } from './model-file-error.js';

const base = { vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2 };

describe('parseLlamaConfig', () => {
  it('names the supported model types and refuses what it cannot compute', () => {
    expect(() => parseLlamaConfig({ ...base, model_type: 'gpt2' })).toThrow(/model_type "gpt2" is not supported \(supported: llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3, qwen2_moe\)/);
    const partial = () => parseLlamaConfig({ ...base, model_type: 'phi3', rope_parameters: { rope_type: 'default', rope_theta: 10000, partial_rotary_factor: 0.5 } });
    expect(partial).toThrow(UnsupportedFormatError);
    expect(partial).toThrow(/partial_rotary_factor 0.5/);
    expect(() => parseLlamaConfig({ ...base, model_type: 'llama', rope_parameters: { rope_type: 'yarn', rope_theta: 1e4, factor: 4 } })).toThrow(/RoPE type "yarn"/);
    expect(() => parseLlamaConfig({ ...base, model_type: 'gemma2', layer_types: ['full_attention'] })).toThrow(ModelFileError);
    expect(() => parseLlamaConfig({ ...base, model_type: 'gemma2', layer_types: ['sliding_attention', 'full_attention', 'full_attention', 'full_attention'] })).toThrow(/"sliding_window" is not set/);
  });

  it("Qwen2's sliding window applies from max_window_layers on, only with use_sliding_window", () => {
    const on = parseLlamaConfig({ ...base, model_type: 'qwen2', use_sliding_window: true, sliding_window: 16, max_window_layers: 2 });
    expect(on.layerTypes).toEqual(['full', 'full', 'sliding', 'sliding']);
    expect(on.slidingWindow).toBe(16);
    const off = parseLlamaConfig({ ...base, model_type: 'qwen2', use_sliding_window: false, sliding_window: 16, max_window_layers: 2 });
    expect(off.layerTypes).toEqual(['full', 'full', 'full', 'full']);
    expect(off.slidingWindow).toBeUndefined();
  });

  it('Gemma: 1 + w norms, sqrt(hidden) embedding scale, query_pre_attn_scalar, tied by default', () => {
    const c = parseLlamaConfig({ ...base, model_type: 'gemma2', head_dim: 8, query_pre_attn_scalar: 16, sliding_window: 4, attn_logit_softcapping: 50, final_logit_softcapping: 30 });
    expect(c).toMatchObject({ normGainOffset: 1, hiddenActivation: 'gelu-tanh', sandwichNorms: true, tieWordEmbeddings: true, attentionSoftcap: 50, finalLogitSoftcap: 30 });
    expect(c.embeddingScale).toBeCloseTo(Math.sqrt(32), 12);
    expect(c.attentionScale).toBeCloseTo(0.25, 12);
    expect(c.layerTypes).toEqual(['sliding', 'sliding', 'sliding', 'sliding']);
  });
});
