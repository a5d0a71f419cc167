import { InvalidArgumentError } from '@bitsmith/core';
import { ggufQ4KMHighBitLayers, type GgufModelType } from '@bitsmith/formats';

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
  /** The recipe for a model of `layers` decoder layers, when it depends on the depth (used instead of `recipe`). */
  readonly recipeFor?: (layers: number) => string;
}

/**
 * A recipe for a model of `layers` layers (measured, not the preset: on llama-docs-29m it lost to the imatrix-weighted
 * k-quants, KL 0.0121 vs 0.0108 to the F16 model): GPTQ (arXiv:2210.17323) onto the grids
 * of llama.cpp's Q4_K_M mixture, so that the GGUF export re-derives the k-quant scales from GPTQ's result instead of
 * rounding again: 4-bit symmetric groups of 32 (Q4_K's sub-blocks) everywhere, 6-bit symmetric groups of 16 (Q6_K's)
 * for `v_proj` and `down_proj` in the layers where Q4_K_M spends Q6_K.
 *
 * @example
 * ```ts
 * llamaCppQ4KMRecipe(8); // gptq bits 4 g32; bits 6 g16 for layers 0, 3, 6, 7 v_proj/down_proj
 * ```
 */
export function llamaCppQ4KMRecipe(layers: number): string {
  const high = ggufQ4KMHighBitLayers(layers);
  const override = high.length
    ? `      overrides:\n        - targets: ['re:model\\.layers\\.(${high.join('|')})\\.(self_attn\\.v_proj|mlp\\.down_proj)']\n          bits: 6\n          groupSize: 16\n`
    : '';
  return `# preset llama.cpp-q4_k_m: GPTQ (arXiv:2210.17323) onto the grids of llama.cpp's Q4_K_M (Q4_K: int4 g32; Q6_K: int6 g16 for v_proj/down_proj of layers ${high.join(', ')})\nname: llama.cpp-q4_k_m\nsteps:\n  - gptq:\n      bits: 4\n      groupSize: 32\n${override}`;
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
 * - `llama.cpp-q4_k_m`: a GGUF file with llama.cpp's Q4_K_M mixture (Q4_K; Q6_K for the output or tied embeddings and
 *   for attn_v / ffn_down in the layers llama.cpp picks), quantized from the float weights with ggml's quantizers, as
 *   `llama-quantize` does; with `--imatrix FILE` (from `bitsmith imatrix`) importance-weighted, as `llama-quantize
 *   --imatrix` does. On llama-docs-29m this beat GPTQ onto the same grids ({@link llamaCppQ4KMRecipe}: KL 0.0108 vs
 *   0.0121 to the F16 model, docs/formats.md), so the preset quantizes from the float weights.
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
    description: "llama.cpp's Q4_K_M mixture (Q4_K; Q6_K for output and some attn_v/ffn_down) from the float weights, as llama-quantize does; with --imatrix FILE (bitsmith imatrix) importance-weighted as llama-quantize --imatrix",
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
