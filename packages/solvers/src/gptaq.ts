import { checkOptions, type Quantizer } from '@bitsmith/core';
import type { GptqOptions } from './gptq-quantize-layer.js';
import { hessianQuantizeStep } from './gptq.js';
import { gptaqOptionsSchema } from './solver-options.js';

/** Options of {@link gptaq}: GPTQ's, plus the weight of the asymmetric term. */
export interface GptaqOptions extends GptqOptions {
  /** Weight of the asymmetric correction, in [0, 1]. Default 0.25 (the paper's and reference code's choice). */
  alpha?: number;
}

/**
 * GPTAQ (Li et al., "GPTAQ: Efficient Finetuning-Free Quantization for Asymmetric Calibration", arXiv 2504.02692) as
 * a quantize step. GPTQ fits each quantized layer to its own output on the quantized model's inputs `X`
 * (`min ||(W - Q) X||`), so errors of earlier layers are never corrected; GPTAQ fits it to the float model's output
 * (`min ||Q X - W X_float||`) with the same column-by-column solver: the runner carries the float model's
 * activations beside the quantized ones and hands each layer `D = (X_float - X)^T X` (statistic
 * `float-input-cross`), and every column update also moves the later columns by `w_i P[i, :]`,
 * `P = alpha triu(D U^T, 1) U` (see `gptqQuantizeLayer`'s `asymmetric`). With `D = 0` it is GPTQ.
 *
 * @param options - GPTQ's options (`format` required, `granularity`, `dampening`, `blockSize`, `actOrder`, ...) and
 *   `alpha` (0.25).
 * @example
 * ```ts
 * const report = await runRecipe(model, [gptaq({ format: 'int4', granularity: { type: 'group', size: 128 } })], sequences);
 * ```
 */
export function gptaq(options: GptaqOptions): Quantizer {
  checkOptions('gptaq', gptaqOptionsSchema, options);
  const { alpha = 0.25, ...gptqOptions } = options;
  return hessianQuantizeStep('gptaq', gptqOptions, { alpha });
}
