import { AbortError, checkOptions, InvalidArgumentError, elementCodec, type LayerState, type Quantizer, type StepWarning } from '@bitsmith/core';
import type { Backend } from '@bitsmith/linalg';
import { vectorQuantizeOptionsSchema } from './codebook-options.js';
import { vectorQuantizeLayer } from './vector-quantize-layer.js';

/** Options of {@link vectorQuantize}. */
export interface VectorQuantizeOptions {
  /** Consecutive input weights per vector: 1, 2, 4 or 8 (any 1-8 dividing the row length). */
  dimension: number;
  /** Bits per code `k`: codebooks of `2^k` vectors; about `k / dimension` bits per weight plus codebooks and row scales. */
  codebookBits: number;
  /** Residual VQ: a second codebook on the residual. Default false. */
  residual?: boolean;
  /** Bits of the residual codebook. Default `codebookBits`. */
  residualCodebookBits?: number;
  /** Rows sharing one codebook. Default: the whole layer. */
  groupRows?: number;
  /** Normalise rows by their RMS (float16 per row). Default true. */
  normalize?: boolean;
  /** GPTQ-style error feedback with Hessian-weighted distances. Default true. */
  errorFeedback?: boolean;
  seed?: number;
  maxIterations?: number;
  dampening?: number;
  blockSize?: number;
  backend?: Backend;
}

/**
 * Vector quantization (GPTVQ arXiv:2402.15319 / VPTQ style) as a quantize step; requests the Hessian. See
 * `vectorQuantizeLayer`. A layer's `assignment` (from an allocate step) sets `codebookBits` to
 * `dimension x` its format's code width (at most 16), so the layer gets the assigned bits per weight before codebooks.
 * Layer states carry the dequantized weight and `bitsPerWeight` (codes, fp16 codebooks, fp16 row scales);
 * `quantized` is absent (core's `QuantizedTensor` has no codebooks; use `vectorQuantizeLayer` for the codes).
 *
 * @param options - `dimension`, `codebookBits` (required); `residual` (false), `residualCodebookBits`,
 *   `groupRows` (all), `normalize` (true), `errorFeedback` (true), `seed` (0), `maxIterations` (30),
 *   `dampening` (0.01), `blockSize` (128), `backend`.
 * @example
 * ```ts
 * const step = vectorQuantize({ dimension: 2, codebookBits: 5 }); // about 2.5 bits per weight + codebooks
 * ```
 */
export function vectorQuantize(options: VectorQuantizeOptions): Quantizer {
  checkOptions('vectorQuantize', vectorQuantizeOptionsSchema, options);
  return {
    specificationVersion: 'v2',
    id: 'vq',
    kind: 'quantize',
    stores: ['codebook'],
    requires: [{ kind: 'hessian' }],
    async run(context) {
      const layers: LayerState[] = [];
      const warnings: StepWarning[] = [];
      for (const [index, layer] of context.layers.entries()) {
        if (context.signal?.aborted) throw new AbortError();
        const hessian = context.statistics(layer.name).hessian;
        if (!hessian) throw new InvalidArgumentError('statistics', `no Hessian was observed for layer '${layer.name}'; vq requires { kind: 'hessian' }`);
        const codebookBits = layer.assignment ? Math.min(16, elementCodec(layer.assignment.format).bits * options.dimension) : options.codebookBits;
        const { backend, ...rest } = options;
        const result = await vectorQuantizeLayer(layer.weight, hessian, {
          ...rest,
          codebookBits,
          ...(backend ? { backend } : {}),
          ...(context.signal ? { signal: context.signal } : {}),
        });
        for (const w of result.warnings) warnings.push({ ...w, layer: layer.name });
        layers.push({ ...layer, weight: result.weight, stored: { kind: 'codebook', tensor: result.quantized }, bitsPerWeight: result.bitsPerWeight });
        context.progress?.(index + 1, context.layers.length, layer.name);
      }
      return { layers, warnings };
    },
  };
}
