import { UnsupportedFormatError } from '@bitsmith/core';
import { ModelFileError } from './model-file-error.js';

/** Model types (`config.json`'s `model_type`) whose Hugging Face checkpoints this package reads. */
export type LlamaFamily = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'gemma2' | 'gemma3_text' | 'phi3' | 'qwen2_moe';

/** Every supported `model_type`, in the order of {@link LlamaFamily}. */
export const SUPPORTED_MODEL_TYPES: readonly LlamaFamily[] = ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma2', 'gemma3_text', 'phi3', 'qwen2_moe'];

/** RoPE frequency scaling, from `rope_parameters` / `rope_scaling` (HF `rope_type` / `type`). */
export type RopeScaling =
  | { readonly type: 'none' }
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    };

/** Mixture-of-experts settings (Qwen2-MoE: router, top-k experts, a shared expert behind a sigmoid gate). */
export interface MoeConfig {
  readonly numExperts: number;
  /** Experts each token is routed to. */
  readonly topK: number;
  /** Renormalize the top-k routing weights to sum to 1 (`norm_topk_prob`). */
  readonly normTopK: boolean;
  /** Intermediate size of each routed expert. */
  readonly expertIntermediateSize: number;
  /** Intermediate size of the shared expert; 0 when there is none. */
  readonly sharedExpertIntermediateSize: number;
  /** Per layer: whether its MLP is the sparse mixture (else a dense MLP of `intermediateSize`). */
  readonly sparseLayers: readonly boolean[];
}

/** The architecture of a decoder, normalized from `config.json`. */
export interface LlamaConfig {
  readonly modelType: LlamaFamily;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  /** Per-head dimension: `head_dim` when given, else `hiddenSize / numAttentionHeads`. */
  readonly headDim: number;
  readonly rmsNormEps: number;
  /** RoPE base of full-attention layers (`rope_parameters.rope_theta`, or top-level `rope_theta`). */
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  /** RoPE of sliding-window layers when it differs (Gemma 3's local base); undefined: the same as the full layers. */
  readonly localRope: { readonly theta: number; readonly scaling: RopeScaling } | undefined;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2 always, Qwen2-MoE unless `qkv_bias: false`; Llama, Qwen3, Gemma with `attention_bias`). */
  readonly qkvBias: boolean;
  /** o_proj carries a bias (Llama, Qwen3, Gemma with `attention_bias`). */
  readonly outputBias: boolean;
  /** MLP projections carry biases (Llama with `mlp_bias`). */
  readonly mlpBias: boolean;
  /**
   * Sliding attention window in tokens (Mistral, Qwen2 with `use_sliding_window`, Gemma's sliding layers), or
   * undefined for full causal attention everywhere. Which layers use it: {@link LlamaConfig.layerTypes}.
   */
  readonly slidingWindow: number | undefined;
  /** Per layer: `'sliding'` (uses `slidingWindow`) or `'full'`. */
  readonly layerTypes: readonly ('full' | 'sliding')[];
  /** MLP activation: `'silu'` (SwiGLU) or `'gelu-tanh'` (GeGLU with the tanh approximation, Gemma). */
  readonly hiddenActivation: 'silu' | 'gelu-tanh';
  /** RMSNorm gain is `offset + weight`: 0 for Llama, 1 for Gemma (`x * (1 + w)`). */
  readonly normGainOffset: number;
  /** The embedding is multiplied by this (Gemma: `sqrt(hiddenSize)`, else 1). */
  readonly embeddingScale: number;
  /** Attention score scale: `1/sqrt(headDim)`, or `query_pre_attn_scalar^-0.5` (Gemma). */
  readonly attentionScale: number;
  /** Attention scores are soft-capped `c * tanh(s / c)` (Gemma 2 `attn_logit_softcapping`). */
  readonly attentionSoftcap: number | undefined;
  /** Logits are soft-capped `c * tanh(z / c)` (Gemma 2 `final_logit_softcapping`). */
  readonly finalLogitSoftcap: number | undefined;
  /** RMSNorm over each query and key head before RoPE (Qwen3, Gemma 3: `q_norm`, `k_norm`). */
  readonly qkNorm: boolean;
  /**
   * Gemma 2/3 "sandwich" norms: the attention output passes `post_attention_layernorm` before the residual add, the
   * MLP reads `pre_feedforward_layernorm` and its output passes `post_feedforward_layernorm`.
   */
  readonly sandwichNorms: boolean;
  /** Checkpoint stores `qkv_proj` and `gate_up_proj` fused (Phi-3); the graph splits them into q/k/v and gate/up. */
  readonly fusedProjections: boolean;
  /** Mixture-of-experts MLPs, or undefined for a dense model. */
  readonly moe: MoeConfig | undefined;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
}

