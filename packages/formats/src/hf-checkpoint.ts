import { InvalidArgumentError, InvalidFileError, UnsupportedFormatError, type DType, type QuantizedTensor, type Tensor } from '@bitsmith/core';
import { packCompressedTensors, unpackCompressedTensors, type CompressedTensorsLayer, type CompressedTensorsWeightArgs } from './compressed-tensors.js';
import { packGptq, unpackGptq, type FormatWarning, type GptqCheckpointFormat, type GptqLayer, type GptqLayerConfig } from './gptq.js';
import { readChecked, readCheckedSync } from './checked-read.js';
import { decodeSafetensorsFile, encodeSafetensorsFile, floatTensor, int32Tensor, storedFloat32, type StoredTensor } from './stored-tensor.js';

/** A quantized model to export: its float tensors, the quantized layers, and its `config.json`. */
export interface QuantizedModelExport {
  /**
   * Every tensor of the model by Hugging Face name (as `LlamaGraph.tensors()` gives them). The `<layer>.weight` of each
   * quantized layer is replaced by the packed tensors; float32 tensors are stored as `floatDType`, int32 ones as is.
   */
  readonly tensors: ReadonlyMap<string, Tensor<DType>> | Readonly<Record<string, Tensor<DType>>>;
  /** Quantized layers by module name (`model.layers.0.mlp.down_proj`). */
  readonly quantized: ReadonlyMap<string, QuantizedTensor>;
  /** The model's `config.json`; the export adds `quantization_config` to a copy. Default `{}`. */
  readonly config?: Readonly<Record<string, unknown>>;
}

/** Options shared by the checkpoint writers. */
export interface CheckpointOptions {
  /** Storage of the float (unquantized) tensors: `F32` (default, exact), `F16` or `BF16` (rounded to nearest). */
  floatDType?: 'F32' | 'F16' | 'BF16';
  /** Extra `__metadata__` entries of `model.safetensors` (`format: 'pt'` is always set). */
  metadata?: Readonly<Record<string, string>>;
}

/** A checkpoint in memory: the tensors of `model.safetensors` and the JSON files beside it. */
export interface Checkpoint {
  readonly tensors: Map<string, StoredTensor>;
  /** `config.json` with `quantization_config`. */
  readonly config: Record<string, unknown>;
  /** Other JSON files to write (GPTQ: `quantize_config.json`). */
  readonly extraFiles: Record<string, unknown>;
  readonly warnings: FormatWarning[];
}

/** A checkpoint read back: quantized layers and float tensors. */
export interface LoadedCheckpoint {
  readonly quantized: Map<string, QuantizedTensor>;
  /** The other tensors, decoded to float32 (integer tensors too). */
  readonly tensors: Map<string, Tensor<'float32'>>;
  readonly config: Record<string, unknown>;
}

/** What a save wrote. */
export interface SavedCheckpoint {
  readonly files: string[];
  readonly quantizationConfig: Record<string, unknown>;
  readonly warnings: FormatWarning[];
}

/** The compressed-tensors config schema version written into `quantization_config.version`. */
export const COMPRESSED_TENSORS_VERSION = '0.14.0';

function entries<T>(m: ReadonlyMap<string, T> | Readonly<Record<string, T>>): [string, T][] {
  return m instanceof Map ? [...m.entries()] : Object.entries(m as Record<string, T>);
}

function floatTensors(model: QuantizedModelExport, options: CheckpointOptions, out: Map<string, StoredTensor>): string[] {
  const unquantizedLinear: string[] = [];
  for (const [name, t] of entries(model.tensors)) {
    const layer = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : undefined;
    if (layer !== undefined && model.quantized.has(layer)) continue;
    if (layer !== undefined && t.shape.length === 2 && !/embed/.test(layer)) unquantizedLinear.push(layer);
    if (t.dtype === 'float32' || t.dtype === 'float64') out.set(name, floatTensor(t.data as Float32Array, t.shape, options.floatDType ?? 'F32', false));
    else if (t.dtype === 'int32') out.set(name, int32Tensor(t.data as Int32Array, t.shape));
    else throw new UnsupportedFormatError(`tensor ${name} is ${t.dtype}; checkpoints store float32 and int32 tensors`);
  }
  for (const layer of model.quantized.keys()) {
    const has = model.tensors instanceof Map ? model.tensors.has(`${layer}.weight`) : `${layer}.weight` in model.tensors;
    if (!has) throw new InvalidArgumentError('quantized', `layer ${layer} has no tensor ${layer}.weight in the model`);
  }
  return unquantizedLinear;
}

