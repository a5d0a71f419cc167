import { ActivationSchemeRefusedError, InvalidArgumentError, InvalidFileError, UnsupportedFormatError, type DType, type QuantizedTensor, type Tensor } from '@bitsmith/core';
import { packCompressedTensors, unpackCompressedTensors, type CompressedTensorsLayer, type CompressedTensorsWeightArgs } from './compressed-tensors.js';
import {
  activationSchemeFromCompressedTensors,
  activationTensors,
  compressedTensorsActivationArgs,
  compressedTensorsKvCacheArgs,
  readActivationQuantization,
  type ExportedActivationQuantization,
  type ExportedKvCacheQuantization,
} from './compressed-tensors-activations.js';
import { packCompressedTensorsNaive, unpackCompressedTensorsNaive, type CompressedTensorsNaiveLayer, type CompressedTensorsQuantizationArgs } from './compressed-tensors-naive.js';
import { packGptq, unpackGptq, type FormatWarning, type GptqCheckpointFormat, type GptqLayer, type GptqLayerConfig } from './gptq.js';
import { readChecked, readCheckedSync } from './checked-read.js';
import { planSafetensorsShards, SAFETENSORS_INDEX_FILE, type SafetensorsShardPlan } from './safetensors-shards.js';
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
  /**
   * compressed-tensors only: how quantized layers' inputs are quantized at run time, by module name (written as the
   * config group's `input_activations`, with an `input_scale` per layer when static). Layers listed here store their
   * weights unpacked (`int-quantized` / `float-quantized`), as llm-compressor does for W8A8 and FP8 schemes.
   */
  readonly inputActivations?: ReadonlyMap<string, ExportedActivationQuantization>;
  /** compressed-tensors only: the KV-cache quantization of each attention module (`model.layers.0.self_attn`): `kv_cache_scheme`, `k_scale`, `v_scale`. */
  readonly kvCache?: ReadonlyMap<string, ExportedKvCacheQuantization>;
}

