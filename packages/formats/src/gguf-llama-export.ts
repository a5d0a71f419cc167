import { InvalidArgumentError, StoredFormRefusedError, UnsupportedFormatError, describeStored, type StepWarning, type StoredForm, type Tensor } from '@bitsmith/core';
import { GGML_BLOCK, LLAMA_FILE_TYPE, type GgmlTypeName } from './gguf-constants.js';
import type { GgufTokenizerMetadata } from './gguf-llama-tokenizer.js';
import type { GgufValue } from './gguf-metadata.js';
import { encodeGridForGguf, gridElements, reorderGridRows, type GgufTensorPath } from './gguf-stored-encode.js';
import { decodeGgmlTensor, encodeGgmlTensor, GGML_IMPORTANCE_TYPES } from './gguf-tensor-codec.js';
import type { GgufFileInput, GgufTensorInput } from './gguf-writer.js';

/** The parts of a Llama-family config that a GGUF file records (a `LlamaConfig` of `@bitsmith/models` fits). */
export interface GgufLlamaConfig {
  readonly modelType: string;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: { readonly type: string; readonly factor?: number };
  readonly maxPositionEmbeddings: number;
}

/** What {@link saveGgufModel} reads from a model graph (a `LlamaGraph` of `@bitsmith/models` fits). */
export interface GgufLlamaSource {
  readonly config: GgufLlamaConfig;
  /** Weights under Hugging Face names (`model.layers.0.self_attn.q_proj.weight`, ...). */
  tensors(): Map<string, Tensor<'float32'>>;
  readonly blocks: readonly { readonly linears: readonly { readonly name: string; readonly inputTransform?: unknown }[] }[];
}

/**
 * Tensor types {@link saveGgufModel} writes: one GGML type for every 2-D weight, or `Q4_K_M`, llama.cpp's mixture
 * (Q4_K everywhere; Q6_K for `output.weight` and for `attn_v` / `ffn_down` in the first and last eighth of the layers and
 * every third layer between, llama-quant.cpp's `use_more_bits`).
 */
export type GgufModelType = 'F32' | 'F16' | 'Q8_0' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q4_K' | 'Q5_K' | 'Q6_K' | 'IQ4_NL' | 'IQ4_XS' | 'Q4_K_M';

/** llama.cpp's `LLAMA_FTYPE_MOSTLY_Q4_K_M`. */
const FILE_TYPE_Q4_K_M = 15;

/**
 * llama-quant.cpp's `use_more_bits(i_layer, n_layers)` (integer division, as in C): the layers where Q4_K_M spends Q6_K
 * on attn_v and ffn_down.
 */
function useMoreBits(layer: number, layers: number): boolean {
  const eighth = Math.trunc(layers / 8);
  return layer < eighth || layer >= Math.trunc((7 * layers) / 8) || (layer - eighth) % 3 === 2;
}

/**
 * The layers whose `attn_v` and `ffn_down` llama.cpp's Q4_K_M stores as Q6_K (llama-quant.cpp `use_more_bits`: the
 * first and last eighth of the layers and every third layer between).
 *
 * @example
 * ```ts
 * ggufQ4KMHighBitLayers(8); // [0, 3, 6, 7]
 * ```
 */
export function ggufQ4KMHighBitLayers(layers: number): number[] {
  return Array.from({ length: layers }, (_, i) => i).filter((i) => useMoreBits(i, layers));
}

/**
 * The GGML type of a 2-D weight named `name` (llama.cpp name) for a model type. With tied embeddings (no
 * `output.weight`; `hasOutput` false) llama.cpp quantizes `token_embd.weight` as the output (Q6_K under Q4_K_M).
 *
 * @example
 * ```ts
 * ggufTensorType('blk.0.attn_v.weight', 'Q4_K_M', 8); // 'Q6_K' (use_more_bits)
 * ggufTensorType('token_embd.weight', 'Q4_K_M', 8, false); // 'Q6_K': tied embeddings
 * ```
 */
