import { ActivationSchemeRefusedError, formatName, InvalidArgumentError, parseFormat, UnsupportedFormatError, type ActivationScales, type ActivationScheme } from '@bitsmith/core';
import type { CompressedTensorsQuantizationArgs } from './compressed-tensors-naive.js';
import { floatTensor, storedValues, type StoredTensor } from './stored-tensor.js';

/** How one linear layer's input is quantized at run time, with its calibrated scales when static. */
export interface ExportedActivationQuantization {
  readonly scheme: ActivationScheme;
  /** Required for a static scheme; absent for a dynamic one. */
  readonly scales?: ActivationScales;
}

/** The key/value-cache quantization of one attention module: one scheme for keys and values, per-module scales. */
export interface ExportedKvCacheQuantization {
  readonly keys: ExportedActivationQuantization;
  readonly values: ExportedActivationQuantization;
}

/**
 * The activation part of a recipe, as the before-work check sees it: the input scheme, the KV-cache scheme (per-head
 * granularity may still be written `{ type: 'head' }`), and whether output activations are asked for.
 */
export interface ActivationExportRequest {
  readonly inputActivations?: ActivationScheme;
  readonly kvCache?: {
    readonly keys?: Omit<ActivationScheme, 'granularity'> & { readonly granularity: { readonly type: string; readonly size?: number } };
    readonly values?: Omit<ActivationScheme, 'granularity'> & { readonly granularity: { readonly type: string; readonly size?: number } };
    readonly hadamard?: boolean;
    readonly preRopeKeys?: boolean;
  };
}

const EXPORTER = 'compressed-tensors';

type SchemeLike = Omit<ActivationScheme, 'granularity'> & { readonly granularity: { readonly type: string; readonly size?: number } };

function typeAndBits(scheme: SchemeLike, field: string): { type: 'int' | 'float'; num_bits: number; symmetric: boolean } {
  const f = scheme.format;
  if (f.type === 'int') return { type: 'int', num_bits: f.bits, symmetric: f.symmetric };
  if (f.type === 'float' && formatName(f) === 'fp8-e4m3') return { type: 'float', num_bits: 8, symmetric: true };
  throw new ActivationSchemeRefusedError(EXPORTER, field, `format ${formatName(f)} has no compressed-tensors activation type (int 1-8 bits, or FP8 E4M3 as float 8 bits); MX, NVFP4 with run-time scales, FP8 E5M2 and other minifloats are refused (use --save fake)`);
}

function observerOf(scheme: SchemeLike): Pick<CompressedTensorsQuantizationArgs, 'observer' | 'observer_kwargs'> {
  if (scheme.dynamic) return { observer: null, observer_kwargs: {} };
  const observer = scheme.observer ?? 'minmax';
  return { observer, observer_kwargs: observer === 'percentile' ? { percentile: scheme.percentile ?? 99.99 } : {} };
}

/**
 * The compressed-tensors `input_activations` args of a linear layer's input scheme, as llm-compressor writes them
 * (`W8A8`: int 8 per token, dynamic; static per-tensor int8 with an `input_scale` per layer; `FP8_DYNAMIC`: float 8
 * per token, dynamic; `FP8_BLOCK`'s inputs: float 8 per group of 128, dynamic).
 *
 * Accepted: int (1-8 bits, symmetric or with a zero point) or FP8 E4M3; per tensor (static or dynamic), per token
 * (dynamic) or per group of channels (dynamic).
 *
 * @throws ActivationSchemeRefusedError for what compressed-tensors cannot express: per-channel or per-group static
 *   input scales, MX / NVFP4 blocks, FP8 E5M2 and other minifloats.
 * @example
 * ```ts
 * compressedTensorsActivationArgs({ format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true });
 * // { num_bits: 8, type: 'int', symmetric: true, strategy: 'token', dynamic: true, observer: null, ... }
 * ```
 */
export function compressedTensorsActivationArgs(scheme: SchemeLike, field = 'inputActivations'): CompressedTensorsQuantizationArgs {
  const kind = typeAndBits(scheme, field);
  const g = scheme.granularity;
  let strategy: CompressedTensorsQuantizationArgs['strategy'];
  let group_size: number | null = null;
  if (g.type === 'tensor') strategy = 'tensor';
  else if (g.type === 'token' && scheme.dynamic) strategy = 'token';
  else if (g.type === 'group' && scheme.dynamic && g.size !== undefined) {
    strategy = 'group';
    group_size = g.size;
  } else {
    throw new ActivationSchemeRefusedError(
      EXPORTER,
      field,
      `${scheme.dynamic ? 'dynamic' : 'static'} ${g.type}${g.size !== undefined ? ` ${g.size}` : ''} scales have no place in compressed-tensors (inputs are quantized per tensor, static or dynamic, or per token / group of channels, dynamic)`,
    );
  }
  return { ...kind, group_size, strategy, block_structure: null, dynamic: scheme.dynamic, actorder: null, ...observerOf(scheme) };
}