/**
 * Builds a compressed-tensors `pack-quantized` checkpoint in memory: packed layers (see `packCompressedTensors`),
 * float tensors, and `quantization_config` (`quant_method: "compressed-tensors"`, `format: "pack-quantized"`,
 * `quantization_status: "compressed"`, one config group per distinct weight scheme — `targets: ["Linear"]` when all
 * layers share one, their exact names otherwise — and `ignore`: `lm_head` and every other unquantized 2-D weight
 * except embeddings).
 *
 * @example
 * ```ts
 * const ckpt = compressedTensorsCheckpoint({ tensors: graph.tensors(), quantized, config });
 * ```
 */
export function compressedTensorsCheckpoint(model: QuantizedModelExport, options: CheckpointOptions = {}): Checkpoint {
  const tensors = new Map<string, StoredTensor>();
  const unquantized = floatTensors(model, options, tensors);
  const schemes = new Map<string, { args: CompressedTensorsWeightArgs; layers: string[] }>();
  for (const [layer, q] of model.quantized) {
    const { tensors: packed, args } = packCompressedTensors(q);
    for (const [key, t] of Object.entries(packed)) if (t) tensors.set(`${layer}.${key}`, t as StoredTensor);
    const key = JSON.stringify(args);
    if (!schemes.has(key)) schemes.set(key, { args, layers: [] });
    schemes.get(key)!.layers.push(layer);
  }
  const groups: Record<string, unknown> = {};
  [...schemes.values()].forEach((s, i) => {
    groups[`group_${i}`] = { targets: schemes.size === 1 ? ['Linear'] : s.layers.sort(), weights: s.args, input_activations: null, output_activations: null, format: 'pack-quantized' };
  });
  const ignore = [...new Set([...(model.quantized.has('lm_head') ? [] : ['lm_head']), ...unquantized])].sort();
  const quantizationConfig = {
    quant_method: 'compressed-tensors',
    format: 'pack-quantized',
    quantization_status: 'compressed',
    config_groups: groups,
    ignore,
    kv_cache_scheme: null,
    global_compression_ratio: null,
    version: COMPRESSED_TENSORS_VERSION,
  };
  return { tensors, config: { ...(model.config ?? {}), quantization_config: quantizationConfig }, extraFiles: {}, warnings: [] };
}

/** Options of {@link gptqCheckpoint} and {@link saveGptq}. */
export interface GptqOptions extends CheckpointOptions {
  /** `gptq` (v1, AutoGPTQ; default) or `gptq_v2` (GPTQModel). */
  checkpointFormat?: GptqCheckpointFormat;
  /** `damp_percent` recorded in the config (informational). Default 0.01. */
  dampPercent?: number;
}

/**
 * Builds a GPTQ checkpoint in memory: `qweight`/`qzeros`/`scales`/`g_idx` per layer (see `packGptq`), float tensors,
 * `quantization_config` in config.json and `quantize_config.json` (`bits`, `group_size`, `desc_act`, `sym`,
 * `checkpoint_format`, `quant_method: "gptq"`). Every quantized layer must share bits, group size and symmetry
 * (GPTQ's config is global).
 *
 * @example
 * ```ts
 * const ckpt = gptqCheckpoint({ tensors: graph.tensors(), quantized, config }, { checkpointFormat: 'gptq_v2' });
 * ```
 */