export function ggufTensorType(name: string, type: GgufModelType, layers: number, hasOutput = true): GgmlTypeName {
  if (type !== 'Q4_K_M') return type;
  if (name === 'output.weight' || (!hasOutput && name === 'token_embd.weight')) return 'Q6_K';
  const m = /^blk\.(\d+)\.(attn_v|ffn_down)\.weight$/.exec(name);
  return m && useMoreBits(Number(m[1]), layers) ? 'Q6_K' : 'Q4_K';
}

/** Every {@link GgufModelType}, for validating user input before any work. */
export const GGUF_MODEL_TYPES: readonly GgufModelType[] = ['Q4_K_M', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_XS', 'IQ4_NL', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'F16', 'F32'];

/** Model types (config `model_type`) {@link saveGgufModel} writes. */
export const GGUF_ARCHITECTURES: readonly string[] = ['llama', 'mistral'];

/** Options of {@link saveGgufModel}. */
export interface SaveGgufOptions {
  /** Type of the 2-D weights (embedding, projections, head). Norms and biases stay F32. */
  readonly type: GgufModelType;
  /** `general.name`. Default: the tokenizer folder's name. */
  readonly name?: string;
  /**
   * The recipe's stored form of each quantized linear layer, by layer name (`model.layers.0.self_attn.q_proj`, as
   * `runRecipe`'s `onStored` reports them). Grids are written from their codes and scales where the GGML type holds
   * them (see `GgufTensorPath`); `float` forms and layers without one are quantized from their weights. Other kinds
   * (lookup tables, codebooks, low-rank branches, sparse outliers) are refused with `StoredFormRefusedError` before
   * anything is written. Default: none (every weight quantized from the graph's float weights).
   */
  readonly stored?: ReadonlyMap<string, StoredForm>;
  /**
   * llama.cpp's importance matrix: per llama.cpp tensor name (`blk.0.attn_q.weight`), one weight per input column
   * (the mean squared activation; `imatrixImportance` of an `Imatrix`). Used by the k-quants and IQ4 encoders as
   * `llama-quantize --imatrix` does. Default: none.
   */
  readonly importance?: ReadonlyMap<string, Float32Array>;
}

/** One tensor {@link saveGgufModel} wrote. */
export interface SavedGgufTensor {
  readonly name: string;
  readonly type: GgmlTypeName;
  readonly shape: readonly number[];
  /** How the values were obtained (2-D weights only): from the recipe's grid or quantized from float weights. */
  readonly path?: GgufTensorPath;
  /** Whether the encoder used an importance matrix for this tensor. */
  readonly importance?: boolean;
  /** sqrt(sum (file - calibrated)^2 / sum calibrated^2) for tensors written from a stored grid. */
  readonly relativeDeviation?: number;
}

/** What {@link saveGgufModel} wrote. */
export interface SaveGgufResult {
  readonly tensors: readonly SavedGgufTensor[];
  readonly tokenizerModel: 'llama' | 'gpt2';
  readonly bytes: number;
  /** Tensors written in a fallback type because their rows do not split into the requested blocks. */
  readonly warnings: readonly StepWarning[];
}

/** llama.cpp's fallback when a row does not divide into 256-element super-blocks (llama-quant.cpp). */
const FALLBACK: Partial<Record<GgmlTypeName, GgmlTypeName>> = { Q4_K: 'Q5_0', Q5_K: 'Q5_0', Q6_K: 'Q8_0', IQ4_XS: 'IQ4_NL', IQ4_NL: 'Q5_0', Q4_0: 'F16', Q4_1: 'F16', Q5_0: 'F16', Q8_0: 'F16' };

function relativeRms(decoded: Float32Array, target: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < target.length; i++) {
    num += (decoded[i]! - target[i]!) ** 2;
    den += target[i]! ** 2;
  }
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}

/** Stored kinds the GGUF export writes (see {@link saveGgufModel}). */
export const GGUF_STORED_KINDS = ['grid', 'float'] as const;

/**
 * Why GGUF refuses a stored kind (GGML tensors are one block type each: no side tables, factors or sparse parts).
 *
 * @example
 * ```ts
 * GGUF_REFUSAL.codebook; // 'GGML has no vector-codebook block type ...'
 * ```
 */