/**
 * The compressed-tensors `kv_cache_scheme` of a KV-cache scheme, as vLLM reads it: FP8 E4M3 keys and values, one
 * static scale per attention module for each (`k_scale`, `v_scale`).
 *
 * @throws ActivationSchemeRefusedError for anything else: keys or values left in float, different schemes for keys
 *   and values, integer or dynamic (per token / head) caches, per-channel key scales, the cache Hadamard and
 *   pre-RoPE keys (vLLM quantizes the post-RoPE keys it caches, unrotated).
 * @example
 * ```ts
 * const fp8 = { format: parseFormat('fp8-e4m3'), granularity: { type: 'tensor' }, dynamic: false } as const;
 * compressedTensorsKvCacheArgs({ keys: fp8, values: fp8 }); // { num_bits: 8, type: 'float', strategy: 'tensor', dynamic: false, ... }
 * ```
 */
export function compressedTensorsKvCacheArgs(kv: NonNullable<ActivationExportRequest['kvCache']>): CompressedTensorsQuantizationArgs {
  const field = 'kvCache';
  if (kv.hadamard) throw new ActivationSchemeRefusedError(EXPORTER, field, 'the key/value Hadamard rotation is an online transform that vLLM does not apply');
  if (kv.preRopeKeys) throw new ActivationSchemeRefusedError(EXPORTER, field, 'pre-RoPE key quantization has no place in kv_cache_scheme (the cache holds post-RoPE keys)');
  if (!kv.keys || !kv.values) throw new ActivationSchemeRefusedError(EXPORTER, field, 'kv_cache_scheme quantizes keys and values alike; expected both keys and values');
  const describe = (s: SchemeLike) => `${formatName(s.format)} ${s.granularity.type}${s.granularity.size !== undefined ? ` ${s.granularity.size}` : ''} ${s.dynamic ? 'dynamic' : 'static'}`;
  if (describe(kv.keys) !== describe(kv.values)) throw new ActivationSchemeRefusedError(EXPORTER, field, `kv_cache_scheme is one scheme for keys and values; got keys ${describe(kv.keys)}, values ${describe(kv.values)}`);
  const s = kv.keys;
  if (!(s.format.type === 'float' && formatName(s.format) === 'fp8-e4m3') || s.dynamic || s.granularity.type !== 'tensor') {
    throw new ActivationSchemeRefusedError(EXPORTER, field, `vLLM reads an FP8 E4M3 cache with one static scale per tensor (keys: { format: fp8-e4m3, granularity: tensor, dynamic: false }); got ${describe(s)}`);
  }
  return { num_bits: 8, type: 'float', symmetric: true, group_size: null, strategy: 'tensor', block_structure: null, dynamic: false, actorder: null, ...observerOf(s) };
}

/**
 * Refuses, before any work, a recipe whose activation or KV-cache quantization compressed-tensors cannot express
 * (see {@link compressedTensorsActivationArgs} and {@link compressedTensorsKvCacheArgs}).
 *
 * @throws ActivationSchemeRefusedError naming the field and why.
 * @example
 * ```ts
 * refuseCompressedTensorsActivations({ inputActivations: { format: parseFormat('int8'), granularity: { type: 'channel' }, dynamic: false } }); // throws
 * ```
 */
export function refuseCompressedTensorsActivations(request: ActivationExportRequest): void {
  if (request.inputActivations) compressedTensorsActivationArgs(request.inputActivations);
  if (request.kvCache) compressedTensorsKvCacheArgs(request.kvCache);
}

/**
 * The tensors a static input scheme adds to a layer: `input_scale` (F32 `[1]`, per tensor) and, with a zero point,
 * `input_zero_point` (I8 `[1]`, `z - 2^(b-1)`: compressed-tensors' signed integer zero point). Dynamic schemes add
 * none. Scales are written as float32, exactly as calibrated.
 */