function positiveInteger(raw: Record<string, unknown>, key: string, path: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new ModelFileError(path, `"${key}" must be a positive integer, got ${JSON.stringify(raw[key])}`);
  }
  return v;
}

function positiveNumber(raw: Record<string, unknown>, key: string, path: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !(v > 0)) throw new ModelFileError(path, `"${key}" must be a positive number, got ${JSON.stringify(raw[key])}`);
  return v;
}

function firstId(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
  return undefined;
}

function parseRopeScaling(raw: unknown, path: string): RopeScaling {
  if (raw === null || raw === undefined) return { type: 'none' };
  if (typeof raw !== 'object') throw new ModelFileError(path, `"rope_scaling" must be an object or null`);
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  switch (type) {
    case undefined:
    case 'default':
      return { type: 'none' };
    case 'linear':
      return { type: 'linear', factor: positiveNumber(r, 'factor', `${path} rope_scaling`) };
    case 'llama3':
      return {
        type: 'llama3',
        factor: positiveNumber(r, 'factor', `${path} rope_scaling`),
        lowFreqFactor: positiveNumber(r, 'low_freq_factor', `${path} rope_scaling`),
        highFreqFactor: positiveNumber(r, 'high_freq_factor', `${path} rope_scaling`),
        originalMaxPositionEmbeddings: positiveInteger(r, 'original_max_position_embeddings', `${path} rope_scaling`),
      };
    default:
      throw new UnsupportedFormatError(`${path}: RoPE type ${JSON.stringify(type)} is not supported (supported: default, linear, llama3)`);
  }
}

interface ParsedRope {
  readonly theta: number;
  readonly scaling: RopeScaling;
}

function parseRopeEntry(entry: Record<string, unknown>, fallbackTheta: number, path: string): ParsedRope {
  const factor = entry.partial_rotary_factor;
  if (factor !== undefined && factor !== null && factor !== 1) {
    throw new UnsupportedFormatError(`${path}: partial_rotary_factor ${JSON.stringify(factor)} is not supported (only 1)`);
  }
  return { theta: positiveNumber(entry, 'rope_theta', path, fallbackTheta), scaling: parseRopeScaling(entry, path) };
}

/**
 * RoPE of full and sliding layers from either form: transformers 5's `rope_parameters` (one entry, or one per layer
 * type: `{ full_attention: {...}, sliding_attention: {...} }`) or the older top-level `rope_theta` + `rope_scaling`
 * (+ Gemma 3's `rope_local_base_freq`).
 */
function parseRope(r: Record<string, unknown>, path: string): { full: ParsedRope; local: ParsedRope | undefined } {
  const topTheta = positiveNumber(r, 'rope_theta', path, 10000);
  const params = r.rope_parameters;
  if (params !== undefined && params !== null) {
    if (typeof params !== 'object' || Array.isArray(params)) throw new ModelFileError(path, '"rope_parameters" must be an object');
    const p = params as Record<string, unknown>;
    if (typeof p.full_attention === 'object' && p.full_attention !== null) {
      const full = parseRopeEntry(p.full_attention as Record<string, unknown>, topTheta, `${path} rope_parameters.full_attention`);
      const sliding = p.sliding_attention;
      const local = typeof sliding === 'object' && sliding !== null ? parseRopeEntry(sliding as Record<string, unknown>, topTheta, `${path} rope_parameters.sliding_attention`) : undefined;
      return { full, local };
    }
    return { full: parseRopeEntry(p, topTheta, `${path} rope_parameters`), local: undefined };
  }
  if (r.partial_rotary_factor !== undefined && r.partial_rotary_factor !== null && r.partial_rotary_factor !== 1) {
    throw new UnsupportedFormatError(`${path}: partial_rotary_factor ${JSON.stringify(r.partial_rotary_factor)} is not supported (only 1)`);
  }
  const full = { theta: topTheta, scaling: parseRopeScaling(r.rope_scaling, path) };
  const localBase = r.rope_local_base_freq;
  return { full, local: typeof localBase === 'number' ? { theta: positiveNumber(r, 'rope_local_base_freq', path), scaling: { type: 'none' } } : undefined };
}