export const GGUF_REFUSAL: Readonly<Record<'lut' | 'codebook' | 'low-rank' | 'sparse-outliers', string>> = {
  lut: "GGML's only table types (IQ4_NL/IQ4_XS) use one fixed table, not per-row learned lookup tables; re-quantizing would discard the learned levels (use --save fake)",
  codebook: 'GGML has no vector-codebook block type; re-quantizing would discard the codebook (use --save fake)',
  'low-rank': 'a GGML tensor is one block type; the low-rank branch would have to be folded into the weight and re-quantized, losing what it compensates (use --save fake)',
  'sparse-outliers': 'a GGML tensor is one block type; the sparse outliers would have to be re-quantized with the rest (use --save fake)',
};

/**
 * Refuses, before any work, a stored form GGUF cannot carry (lookup tables, codebooks, low-rank, sparse outliers).
 *
 * @throws StoredFormRefusedError naming the layer and the kind.
 * @example
 * ```ts
 * refuseGgufStored(stored); // throws for a low-rank layer
 * ```
 */
export function refuseGgufStored(stored: ReadonlyMap<string, StoredForm>): void {
  for (const [layer, form] of stored) {
    if (form.kind !== 'grid' && form.kind !== 'float') throw new StoredFormRefusedError('gguf', { layer }, describeStored(form), GGUF_REFUSAL[form.kind]);
  }
}

/**
 * Reorders the rows of a q or k projection for llama.cpp's rotary embedding (convert_hf_to_gguf.py `permute`):
 * Hugging Face rotates halves of each head (`rotate_half`), GGML's llama RoPE rotates adjacent pairs, so within each
 * head row `half * headDim/2 + i` moves to `2 * i + half`. Works on weights `[heads*headDim, columns]` and biases
 * (`columns = 1`).
 *
 * @example
 * ```ts
 * const q = permuteForGgmlRope(weight.data, 8, 16, 128); // 8 heads of 16, 128 columns
 * ```
 */
export function permuteForGgmlRope<T extends Float32Array | Float64Array | Int16Array | Int32Array>(data: T, heads: number, headDim: number, columns: number): T {
  if (data.length !== heads * headDim * columns) throw new InvalidArgumentError('data', `expected ${heads}x${headDim}x${columns} values, got ${data.length}`);
  const out = new (data.constructor as new (length: number) => T)(data.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let i = 0; i < half; i++) {
        const from = (h * headDim + s * half + i) * columns;
        const to = (h * headDim + 2 * i + s) * columns;
        (out as Float32Array).set(data.subarray(from, from + columns) as Float32Array, to);
      }
    }
  }
  return out;
}

