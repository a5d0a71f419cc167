/**
 * Smallest hidden size for which `bitsmith quantize` tries the webgpu backend by itself: 2048, a 1B-class model
 * (Llama-3.2-1B). From there a block's calibration (128 x 512 tokens: about 8 TFLOP per block at hidden 2048) takes
 * tens of seconds on a CPU backend's ~200 GFLOP/s and a few on a GPU; below it (the 29M and 656k test models) blocks
 * take milliseconds to seconds on the CPU and the GPU's fixed costs (loading Dawn's 20 MB module, compiling shaders,
 * the weight uploads and a round trip per GPTQ group) do not pay.
 */
export const WEBGPU_MIN_HIDDEN_SIZE = 2048;

/** Parameter count from which `bitsmith quantize` tries the webgpu backend whatever the hidden size: 1e9. */
export const WEBGPU_MIN_PARAMETERS = 1e9;

/** What {@link backendChoice} decides. */
export interface BackendChoice {
  /** Whether to look for a WebGPU adapter (and use it, first, where one is found). */
  readonly probeWebgpu: boolean;
  /** Why, in words, with how to override it. */
  readonly reason: string;
}

/**
 * Whether `bitsmith quantize` should try the webgpu backend for a model: only when the model is large enough to pay
 * for it (hidden size at least {@link WEBGPU_MIN_HIDDEN_SIZE} or at least {@link WEBGPU_MIN_PARAMETERS} parameters)
 * and neither `BITSMITH_BACKEND` (forces one backend) nor `BITSMITH_WEBGPU` (1: always try, 0: never) decides it.
 * Small models and CI thus never load Dawn. A pure function of the model's size and the environment.
 *
 * @example
 * ```ts
 * backendChoice({ hiddenSize: 4096, parameters: 8.03e9 }, process.env).probeWebgpu; // true
 * ```
 */
export function backendChoice(model: { hiddenSize: number; parameters: number }, env: Readonly<Record<string, string | undefined>>): BackendChoice {
  const forced = env.BITSMITH_BACKEND?.trim();
  if (forced) return { probeWebgpu: false, reason: `BITSMITH_BACKEND=${forced} chose it` };
  const asked = env.BITSMITH_WEBGPU?.trim();
  if (asked === '1') return { probeWebgpu: true, reason: 'BITSMITH_WEBGPU=1 asked for webgpu first' };
  if (asked === '0') return { probeWebgpu: false, reason: 'BITSMITH_WEBGPU=0 ruled out webgpu' };
  const billions = (model.parameters / 1e9).toFixed(2);
  if (model.hiddenSize >= WEBGPU_MIN_HIDDEN_SIZE || model.parameters >= WEBGPU_MIN_PARAMETERS) {
    return { probeWebgpu: true, reason: `the model (hidden size ${model.hiddenSize}, ${billions}B parameters) is large enough for the GPU; BITSMITH_BACKEND=wasm keeps it on the CPU` };
  }
  return {
    probeWebgpu: false,
    reason: `the model (hidden size ${model.hiddenSize}, ${billions}B parameters) is below hidden size ${WEBGPU_MIN_HIDDEN_SIZE} and ${WEBGPU_MIN_PARAMETERS / 1e9}B parameters, where the GPU does not pay; BITSMITH_BACKEND=webgpu forces it`,
  };
}

/**
 * Parameters of a Llama-form model from its config (embedding, head unless tied, attention and dense MLP per block;
 * norms left out).
 *
 * @example
 * ```ts
 * llamaParameterCount({ hiddenSize: 4096, intermediateSize: 14336, numHiddenLayers: 32, numAttentionHeads: 32, numKeyValueHeads: 8, headDim: 128, vocabSize: 128256, tieWordEmbeddings: false }); // 8.03e9
 * ```
 */
export function llamaParameterCount(c: {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  vocabSize: number;
  tieWordEmbeddings: boolean;
}): number {
  const h = c.hiddenSize;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const block = h * q + 2 * h * kv + q * h + 3 * h * c.intermediateSize;
  return c.numHiddenLayers * block + c.vocabSize * h * (c.tieWordEmbeddings ? 1 : 2);
}
