import { AbortError, checkOptions, InvalidArgumentError, elementCodec, type LayerState, type Quantizer, type StatisticRequest, type StepWarning } from '@bitsmith/core';
import type { Backend } from '@bitsmith/linalg';
import { squeezeLlmOptionsSchema } from './codebook-options.js';
import { squeezeLlmQuantizeLayer } from './squeeze-llm-quantize-layer.js';

/** Options of {@link squeezeLlm}. */
export interface SqueezeLlmOptions {
  /** Code width (1-8); each output channel gets `2^bits` float16 table entries. */
  bits: number;
  /**
   * Weights of the per-row k-means: `hessian-diagonal` (`diag(X^T X)` from calibration, the default), `fisher`
   * (squared mean |input| per channel, a cheap proxy of the Fisher diagonal) or `none` (plain k-means).
   */
  sensitivity?: 'hessian-diagonal' | 'fisher' | 'none';
  /** Fraction of the largest-magnitude weights kept in float32 (dense-and-sparse). Default 0. */
  outlierFraction?: number;
  /** Choose codes with GPTQ-style error feedback through the Hessian (an extension; requests the Hessian). Default false. */
  errorFeedback?: boolean;
  /** k-means++ seed. Default 0. */
  seed?: number;
  /** Lloyd iterations per row. Default 50. */
  maxIterations?: number;
  /** Hessian dampening for error feedback. Default 0.01. */
  dampening?: number;
  backend?: Backend;
}

/**
 * SqueezeLLM (Kim et al., arXiv:2306.07629) as a quantize step: per output channel, a lookup table of `2^bits`
 * values fitted by sensitivity-weighted 1-D k-means, with optional dense-and-sparse outliers (see
 * `squeezeLlmQuantizeLayer`). A layer's `assignment` (from an allocate step) sets `bits` to its format's code width.
 * Layer states carry the dequantized weight and `bitsPerWeight` (codes + fp16 tables + sparse part); `quantized` is
 * absent, since core's `QuantizedTensor` has no per-row tables (use `squeezeLlmQuantizeLayer` for the codes).
 *
 * @param options - `bits` (required), `sensitivity` (`hessian-diagonal`), `outlierFraction` (0), `errorFeedback`
 *   (false), `seed` (0), `maxIterations` (50), `dampening` (0.01), `backend`.
 * @example
 * ```ts
 * const step = squeezeLlm({ bits: 3, sensitivity: 'hessian-diagonal', outlierFraction: 0.0045 });
 * ```
 */
export function squeezeLlm(options: SqueezeLlmOptions): Quantizer {
  checkOptions('squeezeLlm', squeezeLlmOptionsSchema, options);
  const sensitivity = options.sensitivity ?? 'hessian-diagonal';
  const requires: StatisticRequest[] = [];
  if (sensitivity === 'hessian-diagonal' || options.errorFeedback) requires.push({ kind: 'hessian' });
  if (sensitivity === 'fisher') requires.push({ kind: 'input-absmean' });
  return {
    specificationVersion: 'v2',
    id: 'squeezellm',
    kind: 'quantize',
    stores: (options.outlierFraction ?? 0) > 0 ? ['sparse-outliers'] : ['lut'],
    requires,
    async run(context) {
      const layers: LayerState[] = [];
      const warnings: StepWarning[] = [];
      for (const [index, layer] of context.layers.entries()) {
        if (context.signal?.aborted) throw new AbortError();
        const n = layer.weight.shape[1];
        const stats = requires.length > 0 ? context.statistics(layer.name) : undefined;
        const hessian = stats?.hessian;
        if (requires.some((r) => r.kind === 'hessian') && !hessian) {
          throw new InvalidArgumentError('statistics', `no Hessian was observed for layer '${layer.name}'; squeezellm with ${options.errorFeedback ? 'errorFeedback' : 'hessian-diagonal sensitivity'} requires { kind: 'hessian' }`);
        }
        let weights: Float64Array | undefined;
        if (sensitivity === 'hessian-diagonal') weights = Float64Array.from({ length: n }, (_, j) => hessian![j * n + j]!);
        if (sensitivity === 'fisher') {
          const mean = stats?.inputAbsMean;
          if (!mean) throw new InvalidArgumentError('statistics', `no input-absmean was observed for layer '${layer.name}'; fisher sensitivity requires it`);
          weights = Float64Array.from(mean, (m) => m * m);
        }
        const bits = layer.assignment ? elementCodec(layer.assignment.format).bits : options.bits;
        const result = await squeezeLlmQuantizeLayer(layer.weight, {
          bits,
          ...(weights ? { sensitivity: weights } : {}),
          ...(options.outlierFraction !== undefined ? { outlierFraction: options.outlierFraction } : {}),
          ...(options.errorFeedback && hessian ? { hessian } : {}),
          ...(options.seed !== undefined ? { seed: options.seed } : {}),
          ...(options.maxIterations !== undefined ? { maxIterations: options.maxIterations } : {}),
          ...(options.dampening !== undefined ? { dampening: options.dampening } : {}),
          ...(options.backend ? { backend: options.backend } : {}),
          ...(context.signal ? { signal: context.signal } : {}),
        });
        for (const w of result.warnings) warnings.push({ ...w, layer: layer.name });
        layers.push({ ...layer, weight: result.weight, stored: result.stored, bitsPerWeight: result.bitsPerWeight });
        context.progress?.(index + 1, context.layers.length, layer.name);
      }
      return { layers, warnings };
    },
  };
}