const LINEAR_NAMES: Readonly<Record<string, string>> = {
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

/**
 * llama.cpp's name of a Hugging Face Llama tensor (`model.layers.3.self_attn.q_proj.weight` to `blk.3.attn_q.weight`),
 * or undefined for names llama.cpp does not load.
 *
 * @example
 * ```ts
 * ggufLlamaTensorName('model.embed_tokens.weight'); // 'token_embd.weight'
 * ```
 */
export function ggufLlamaTensorName(hfName: string): string | undefined {
  if (hfName === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hfName === 'model.norm.weight') return 'output_norm.weight';
  if (hfName === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hfName);
  if (!m) return undefined;
  const [, layer, module, kind] = m;
  if (module === 'input_layernorm') return `blk.${layer}.attn_norm.${kind}`;
  if (module === 'post_attention_layernorm') return `blk.${layer}.ffn_norm.${kind}`;
  const mapped = LINEAR_NAMES[module!];
  return mapped === undefined ? undefined : `blk.${layer}.${mapped}.${kind}`;
}

/**
 * The GGUF metadata llama.cpp needs for a Llama model (`general.*`, `llama.*`), without the tokenizer.
 *
 * @example
 * ```ts
 * const entries = ggufLlamaMetadata(graph.config, 'tinystories-656k', 'Q4_0');
 * ```
 */
export function ggufLlamaMetadata(config: GgufLlamaConfig, name: string, type: GgufModelType): [string, GgufValue][] {
  const u32 = (value: number): GgufValue => ({ type: 'uint32', value });
  const f32 = (value: number): GgufValue => ({ type: 'float32', value });
  const entries: [string, GgufValue][] = [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: name }],
    ['general.file_type', u32(type === 'Q4_K_M' ? FILE_TYPE_Q4_K_M : LLAMA_FILE_TYPE[type])],
  ];
  if (type !== 'F32' && type !== 'F16') entries.push(['general.quantization_version', u32(2)]);
  entries.push(
    ['llama.context_length', u32(config.maxPositionEmbeddings)],
    ['llama.embedding_length', u32(config.hiddenSize)],
    ['llama.block_count', u32(config.numHiddenLayers)],
    ['llama.feed_forward_length', u32(config.intermediateSize)],
    ['llama.attention.head_count', u32(config.numAttentionHeads)],
    ['llama.attention.head_count_kv', u32(config.numKeyValueHeads)],
    ['llama.rope.freq_base', f32(config.ropeTheta)],
    ['llama.attention.layer_norm_rms_epsilon', f32(config.rmsNormEps)],
    ['llama.rope.dimension_count', u32(config.headDim)],
    ['llama.vocab_size', u32(config.vocabSize)],
  );
  if (config.headDim * config.numAttentionHeads !== config.hiddenSize) {
    entries.push(['llama.attention.key_length', u32(config.headDim)], ['llama.attention.value_length', u32(config.headDim)]);
  }
  if (config.ropeScaling.type === 'linear') {
    entries.push(['llama.rope.scaling.type', { type: 'string', value: 'linear' }], ['llama.rope.scaling.factor', f32(config.ropeScaling.factor!)]);
  }
  return entries;
}

/**
 * The GGUF file of a Llama-family graph, in memory: the tensors under llama.cpp's names (Q/K rows permuted for
 * ggml's RoPE), each 2-D weight encoded as `options.type` (Q4_K_M mixes Q4_K and Q6_K as llama.cpp does), with the
 * architecture and tokenizer metadata. `encodeGguf(result.file)` gives the bytes (the `node` entry's `saveGgufModel`
 * writes them to disk, reading the tokenizer from the model folder).
 *
 * @param tokenizer From {@link ggufTokenizerMetadataFromJson}.
 * @param options `type` of the weights; `name` of the model (metadata `general.name`).
 * @throws UnsupportedFormatError for model types other than llama/mistral, llama3 RoPE scaling, or run-time input
 *   transforms (online rotations) that GGUF cannot express.
 * @example
 * ```ts
 * const tokenizer = ggufTokenizerMetadataFromJson(tokenizerJson, tokenizerConfig, graph.config.vocabSize);
 * const { file } = ggufLlamaFile(graph, tokenizer, { type: 'Q8_0', name: 'tinystories' });
 * const bytes = encodeGguf(file);
 * ```
 */
