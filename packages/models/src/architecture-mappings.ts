import { UnsupportedFormatError, type ArchitectureMapping } from '@bitsmith/core';
import type { LlamaFamily } from './llama-config.js';

const ATTENTION_READERS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'];
const VALUE_OUTPUT = { value: 'self_attn.v_proj', output: 'self_attn.o_proj' };

/** Llama, Mistral, Qwen2/2.5, Qwen3 (its q/k norms act inside attention and feed no input group). */
export const LLAMA_MAPPING: ArchitectureMapping = {
  name: 'llama',
  inputGroups: [
    { producer: 'input_layernorm', linears: ATTENTION_READERS },
    { producer: 'self_attn.v_proj', linears: ['self_attn.o_proj'], requiresUngroupedAttention: true },
    { producer: 'post_attention_layernorm', linears: ['mlp.gate_proj', 'mlp.up_proj'] },
    { producer: 'mlp.up_proj', linears: ['mlp.down_proj'] },
  ],
  residualWriters: ['self_attn.o_proj', 'mlp.down_proj'],
  residualOutputNorms: [],
  valueOutput: VALUE_OUTPUT,
  mlpOutputs: ['mlp.down_proj'],
  auxiliary: [],
  fused: {},
};

/** Phi-3: as Llama, with `qkv_proj` and `gate_up_proj` stored fused (split into q/k/v and gate/up on load). */
export const PHI3_MAPPING: ArchitectureMapping = {
  ...LLAMA_MAPPING,
  name: 'phi3',
  fused: { 'self_attn.qkv_proj': ATTENTION_READERS, 'mlp.gate_up_proj': ['mlp.gate_proj', 'mlp.up_proj'] },
};

/**
 * Gemma 2 and 3: the MLP reads `pre_feedforward_layernorm`; `post_attention_layernorm` and
 * `post_feedforward_layernorm` normalize each branch's output before the residual add.
 */
export const GEMMA_MAPPING: ArchitectureMapping = {
  ...LLAMA_MAPPING,
  name: 'gemma',
  inputGroups: [
    { producer: 'input_layernorm', linears: ATTENTION_READERS },
    { producer: 'self_attn.v_proj', linears: ['self_attn.o_proj'], requiresUngroupedAttention: true },
    { producer: 'pre_feedforward_layernorm', linears: ['mlp.gate_proj', 'mlp.up_proj'] },
    { producer: 'mlp.up_proj', linears: ['mlp.down_proj'] },
  ],
  residualOutputNorms: ['post_attention_layernorm', 'post_feedforward_layernorm'],
};

/**
 * Qwen2-MoE: the router (`mlp.gate`), every expert and the shared expert (with its sigmoid gate) read the
 * post-attention norm; each expert's `down_proj` and the shared expert's write to the residual stream. Layers with a
 * dense MLP resolve through the Llama names.
 */
export const QWEN2_MOE_MAPPING: ArchitectureMapping = {
  name: 'qwen2_moe',
  inputGroups: [
    { producer: 'input_layernorm', linears: ATTENTION_READERS },
    { producer: 'self_attn.v_proj', linears: ['self_attn.o_proj'], requiresUngroupedAttention: true },
    {
      producer: 'post_attention_layernorm',
      linears: [
        'mlp.gate',
        'mlp.experts.*.gate_proj',
        'mlp.experts.*.up_proj',
        'mlp.shared_expert.gate_proj',
        'mlp.shared_expert.up_proj',
        'mlp.shared_expert_gate',
        'mlp.gate_proj',
        'mlp.up_proj',
      ],
    },
    { producer: 'mlp.experts.*.up_proj', linears: ['mlp.experts.*.down_proj'] },
    { producer: 'mlp.shared_expert.up_proj', linears: ['mlp.shared_expert.down_proj'] },
    { producer: 'mlp.up_proj', linears: ['mlp.down_proj'] },
  ],
  residualWriters: ['self_attn.o_proj', 'mlp.experts.*.down_proj', 'mlp.shared_expert.down_proj', 'mlp.down_proj'],
  residualOutputNorms: [],
  valueOutput: VALUE_OUTPUT,
  mlpOutputs: ['mlp.experts.*.down_proj', 'mlp.shared_expert.down_proj', 'mlp.down_proj'],
  auxiliary: ['mlp.gate', 'mlp.shared_expert_gate'],
  fused: {},
};

/**
 * The mapping table of a supported `model_type`.
 *
 * @throws UnsupportedFormatError for a model type without a table.
 * @example
 * ```ts
 * architectureMapping('qwen2').residualWriters; // ['self_attn.o_proj', 'mlp.down_proj']
 * ```
 */
export function architectureMapping(modelType: LlamaFamily): ArchitectureMapping {
  switch (modelType) {
    case 'llama':
    case 'mistral':
    case 'qwen2':
    case 'qwen3':
      return LLAMA_MAPPING;
    case 'phi3':
      return PHI3_MAPPING;
    case 'gemma2':
    case 'gemma3_text':
      return GEMMA_MAPPING;
    case 'qwen2_moe':
      return QWEN2_MOE_MAPPING;
    default:
      throw new UnsupportedFormatError(`no architecture mapping for model_type ${JSON.stringify(modelType)}`);
  }
}
