import { InvalidArgumentError } from '@bitsmith/core';
import type { GgufModelType } from '@bitsmith/formats';

/** A named quantization setting of `bitsmith quantize --preset`: a recipe and the format it is saved in. */
export interface QuantizePreset {
  readonly name: string;
  /** What it produces and for which runtime. */
  readonly description: string;
  /** Recipe file text (YAML), or `undefined` when the export format quantizes by itself (GGUF k-quants). */
  readonly recipe: string | undefined;
  /** `--save` format. */
  readonly save: 'compressed-tensors' | 'onnx' | 'gguf';
  /** GGUF tensor type for `save: 'gguf'`. */
  readonly ggufType?: GgufModelType;
}

/**
 * The presets of `bitsmith quantize --preset NAME`.
 *
 * - `w4a16`: llm-compressor's W4A16 scheme (GPTQ, arXiv:2210.17323): 4-bit symmetric integer weights in groups of
 *   128 with fp16 scales, activations stay 16-bit; saved as compressed-tensors (`pack-quantized`), which vLLM loads.
 *   Needs `--calibration`.
 * - `transformers.js-q4`: what transformers.js calls `dtype: 'q4'`: ONNX `MatMulNBits` with 4-bit blocks of 32 and
 *   fp16 scales, calibrated with AWQ (arXiv:2306.00978) then GPTQ instead of the converter's round-to-nearest; writes
 *   the folder transformers.js loads (`onnx/model_q4.onnx`, `model_q4f16.onnx` for WebGPU, `model.onnx`, config and
 *   tokenizer). Needs `--calibration`. On llama-docs-29m it has lower perplexity in transformers.js than onnxruntime's
 *   block-32 RTN at the same size (docs/formats.md).
 * - `llama.cpp-q4_k_m`: a GGUF file with llama.cpp's Q4_K_M mixture (Q4_K, Q6_K for the output and for half of
 *   attn_v / ffn_down), quantized from the float weights as `llama-quantize` does without an importance matrix.
 *
 * - `w8a8`: llm-compressor's W8A8 (INT8) scheme as its SmoothQuant + GPTQ example builds it: SmoothQuant
 *   (arXiv:2211.10438, alpha 0.5) folded into the norms, GPTQ int8 weights per output channel, int8 inputs per token
 *   with run-time scales; saved as compressed-tensors `int-quantized` with `input_activations`, which vLLM runs with
 *   its int8 kernels. Needs `--calibration`. On llama-docs-29m the same recipe with RTN weights
 *   (`w8a8-smoothquant-dynamic`) is within 0.2% of float perplexity (docs/activations.md).
 * - `w8a8-static`: the same with one calibrated (static, min-max) int8 scale per layer input, written as each layer's
 *   `input_scale`: no run-time range reduction, at a measurable cost (about 1% perplexity on llama-docs-29m).
 */
export const PRESETS: Readonly<Record<string, QuantizePreset>> = {
  w4a16: {
    name: 'w4a16',
    description: 'GPTQ int4, groups of 128, fp16 scales, 16-bit activations; compressed-tensors (vLLM)',
    recipe: '# preset w4a16: GPTQ (arXiv:2210.17323), 4-bit symmetric, groups of 128, fp16 scales\nname: w4a16\nsteps:\n  - gptq: { bits: 4, groupSize: 128 }\n',
    save: 'compressed-tensors',
  },
  w8a8: {
    name: 'w8a8',
    description: 'SmoothQuant + GPTQ int8 per channel, int8 inputs per token (dynamic); compressed-tensors int-quantized (vLLM)',
    recipe:
      '# preset w8a8: SmoothQuant (arXiv:2211.10438) + GPTQ int8 per channel, int8 per-token dynamic inputs (llm-compressor W8A8)\nname: w8a8\n' +
      'inputActivations: { format: int8, granularity: token, dynamic: true }\nsteps:\n  - smoothquant: { alpha: 0.5 }\n  - gptq: { bits: 8, granularity: channel }\n',
    save: 'compressed-tensors',
  },
  'w8a8-static': {
    name: 'w8a8-static',
    description: 'SmoothQuant + GPTQ int8 per channel, int8 inputs per tensor with calibrated input_scale; compressed-tensors int-quantized (vLLM)',
    recipe:
      '# preset w8a8-static: SmoothQuant (arXiv:2211.10438) + GPTQ int8 per channel, int8 per-tensor static inputs (min-max input_scale)\nname: w8a8-static\n' +
      'inputActivations: { format: int8, granularity: tensor, dynamic: false }\nsteps:\n  - smoothquant: { alpha: 0.5 }\n  - gptq: { bits: 8, granularity: channel }\n',
    save: 'compressed-tensors',
  },
  'transformers.js-q4': {
    name: 'transformers.js-q4',
    description: "transformers.js dtype 'q4' (and q4f16): ONNX MatMulNBits, 4-bit blocks of 32, AWQ + GPTQ; needs --calibration",
    recipe:
      '# preset transformers.js-q4: AWQ scales (arXiv:2306.00978), then GPTQ (arXiv:2210.17323), 4-bit symmetric, blocks of 32, fp16 scales (ONNX MatMulNBits)\n' +
      'name: transformers.js-q4\nsteps:\n  - awq: { bits: 4, groupSize: 32 }\n  - gptq: { bits: 4, groupSize: 32 }\n',
    save: 'onnx',
  },
  'llama.cpp-q4_k_m': {
    name: 'llama.cpp-q4_k_m',
    description: "llama.cpp's Q4_K_M mixture (Q4_K; Q6_K for output and half of attn_v/ffn_down), from the float weights",
    recipe: undefined,
    save: 'gguf',
    ggufType: 'Q4_K_M',
  },
};

/** Presets that are named on purpose but not available, with the reason. */
const REFUSED: Readonly<Record<string, string>> = {};

/**
 * Looks up a preset by name.
 *
 * @throws InvalidArgumentError naming the known presets (or why a known-but-unavailable one is refused).
 * @example
 * ```ts
 * const { recipe, save } = resolvePreset('w4a16'); // GPTQ int4 g128, compressed-tensors
 * ```
 */
export function resolvePreset(name: string): QuantizePreset {
  const preset = PRESETS[name];
  if (preset) return preset;
  const refused = REFUSED[name];
  if (refused) throw new InvalidArgumentError('--preset', refused);
  throw new InvalidArgumentError('--preset', `unknown preset '${name}'; known: ${Object.keys(PRESETS).join(', ')}`);
}