export function ggufLlamaFile(graph: GgufLlamaSource, tokenizer: GgufTokenizerMetadata, options: SaveGgufOptions & { name: string }): SaveGgufResult & { file: GgufFileInput } {
  const { config } = graph;
  if (!(options.type in LLAMA_FILE_TYPE) && options.type !== 'Q4_K_M') throw new InvalidArgumentError('type', `unsupported GGUF type ${String(options.type)}`);
  if (!GGUF_ARCHITECTURES.includes(config.modelType)) {
    throw new UnsupportedFormatError(`GGUF export supports llama and mistral models, not ${config.modelType}`);
  }
  if (config.ropeScaling.type !== 'none' && config.ropeScaling.type !== 'linear') {
    throw new UnsupportedFormatError(`GGUF export does not write ${config.ropeScaling.type} RoPE scaling (rope_freqs) yet`);
  }
  for (const block of graph.blocks) {
    for (const l of block.linears) {
      if (l.inputTransform !== undefined) throw new UnsupportedFormatError(`${l.name} has a run-time input transform, which GGUF cannot express`);
    }
  }
  const warnings: StepWarning[] = [];
  const stored = options.stored ?? new Map<string, StoredForm>();
  refuseGgufStored(stored);
  const tensors: (GgufTensorInput & SavedGgufTensor)[] = [];
  const weights = graph.tensors();
  const hasOutput = [...weights.keys()].some((k) => ggufLlamaTensorName(k) === 'output.weight');
  for (const [hfName, t] of weights) {
    const name = ggufLlamaTensorName(hfName);
    if (name === undefined) {
      warnings.push({ step: 'gguf', layer: hfName, message: `${hfName} has no llama.cpp name; not written` });
      continue;
    }
    const columns = t.shape.length === 2 ? t.shape[1]! : 1;
    const heads = /\.attn_q\./.test(name) ? config.numAttentionHeads : /\.attn_k\./.test(name) ? config.numKeyValueHeads : 0;
    const reorder = <T extends Float32Array | Int16Array | Int32Array>(data: T): T => (heads > 0 ? permuteForGgmlRope(data, heads, config.headDim, columns) : data);
    const data = reorder(t.data);
    if (t.shape.length !== 2) {
      tensors.push({ name, shape: t.shape, type: 'F32', data: encodeGgmlTensor('F32', data) });
      continue;
    }
    let type = ggufTensorType(name, options.type, config.numHiddenLayers, hasOutput);
    while (columns % GGML_BLOCK[type].elements !== 0) {
      const next = FALLBACK[type] ?? 'F32';
      warnings.push({ step: 'gguf', layer: name, message: `rows of ${columns} are not a multiple of ${GGML_BLOCK[type].elements}; ${type} falls back to ${next}` });
      type = next;
    }
    const importance = options.importance?.get(name);
    if (importance !== undefined && importance.length !== columns) {
      throw new InvalidArgumentError('importance', `${name} has ${columns} input columns, its importance ${importance.length} values`);
    }
    const weighted = importance !== undefined && GGML_IMPORTANCE_TYPES.includes(type);
    const form = stored.get(hfName.replace(/\.weight$/, ''));
    if (form?.kind === 'grid' && type !== 'F32' && type !== 'F16') {
      let grid;
      try {
        grid = reorderGridRows(gridElements(form.tensor), reorder);
      } catch (error) {
        if (!UnsupportedFormatError.isInstance(error)) throw error;
        grid = undefined;
        warnings.push({ step: 'gguf', layer: name, message: `${error.message}; re-quantized to ${type} from the calibrated weights` });
      }
      if (grid) {
        const encoded = encodeGridForGguf(grid, data, type, weighted ? importance : undefined);
        if (encoded.path === 're-quantized') {
          warnings.push({ step: 'gguf', layer: name, message: `${encoded.refittedBlocks} of ${encoded.blocks} blocks of the calibrated grid do not fit ${type} and were re-quantized from the calibrated weights (relative deviation ${encoded.relativeDeviation.toPrecision(3)})` });
        }
        tensors.push({ name, shape: t.shape, type, data: encoded.bytes, path: encoded.path, importance: weighted, relativeDeviation: encoded.relativeDeviation });
        continue;
      }
      const bytes = encodeGgmlTensor(type, data, weighted ? { columns, importance } : { columns });
      tensors.push({ name, shape: t.shape, type, data: bytes, path: 're-quantized', importance: weighted, relativeDeviation: relativeRms(decodeGgmlTensor(type, bytes, data.length), data) });
      continue;
    }
    const bytes = encodeGgmlTensor(type, data, weighted ? { columns, importance } : { columns });
    tensors.push({ name, shape: t.shape, type, data: bytes, path: type === 'F32' ? 'exact' : 'quantized', importance: weighted });
  }
  const metadata = [...ggufLlamaMetadata(config, options.name, options.type), ...tokenizer.entries];
  const bytes = tensors.reduce((sum, t) => sum + t.data.byteLength, 0);
  return { file: { metadata, tensors }, tensors: tensors.map(({ data: _, ...t }) => t), tokenizerModel: tokenizer.model, bytes, warnings };
}