export function gptqCheckpoint(model: QuantizedModelExport, options: GptqOptions = {}): Checkpoint {
  const checkpointFormat = options.checkpointFormat ?? 'gptq';
  const tensors = new Map<string, StoredTensor>();
  floatTensors(model, options, tensors);
  const warnings: FormatWarning[] = [];
  let shared: (GptqLayerConfig & { desc_act: boolean }) | undefined;
  let descAct = false;
  for (const [layer, q] of model.quantized) {
    const { tensors: packed, config, warnings: w } = packGptq(q, checkpointFormat);
    for (const x of w) warnings.push({ ...x, layer });
    if (shared && (shared.bits !== config.bits || shared.group_size !== config.group_size || shared.sym !== config.sym)) {
      throw new UnsupportedFormatError(`GPTQ checkpoints share one bits/group_size/sym; ${layer} has ${config.bits}/${config.group_size}/${config.sym}, others ${shared.bits}/${shared.group_size}/${shared.sym} (use compressed-tensors for mixed schemes)`);
    }
    shared ??= config;
    descAct ||= config.desc_act;
    for (const [key, t] of Object.entries(packed)) tensors.set(`${layer}.${key}`, t as StoredTensor);
  }
  if (!shared) throw new InvalidArgumentError('quantized', 'no quantized layers to export');
  const quantizeConfig = {
    bits: shared.bits,
    group_size: shared.group_size,
    damp_percent: options.dampPercent ?? 0.01,
    desc_act: descAct,
    static_groups: false,
    sym: shared.sym,
    true_sequential: true,
    quant_method: 'gptq',
    checkpoint_format: checkpointFormat,
  };
  return { tensors, config: { ...(model.config ?? {}), quantization_config: quantizeConfig }, extraFiles: { 'quantize_config.json': quantizeConfig }, warnings };
}




/** Whether a compressed-tensors target (`Linear`, an exact name, or `re:` + a regular expression matched from the start) selects a layer. */
export function compressedTensorsTargetMatches(target: string, layer: string): boolean {
  if (target === 'Linear') return true;
  if (target.startsWith('re:')) return new RegExp(`^(?:${target.slice(3)})`).test(layer);
  return target === layer;
}

function decodeRest(tensors: Map<string, StoredTensor>, used: Set<string>): Map<string, Tensor<'float32'>> {
  const out = new Map<string, Tensor<'float32'>>();
  for (const [name, t] of tensors) if (!used.has(name)) out.set(name, { dtype: 'float32', shape: [...t.shape], data: storedFloat32(t) });
  return out;
}

/**
 * Reads a compressed-tensors `pack-quantized` checkpoint from its tensors and `quantization_config` back into
 * quantized layers (the inverse of {@link compressedTensorsCheckpoint}).
 *
 * @example
 * ```ts
 * const { quantized } = readCompressedTensorsCheckpoint(tensors, config.quantization_config);
 * ```
 */
export function readCompressedTensorsCheckpoint(tensors: Map<string, StoredTensor>, quantizationConfig: Record<string, unknown>, config: Record<string, unknown> = {}): LoadedCheckpoint {
  if (quantizationConfig.quant_method !== 'compressed-tensors') throw new UnsupportedFormatError(`quant_method is ${String(quantizationConfig.quant_method)}; expected compressed-tensors`);
  if (quantizationConfig.format !== 'pack-quantized') throw new UnsupportedFormatError(`compressed-tensors format ${String(quantizationConfig.format)}; only pack-quantized is read`);
  const groups = Object.values((quantizationConfig.config_groups ?? {}) as Record<string, { targets: string[]; weights: CompressedTensorsWeightArgs }>);
  const ignore = (quantizationConfig.ignore ?? []) as string[];
  const quantized = new Map<string, QuantizedTensor>();
  const used = new Set<string>();
  for (const name of tensors.keys()) {
    if (!name.endsWith('.weight_packed')) continue;
    const layer = name.slice(0, -'.weight_packed'.length);
    if (ignore.some((t) => compressedTensorsTargetMatches(t, layer))) throw new InvalidArgumentError('ignore', `layer ${layer} is packed but ignored by the config`);
    // compressed-tensors prefers an exact-name target over a regex over a class name.
    const group =
      groups.find((g) => g.targets.includes(layer)) ??
      groups.find((g) => g.targets.some((t) => t.startsWith('re:') && compressedTensorsTargetMatches(t, layer))) ??
      groups.find((g) => g.targets.includes('Linear'));
    if (!group) throw new InvalidArgumentError('config_groups', `no group targets layer ${layer}`);
    const part: Record<string, StoredTensor | undefined> = {};
    for (const key of ['weight_packed', 'weight_scale', 'weight_zero_point', 'weight_g_idx', 'weight_shape']) {
      const t = tensors.get(`${layer}.${key}`);
      if (t) {
        part[key] = t;
        used.add(`${layer}.${key}`);
      }
    }
    if (!part.weight_scale || !part.weight_shape) throw new InvalidArgumentError(layer, 'needs weight_scale and weight_shape beside weight_packed');
    quantized.set(layer, unpackCompressedTensors(part as unknown as CompressedTensorsLayer, group.weights));
  }
  return { quantized, tensors: decodeRest(tensors, used), config };
}

