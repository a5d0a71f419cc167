import type { Matrix } from '@bitsmith/core';

/** RoPE frequency scaling (the same union as `@bitsmith/models`' `RopeScaling`). */
export type OnnxRopeScaling =
  | { readonly type: 'none' }
  | { readonly type: 'linear'; readonly factor: number }
  | { readonly type: 'llama3'; readonly factor: number; readonly lowFreqFactor: number; readonly highFreqFactor: number; readonly originalMaxPositionEmbeddings: number };

/** The parts of `@bitsmith/models`' `LlamaConfig` the ONNX exporter reads. */
export interface OnnxLlamaConfig {
  /**
   * Hugging Face `model_type`. The exporter writes the Llama computation (RMSNorm, SwiGLU, RoPE, grouped-query
   * attention), which is also Mistral's, Qwen2's and (split on load) Phi-3's; it refuses other types (Gemma's norms
   * and soft-capping, Qwen3's q/k norms, mixtures of experts) rather than write a different model. Default `'llama'`.
   */
  readonly modelType?: string;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly ropeTheta: number;
  readonly ropeScaling: OnnxRopeScaling;
  readonly maxPositionEmbeddings: number;
  readonly slidingWindow: number | undefined;
}

/** A linear layer `y = x W^T + b` (structurally `@bitsmith/models`' `LinearLayer`). */
export interface OnnxLinearLayer {
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** `[outFeatures, inFeatures]`. */
  readonly weight: Matrix<'float32'>;
  readonly bias: Float32Array | undefined;
  /**
   * A run-time input transform (`RuntimeInputTransform` of `@bitsmith/core`): the exporter writes online Hadamards
   * (from `describe()`) as graph nodes and refuses other kinds.
   */
  readonly inputTransform?: { describe(): Record<string, unknown> } | undefined;
}

/** An RMSNorm layer (structurally `@bitsmith/models`' `RmsNormLayer`). */
export interface OnnxRmsNorm {
  readonly name: string;
  readonly weight: Float32Array;
  readonly eps: number;
}

/** One decoder block (structurally `@bitsmith/models`' `LlamaBlock`). */
export interface OnnxLlamaBlock {
  readonly inputLayernorm: OnnxRmsNorm;
  readonly postAttentionLayernorm: OnnxRmsNorm;
  readonly selfAttention: { readonly qProj: OnnxLinearLayer; readonly kProj: OnnxLinearLayer; readonly vProj: OnnxLinearLayer; readonly oProj: OnnxLinearLayer };
  /** The dense MLP; undefined in a mixture-of-experts block (which the exporter refuses). */
  readonly mlp: { readonly gateProj: OnnxLinearLayer; readonly upProj: OnnxLinearLayer; readonly downProj: OnnxLinearLayer } | undefined;
}

/**
 * What the ONNX exporter needs from a Llama-family model: structurally a subset of `@bitsmith/models`' `LlamaGraph`,
 * so a `LlamaGraph` is passed as is (and `@bitsmith/formats` keeps depending on `@bitsmith/core` only).
 */
export interface OnnxLlamaGraph {
  readonly config: OnnxLlamaConfig;
  /** `[vocabSize, hiddenSize]`. */
  readonly embedTokens: Matrix<'float32'>;
  readonly blocks: readonly OnnxLlamaBlock[];
  readonly norm: OnnxRmsNorm;
  readonly lmHead: OnnxLinearLayer;
}

/**
 * RoPE inverse frequencies `theta^(-2i/d)` with Hugging Face's `rope_scaling` (`linear`, `llama3`), in float64: the
 * same computation as `@bitsmith/models`' `ropeInverseFrequencies` (RoFormer, arXiv:2104.09864).
 *
 * @example
 * ```ts
 * onnxRopeInverseFrequencies(16, 10000, { type: 'none' })[0]; // 1
 * ```
 */
export function onnxRopeInverseFrequencies(headDim: number, theta: number, scaling: OnnxRopeScaling): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / headDim);
  if (scaling.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i]! /= scaling.factor;
  } else if (scaling.type === 'llama3') {
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: old } = scaling;
    const lowFreqWavelen = old / lowFreqFactor;
    const highFreqWavelen = old / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowFreqWavelen) inv[i] = f / factor;
      else if (wavelen >= highFreqWavelen) {
        const smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        inv[i] = (1 - smooth) * (f / factor) + smooth * f;
      }
    }
  }
  return inv;
}