export function activationTensors(prefix: 'input' | 'k' | 'v', exported: ExportedActivationQuantization, layer: string): Record<string, StoredTensor> {
  if (exported.scheme.dynamic) return {};
  const scales = exported.scales;
  if (!scales) throw new InvalidArgumentError(layer, `a static ${prefix} scheme needs its calibrated scales`);
  if (scales.scales.length !== 1) throw new InvalidArgumentError(layer, `has ${scales.scales.length} ${prefix} scales; compressed-tensors stores one per tensor`);
  const out: Record<string, StoredTensor> = { [`${prefix}_scale`]: floatTensor(scales.scales, [1], 'F32') };
  const f = exported.scheme.format;
  if (f.type === 'int' && !f.symmetric) {
    if (!scales.zeroPoints) throw new InvalidArgumentError(layer, `an asymmetric ${prefix} scheme needs zero points`);
    const zp = Int8Array.of(scales.zeroPoints[0]! - 2 ** (f.bits - 1));
    out[`${prefix}_zero_point`] = { dtype: 'I8', shape: [1], bytes: new Uint8Array(zp.buffer) };
  }
  return out;
}

/**
 * The bitsmith activation scheme of compressed-tensors `QuantizationArgs` (the inverse of
 * {@link compressedTensorsActivationArgs}).
 *
 * @throws UnsupportedFormatError for args bitsmith cannot simulate (attn_head or tensor_group strategies, local dynamic
 *   scales, float types other than 8 bits).
 */
export function activationSchemeFromCompressedTensors(args: Partial<CompressedTensorsQuantizationArgs> & { type?: string; strategy?: string; dynamic?: boolean | string }): ActivationScheme {
  const bits = args.num_bits ?? 8;
  let format;
  if (args.type === 'float') {
    if (bits !== 8) throw new UnsupportedFormatError(`compressed-tensors float activations of ${bits} bits; bitsmith reads FP8 E4M3 (8 bits)`);
    format = parseFormat('fp8-e4m3');
  } else if (args.type === 'int' || args.type === undefined) format = parseFormat(args.symmetric === false ? `int${bits}-asym` : `int${bits}`);
  else throw new UnsupportedFormatError(`compressed-tensors activation type ${String(args.type)}; expected int or float`);
  if (typeof args.dynamic !== 'boolean') throw new UnsupportedFormatError(`compressed-tensors activation dynamic '${String(args.dynamic)}'; bitsmith reads true or false`);
  const strategy = args.strategy ?? (args.group_size ? 'group' : 'tensor');
  const granularity =
    strategy === 'tensor' ? ({ type: 'tensor' } as const) : strategy === 'token' ? ({ type: 'token' } as const) : strategy === 'group' && args.group_size ? ({ type: 'group', size: args.group_size } as const) : undefined;
  if (!granularity) throw new UnsupportedFormatError(`compressed-tensors activation strategy ${strategy}; bitsmith reads tensor, token and group`);
  const observer = args.observer === 'mse' || args.observer === 'percentile' ? args.observer : undefined;
  return { format, granularity, dynamic: args.dynamic, ...(observer ? { observer } : {}) };
}

/**
 * Reads a layer's static activation scales back (`<prefix>_scale`, and `<prefix>_zero_point` for a scheme with a zero
 * point), marking the tensors it used. Dynamic schemes read nothing.
 *
 * @throws InvalidArgumentError when a static scheme's scale is missing or not one value, naming the tensor.
 */
export function readActivationQuantization(
  scheme: ActivationScheme,
  tensors: ReadonlyMap<string, StoredTensor>,
  module: string,
  prefix: 'input' | 'k' | 'v',
  used: Set<string>,
): ExportedActivationQuantization {
  const zeroName = `${module}.${prefix}_zero_point`;
  if (tensors.has(zeroName)) used.add(zeroName);
  if (scheme.dynamic) return { scheme };
  const scaleName = `${module}.${prefix}_scale`;
  const scale = tensors.get(scaleName);
  if (!scale) throw new InvalidArgumentError(scaleName, `is missing: the ${prefix} scheme of ${module} is static`);
  used.add(scaleName);
  const values = storedValues(scale);
  if (values.length !== 1) throw new InvalidArgumentError(scaleName, `holds ${values.length} values; one per-tensor scale expected`);
  const f = scheme.format;
  if (f.type === 'int' && !f.symmetric) {
    const zp = tensors.get(zeroName);
    if (!zp) throw new InvalidArgumentError(zeroName, `is missing: the ${prefix} scheme of ${module} has a zero point`);
    return { scheme, scales: { scales: Float32Array.from(values), zeroPoints: Float32Array.from(storedValues(zp), (z) => z + 2 ** (f.bits - 1)) } };
  }
  return { scheme, scales: { scales: Float32Array.from(values) } };
}