/**
 * Reads GPTQ tensors and their `quantize_config` back into quantized layers (the inverse of {@link gptqCheckpoint}).
 *
 * @example
 * ```ts
 * const { quantized } = readGptqCheckpoint(tensors, config.quantization_config);
 * ```
 */
export function readGptqCheckpoint(tensors: Map<string, StoredTensor>, quantizeConfig: Record<string, unknown>, config: Record<string, unknown> = {}): LoadedCheckpoint {
  const format = (quantizeConfig.checkpoint_format ?? 'gptq') as GptqCheckpointFormat;
  if (format !== 'gptq' && format !== 'gptq_v2') throw new UnsupportedFormatError(`GPTQ checkpoint_format ${String(format)}; expected gptq or gptq_v2`);
  const layerConfig: GptqLayerConfig = { bits: Number(quantizeConfig.bits), group_size: Number(quantizeConfig.group_size ?? -1), sym: quantizeConfig.sym !== false, checkpoint_format: format };
  const quantized = new Map<string, QuantizedTensor>();
  const used = new Set<string>();
  for (const name of tensors.keys()) {
    if (!name.endsWith('.qweight')) continue;
    const layer = name.slice(0, -'.qweight'.length);
    const part: Record<string, StoredTensor> = {};
    for (const key of ['qweight', 'qzeros', 'scales', 'g_idx']) {
      const t = tensors.get(`${layer}.${key}`);
      if (!t) throw new InvalidArgumentError(layer, `has qweight but no ${key}`);
      part[key] = t;
      used.add(`${layer}.${key}`);
    }
    quantized.set(layer, unpackGptq(part as unknown as GptqLayer, layerConfig));
  }
  return { quantized, tensors: decodeRest(tensors, used), config };
}

/** Options of {@link encodeCheckpointFiles}. */
export interface EncodeCheckpointOptions {
  /** `__metadata__` entries added to the safetensors header (beside `format: 'pt'`, `producer`, `content`). */
  metadata?: Readonly<Record<string, string>>;
  /** What the weights are, for the `content` metadata entry. Default `'quantized checkpoint'`. */
  content?: string;
}

/**
 * The files of a checkpoint folder, in memory: `model.safetensors`, `config.json` and the format's extra files (GPTQ's
 * `quantize_config.json`), by name. In a browser, wrap each in a `Blob` to offer it for download; the `node` entry's
 * `saveCompressedTensors` / `saveGptq` write the same bytes to disk.
 *
 * @example
 * ```ts
 * const files = encodeCheckpointFiles(compressedTensorsCheckpoint({ tensors: graph.tensors(), quantized, config }));
 * const url = URL.createObjectURL(new Blob([files.get('model.safetensors')!]));
 * ```
 */
export function encodeCheckpointFiles(ckpt: Checkpoint, options: EncodeCheckpointOptions = {}): Map<string, Uint8Array> {
  const text = (value: unknown) => new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
  const files = new Map<string, Uint8Array>();
  files.set('model.safetensors', encodeSafetensorsFile(ckpt.tensors, { format: 'pt', producer: 'bitsmith', content: options.content ?? 'quantized checkpoint', ...(options.metadata ?? {}) }));
  files.set('config.json', text(ckpt.config));
  for (const [name, value] of Object.entries(ckpt.extraFiles)) files.set(name, text(value));
  return files;
}