function optionalPositive(r: Record<string, unknown>, key: string, path: string): number | undefined {
  const v = r[key];
  if (v === undefined || v === null) return undefined;
  return positiveNumber(r, key, path);
}

function parseLayerTypes(r: Record<string, unknown>, layers: number, slidingWindow: number | undefined, path: string): ('full' | 'sliding')[] {
  const raw = r.layer_types;
  if (Array.isArray(raw)) {
    if (raw.length !== layers) throw new ModelFileError(path, `"layer_types" has ${raw.length} entries, expected num_hidden_layers = ${layers}`);
    return raw.map((t, i) => {
      if (t === 'full_attention') return 'full';
      if (t === 'sliding_attention') {
        if (slidingWindow === undefined) throw new ModelFileError(path, `layer ${i} is "sliding_attention" but "sliding_window" is not set`);
        return 'sliding';
      }
      throw new UnsupportedFormatError(`${path}: layer type ${JSON.stringify(t)} is not supported (full_attention, sliding_attention)`);
    });
  }
  return Array.from({ length: layers }, () => (slidingWindow === undefined ? 'full' : 'sliding'));
}

function parseMoe(r: Record<string, unknown>, layers: number, path: string): MoeConfig {
  const numExperts = positiveInteger(r, 'num_experts', path);
  const topK = positiveInteger(r, 'num_experts_per_tok', path);
  if (topK > numExperts) throw new ModelFileError(path, `num_experts_per_tok (${topK}) exceeds num_experts (${numExperts})`);
  const step = positiveInteger(r, 'decoder_sparse_step', path, 1);
  const mlpOnly = Array.isArray(r.mlp_only_layers) ? (r.mlp_only_layers as unknown[]) : [];
  const shared = r.shared_expert_intermediate_size;
  return {
    numExperts,
    topK,
    normTopK: r.norm_topk_prob === true,
    expertIntermediateSize: positiveInteger(r, 'moe_intermediate_size', path),
    sharedExpertIntermediateSize: shared === undefined || shared === null || shared === 0 ? 0 : positiveInteger(r, 'shared_expert_intermediate_size', path),
    sparseLayers: Array.from({ length: layers }, (_, i) => !mlpOnly.includes(i) && (i + 1) % step === 0),
  };
}

/**
 * Normalizes a Hugging Face `config.json` of a supported decoder: `llama` (Llama 2/3, SmolLM2), `mistral`, `qwen2`,
 * `qwen3`, `gemma2`, `gemma3_text`, `phi3`, `qwen2_moe`. RoPE is read from transformers 5's `rope_parameters` or the
 * older top-level `rope_theta` / `rope_scaling`.
 *
 * @param raw The parsed JSON.
 * @param path File name used in error messages. Default `'config.json'`.
 * @throws ModelFileError for missing or invalid fields; UnsupportedFormatError for other model types, activations or
 *   RoPE types.
 * @example
 * ```ts
 * const config = parseLlamaConfig(JSON.parse(readFileSync('config.json', 'utf8')));
 * config.numKeyValueHeads; // 4
 * ```
 */