/** Options shared by the checkpoint writers. */
export interface CheckpointOptions {
  /** Storage of the float (unquantized) tensors: `F32` (default, exact), `F16` or `BF16` (rounded to nearest). */
  floatDType?: 'F32' | 'F16' | 'BF16';
  /** Extra `__metadata__` entries of `model.safetensors` (`format: 'pt'` is always set). */
  metadata?: Readonly<Record<string, string>>;
  /**
   * Most bytes of tensor data per safetensors file; a checkpoint larger than this is written as shards
   * (`model-00001-of-0000N.safetensors`) with `model.safetensors.index.json`, as transformers writes them. Default
   * 5 GB (`DEFAULT_MAX_SHARD_BYTES`).
   */
  maxShardBytes?: number;
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
  /** compressed-tensors: input-activation quantization by layer (empty when the checkpoint has none). */
  readonly inputActivations?: Map<string, ExportedActivationQuantization>;
  /** compressed-tensors: KV-cache quantization by attention module (empty when the checkpoint has none). */
  readonly kvCache?: Map<string, ExportedKvCacheQuantization>;
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
 * Builds a compressed-tensors checkpoint in memory: quantized layers, float tensors, and `quantization_config`
 * (`quant_method: "compressed-tensors"`, `quantization_status: "compressed"`, one config group per distinct
 * weight / input scheme — `targets: ["Linear"]` when all layers share one, their exact names otherwise — and
 * `ignore`: `lm_head` and every other unquantized 2-D weight except embeddings).
 *
 * Weight-only integer layers are packed (`pack-quantized`, see `packCompressedTensors`). Layers with quantized inputs
 * (`model.inputActivations`) store their weights unpacked, as llm-compressor does: `int-quantized` (I8 `weight`) or
 * `float-quantized` (F8_E4M3 `weight`), with `input_activations` in their group and an `input_scale` (and
 * `input_zero_point`) per layer when static; FP8 weights without quantized inputs are `naive-quantized`. The global
 * `format` is the groups' format, or `mixed-precision` when they differ. `model.kvCache` writes `kv_cache_scheme` and a
 * `k_scale` / `v_scale` per attention module.
 *
 * @throws ActivationSchemeRefusedError for an activation or cache scheme compressed-tensors cannot express, or quantized
 *   inputs on a layer whose weight stays float.
 * @example
 * ```ts
 * const ckpt = compressedTensorsCheckpoint({ tensors: graph.tensors(), quantized, config });
 * ```
 */
export function compressedTensorsCheckpoint(model: QuantizedModelExport, options: CheckpointOptions = {}): Checkpoint {
  const tensors = new Map<string, StoredTensor>();
  const unquantized = floatTensors(model, options, tensors);
  for (const layer of model.inputActivations?.keys() ?? []) {
    if (!model.quantized.has(layer)) {
      throw new ActivationSchemeRefusedError('compressed-tensors', 'inputActivations', `layer ${layer} has quantized inputs but float weights; compressed-tensors pairs input quantization with quantized weights (target the same layers with a quantize step)`);
    }
  }
  const schemes = new Map<string, { group: { weights: unknown; input_activations: CompressedTensorsQuantizationArgs | null; format: string }; layers: string[] }>();
  for (const [layer, q] of model.quantized) {
    const act = model.inputActivations?.get(layer);
    let group: { weights: unknown; input_activations: CompressedTensorsQuantizationArgs | null; format: string };
    if (act || q.format.type !== 'int') {
      const { tensors: stored, args } = packCompressedTensorsNaive(q);
      for (const [key, t] of Object.entries(stored)) if (t) tensors.set(`${layer}.${key}`, t as StoredTensor);
      const input = act ? compressedTensorsActivationArgs(act.scheme) : null;
      if (act) for (const [key, t] of Object.entries(activationTensors('input', act, layer))) tensors.set(`${layer}.${key}`, t);
      group = { weights: args, input_activations: input, format: act ? (args.type === 'float' ? 'float-quantized' : 'int-quantized') : 'naive-quantized' };
    } else {
      const { tensors: packed, args } = packCompressedTensors(q);
      for (const [key, t] of Object.entries(packed)) if (t) tensors.set(`${layer}.${key}`, t as StoredTensor);
      group = { weights: args, input_activations: null, format: 'pack-quantized' };
    }
    const key = JSON.stringify(group);
    if (!schemes.has(key)) schemes.set(key, { group, layers: [] });
    schemes.get(key)!.layers.push(layer);
  }
  const groups: Record<string, unknown> = {};
  [...schemes.values()].forEach((s, i) => {
    groups[`group_${i}`] = { targets: schemes.size === 1 ? ['Linear'] : s.layers.sort(), weights: s.group.weights, input_activations: s.group.input_activations, output_activations: null, format: s.group.format };
  });
  const formats = new Set([...schemes.values()].map((s) => s.group.format));
  let kvCacheScheme: CompressedTensorsQuantizationArgs | null = null;
  for (const [module, kv] of model.kvCache ?? []) {
    const args = compressedTensorsKvCacheArgs({ keys: kv.keys.scheme, values: kv.values.scheme });
    if (kvCacheScheme && JSON.stringify(kvCacheScheme) !== JSON.stringify(args)) {
      throw new ActivationSchemeRefusedError('compressed-tensors', 'kvCache', `kv_cache_scheme is one scheme for the whole model; ${module} differs from the other attention modules`);
    }
    kvCacheScheme = args;
    for (const [key, t] of Object.entries({ ...activationTensors('k', kv.keys, module), ...activationTensors('v', kv.values, module) })) tensors.set(`${module}.${key}`, t);
  }
  const ignore = [...new Set([...(model.quantized.has('lm_head') ? [] : ['lm_head']), ...unquantized])].sort();
  const quantizationConfig = {
    quant_method: 'compressed-tensors',
    format: formats.size === 1 ? [...formats][0]! : formats.size === 0 ? 'pack-quantized' : 'mixed-precision',
    quantization_status: 'compressed',
    config_groups: groups,
    ignore,
    kv_cache_scheme: kvCacheScheme,
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

const COMPRESSED_TENSORS_FORMATS = ['pack-quantized', 'int-quantized', 'float-quantized', 'naive-quantized', 'mixed-precision'];

type ConfigGroup = { targets: string[]; weights: CompressedTensorsWeightArgs & CompressedTensorsQuantizationArgs; input_activations?: CompressedTensorsQuantizationArgs | null; format?: string };

/**
 * Reads a compressed-tensors checkpoint (`pack-quantized`, `int-quantized`, `float-quantized`, `naive-quantized` or
 * `mixed-precision` of these) from its tensors and `quantization_config` back into quantized layers, with each
 * group's `input_activations` (and static `input_scale`s) and the `kv_cache_scheme` (`k_scale`, `v_scale`) as bitsmith
 * activation schemes (the inverse of {@link compressedTensorsCheckpoint}).
 *
 * @example
 * ```ts
 * const { quantized, inputActivations, kvCache } = readCompressedTensorsCheckpoint(tensors, config.quantization_config);
 * ```
 */
export function readCompressedTensorsCheckpoint(tensors: Map<string, StoredTensor>, quantizationConfig: Record<string, unknown>, config: Record<string, unknown> = {}): LoadedCheckpoint {
  if (quantizationConfig.quant_method !== 'compressed-tensors') throw new UnsupportedFormatError(`quant_method is ${String(quantizationConfig.quant_method)}; expected compressed-tensors`);
  const globalFormat = String(quantizationConfig.format);
  if (!COMPRESSED_TENSORS_FORMATS.includes(globalFormat)) throw new UnsupportedFormatError(`compressed-tensors format ${globalFormat}; bitsmith reads ${COMPRESSED_TENSORS_FORMATS.join(', ')}`);
  const groups = Object.values((quantizationConfig.config_groups ?? {}) as Record<string, ConfigGroup>);
  const ignore = (quantizationConfig.ignore ?? []) as string[];
  const quantized = new Map<string, QuantizedTensor>();
  const inputActivations = new Map<string, ExportedActivationQuantization>();
  const used = new Set<string>();
  const layers = [...tensors.keys()].filter((n) => n.endsWith('.weight_scale')).map((n) => n.slice(0, -'.weight_scale'.length));
  for (const layer of layers) {
    if (ignore.some((t) => compressedTensorsTargetMatches(t, layer))) throw new InvalidArgumentError('ignore', `layer ${layer} is quantized but ignored by the config`);
    // compressed-tensors prefers an exact-name target over a regex over a class name.
    const group =
      groups.find((g) => g.targets.includes(layer)) ??
      groups.find((g) => g.targets.some((t) => t.startsWith('re:') && compressedTensorsTargetMatches(t, layer))) ??
      groups.find((g) => g.targets.includes('Linear'));
    if (!group) throw new InvalidArgumentError('config_groups', `no group targets layer ${layer}`);
    const format = group.format ?? globalFormat;
    const part: Record<string, StoredTensor | undefined> = {};
    const names = format === 'pack-quantized' ? ['weight_packed', 'weight_scale', 'weight_zero_point', 'weight_g_idx', 'weight_shape'] : ['weight', 'weight_scale', 'weight_zero_point'];
    for (const key of names) {
      const t = tensors.get(`${layer}.${key}`);
      if (t) {
        part[key] = t;
        used.add(`${layer}.${key}`);
      }
    }
    if (format === 'pack-quantized') {
      if (!part.weight_packed || !part.weight_shape) throw new InvalidArgumentError(layer, 'needs weight_packed and weight_shape beside weight_scale (pack-quantized)');
      quantized.set(layer, unpackCompressedTensors(part as unknown as CompressedTensorsLayer, group.weights));
    } else if (format === 'int-quantized' || format === 'float-quantized' || format === 'naive-quantized') {
      if (!part.weight) throw new InvalidArgumentError(layer, `needs weight beside weight_scale (${format})`);
      quantized.set(layer, unpackCompressedTensorsNaive(part as unknown as CompressedTensorsNaiveLayer, group.weights));
    } else throw new UnsupportedFormatError(`layer ${layer}: compressed-tensors format ${format}; bitsmith reads pack-quantized, int-quantized, float-quantized and naive-quantized groups`);
    if (group.input_activations) {
      inputActivations.set(layer, readActivationQuantization(activationSchemeFromCompressedTensors(group.input_activations), tensors, layer, 'input', used));
    }
  }
  const kvCache = new Map<string, ExportedKvCacheQuantization>();
  const kvArgs = quantizationConfig.kv_cache_scheme as CompressedTensorsQuantizationArgs | null | undefined;
  if (kvArgs) {
    const scheme = activationSchemeFromCompressedTensors(kvArgs);
    for (const name of tensors.keys()) {
      if (!name.endsWith('.k_scale')) continue;
      const module = name.slice(0, -'.k_scale'.length);
      kvCache.set(module, { keys: readActivationQuantization(scheme, tensors, module, 'k', used), values: readActivationQuantization(scheme, tensors, module, 'v', used) });
    }
    if (kvCache.size === 0 && !scheme.dynamic) throw new InvalidArgumentError('kv_cache_scheme', 'is static but the checkpoint holds no k_scale tensors');
  }
  return { quantized, tensors: decodeRest(tensors, used), config, inputActivations, kvCache };
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
  /** Most bytes of tensor data per safetensors file (see `CheckpointOptions.maxShardBytes`). Default 5 GB. */
  maxShardBytes?: number;
}

/** The `__metadata__` of a checkpoint's safetensors files. @internal */
export function checkpointMetadata(options: EncodeCheckpointOptions = {}): Record<string, string> {
  return { format: 'pt', producer: 'bitsmith', content: options.content ?? 'quantized checkpoint', ...(options.metadata ?? {}) };
}

/** The JSON files of a checkpoint folder (`config.json`, the format's extra files, the shard index if any), by name. @internal */
export function checkpointJsonFiles(ckpt: Checkpoint, index: SafetensorsShardPlan['index']): Map<string, Uint8Array> {
  const text = (value: unknown) => new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
  const files = new Map<string, Uint8Array>();
  if (index) files.set(SAFETENSORS_INDEX_FILE, text(index));
  files.set('config.json', text(ckpt.config));
  for (const [name, value] of Object.entries(ckpt.extraFiles)) files.set(name, text(value));
  return files;
}

/**
 * The files of a checkpoint folder, in memory: `model.safetensors` (or, past `maxShardBytes`, its shards and
 * `model.safetensors.index.json`), `config.json` and the format's extra files (GPTQ's `quantize_config.json`), by
 * name. In a browser, wrap each in a `Blob` to offer it for download; the `node` entry's `saveCompressedTensors` /
 * `saveGptq` write the same bytes to disk, one tensor at a time.
 *
 * @example
 * ```ts
 * const files = encodeCheckpointFiles(compressedTensorsCheckpoint({ tensors: graph.tensors(), quantized, config }));
 * const url = URL.createObjectURL(new Blob([files.get('model.safetensors')!]));
 * ```
 */
export function encodeCheckpointFiles(ckpt: Checkpoint, options: EncodeCheckpointOptions = {}): Map<string, Uint8Array> {
  const { shards, index } = planSafetensorsShards(ckpt.tensors, options.maxShardBytes);
  const files = new Map<string, Uint8Array>();
  for (const shard of shards) files.set(shard.file, encodeSafetensorsFile(shard.tensors, checkpointMetadata(options)));
  for (const [name, bytes] of checkpointJsonFiles(ckpt, index)) files.set(name, bytes);
  return files;
}
