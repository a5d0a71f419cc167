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
 * `w8a8` is refused: bitsmith simulates W8A8 (recipes with `inputActivations`, see examples/recipes/w8a8-*.yaml and
 * docs/activations.md) but none of these export formats carries activation scales yet.
 */
export const PRESETS: Readonly<Record<string, QuantizePreset>> = {
  w4a16: {
    name: 'w4a16',
    description: 'GPTQ int4, groups of 128, fp16 scales, 16-bit activations; compressed-tensors (vLLM)',
    recipe: '# preset w4a16: GPTQ (arXiv:2210.17323), 4-bit symmetric, groups of 128, fp16 scales\nname: w4a16\nsteps:\n  - gptq: { bits: 4, groupSize: 128 }\n',
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
const REFUSED: Readonly<Record<string, string>> = {
  w8a8:
    'w8a8 needs an export that carries activation scales (compressed-tensors input_activations or ONNX QDQ), which bitsmith does not write yet. ' +
    'To measure W8A8, run a recipe with inputActivations (examples/recipes/w8a8-smoothquant-static.yaml) and --save fake; bitsmith eval applies the activation quantizers. ' +
    `For a deployable file use a weight-only preset (${Object.keys(PRESETS).join(', ')})`,
};

/**
 * Looks up a preset by name.
 *
 * @throws InvalidArgumentError naming the known presets, or why a known-but-unavailable one (`w8a8`) is refused.
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