export function parseLlamaConfig(raw: unknown, path = 'config.json'): LlamaConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelFileError(path, 'must be a JSON object');
  const r = raw as Record<string, unknown>;
  const modelType = r.model_type as LlamaFamily;
  if (!SUPPORTED_MODEL_TYPES.includes(modelType)) {
    throw new UnsupportedFormatError(`${path}: model_type ${JSON.stringify(r.model_type)} is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
  const gemma = modelType === 'gemma2' || modelType === 'gemma3_text';
  const act = r.hidden_activation ?? r.hidden_act ?? (gemma ? 'gelu_pytorch_tanh' : 'silu');
  let hiddenActivation: 'silu' | 'gelu-tanh';
  if (act === 'silu' || act === 'swish') hiddenActivation = 'silu';
  else if (act === 'gelu_pytorch_tanh' || act === 'gelu_tanh' || act === 'gelu_new') hiddenActivation = 'gelu-tanh';
  else throw new UnsupportedFormatError(`${path}: hidden activation ${JSON.stringify(act)} is not supported (silu, gelu_pytorch_tanh)`);
  const hiddenSize = positiveInteger(r, 'hidden_size', path);
  const numHiddenLayers = positiveInteger(r, 'num_hidden_layers', path);
  const numAttentionHeads = positiveInteger(r, 'num_attention_heads', path);
  const numKeyValueHeads = positiveInteger(r, 'num_key_value_heads', path, numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new ModelFileError(path, `num_attention_heads (${numAttentionHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`);
  }
  const headDim = r.head_dim == null ? hiddenSize / numAttentionHeads : positiveInteger(r, 'head_dim', path);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new ModelFileError(path, `head dimension ${headDim} must be an even integer`);
  const attentionBias = r.attention_bias === true;
  const window = typeof r.sliding_window === 'number' && r.sliding_window > 0 ? r.sliding_window : undefined;
  let slidingWindow: number | undefined;
  if (modelType === 'mistral' || modelType === 'phi3' || gemma) slidingWindow = window;
  if ((modelType === 'qwen2' || modelType === 'qwen3' || modelType === 'qwen2_moe') && r.use_sliding_window === true) slidingWindow = window;
  let layerTypes = parseLayerTypes(r, numHiddenLayers, slidingWindow, path);
  if (modelType === 'qwen2' || modelType === 'qwen3' || modelType === 'qwen2_moe') {
    // Qwen's `max_window_layers`: layers from that index on use the window (when enabled at all).
    if (slidingWindow !== undefined && !Array.isArray(r.layer_types)) {
      const first = typeof r.max_window_layers === 'number' ? r.max_window_layers : 0;
      layerTypes = layerTypes.map((_, i) => (i >= first ? 'sliding' : 'full'));
    }
  }
  const rope = parseRope(r, path);
  const queryPreAttnScalar = gemma ? optionalPositive(r, 'query_pre_attn_scalar', path) : undefined;
  return {
    modelType,
    vocabSize: positiveInteger(r, 'vocab_size', path),
    hiddenSize,
    intermediateSize: positiveInteger(r, 'intermediate_size', path),
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: positiveNumber(r, 'rms_norm_eps', path, 1e-6),
    ropeTheta: rope.full.theta,
    ropeScaling: rope.full.scaling,
    localRope: rope.local,
    maxPositionEmbeddings: positiveInteger(r, 'max_position_embeddings', path, 2048),
    tieWordEmbeddings: r.tie_word_embeddings === true || (gemma && r.tie_word_embeddings === undefined),
    qkvBias: modelType === 'qwen2' || (modelType === 'qwen2_moe' && r.qkv_bias !== false) || attentionBias,
    outputBias: (modelType === 'llama' || modelType === 'qwen3' || gemma) && attentionBias,
    mlpBias: modelType === 'llama' && r.mlp_bias === true,
    slidingWindow: layerTypes.includes('sliding') ? slidingWindow : undefined,
    layerTypes,
    hiddenActivation,
    normGainOffset: gemma ? 1 : 0,
    embeddingScale: gemma ? Math.sqrt(hiddenSize) : 1,
    attentionScale: 1 / Math.sqrt(queryPreAttnScalar ?? headDim),
    attentionSoftcap: gemma ? optionalPositive(r, 'attn_logit_softcapping', path) : undefined,
    finalLogitSoftcap: gemma ? optionalPositive(r, 'final_logit_softcapping', path) : undefined,
    qkNorm: modelType === 'qwen3' || modelType === 'gemma3_text',
    sandwichNorms: gemma,
    fusedProjections: modelType === 'phi3',
    moe: modelType === 'qwen2_moe' ? parseMoe(r, numHiddenLayers, path) : undefined,
    bosTokenId: firstId(r.bos_token_id),
    eosTokenId: firstId(r.eos_token_id),
  };
}
