import { formatName, parseFormat, InvalidArgumentError, UnsupportedFormatError, type Granularity, type QuantizedTensor } from '@bitsmith/core';
import { requireIntFormat } from './hf-layer-common.js';
import { floatTensor, scaleDType, scaleEncodingOf, storedValues, type StoredTensor } from './stored-tensor.js';

/**
 * compressed-tensors' unpacked weight formats (its `NaiveQuantizationCompressor` and aliases): each code is stored
 * whole in the tensor `weight` at the dtype of the quantization type, beside `weight_scale`.
 * - `int-quantized`: integer weights of a W8A8 / W4A8 / W4A4 scheme (weights and inputs quantized), `weight` I8.
 * - `float-quantized`: FP8 E4M3 weights with quantized inputs (FP8, FP8_DYNAMIC), `weight` F8_E4M3.
 * - `naive-quantized`: any other weight-only scheme that is not packed (FP8 weights with 16-bit inputs).
 */
export type CompressedTensorsNaiveFormat = 'int-quantized' | 'float-quantized' | 'naive-quantized';

/** compressed-tensors `QuantizationArgs` as bitsmith writes them (weights, input activations or the KV cache). */
export interface CompressedTensorsQuantizationArgs {
  readonly num_bits: number;
  readonly type: 'int' | 'float';
  readonly symmetric: boolean;
  /** Elements per group for `group`; null otherwise. */
  readonly group_size: number | null;
  readonly strategy: 'tensor' | 'channel' | 'group' | 'token' | 'attn_head';
  readonly block_structure: null;
  readonly dynamic: boolean;
  readonly actorder: 'group' | null;
  /** `minmax` for calibrated (static) parameters; null for dynamic ones (no observer runs). */
  readonly observer: string | null;
  readonly observer_kwargs: Record<string, unknown>;
}

/** The tensors of one layer in an unpacked format (names without the layer prefix). */
export interface CompressedTensorsNaiveLayer {
  /** `[N, K]`: I8 holding `code - 2^(b-1)` (int) or F8_E4M3 bit patterns (float). */
  readonly weight: StoredTensor;
  /** `[N, 1]` (channel), `[N, K/g]` (group) or `[1]` (tensor). */
  readonly weight_scale: StoredTensor;
  /** Same shape as `weight_scale`, I8 (`z - 2^(b-1)`): integer weights with a zero point only. */
  readonly weight_zero_point?: StoredTensor;
}

function weightStrategy(g: Granularity, target: string): { strategy: 'tensor' | 'channel' | 'group'; group_size: number | null } {
  if (g.type === 'channel') return { strategy: 'channel', group_size: null };
  if (g.type === 'group') return { strategy: 'group', group_size: g.size };
  if (g.type === 'tensor') return { strategy: 'tensor', group_size: null };
  throw new UnsupportedFormatError(`${target} writes tensor, channel and group granularity, not ${g.type}`);
}

/**
 * The `QuantizationArgs` of a weight stored unpacked: integer (1-8 bits, symmetric or with a zero point) or FP8 E4M3,
 * per tensor, channel or group, in natural column order.
 *
 * @throws UnsupportedFormatError for other formats (FP8 E5M2, lookup tables, MX, ...) or an act-order permutation.
 * @example
 * ```ts
 * compressedTensorsNaiveWeightArgs(quantize(w, { format: parseFormat('fp8-e4m3'), granularity: { type: 'channel' } }));
 * // { num_bits: 8, type: 'float', strategy: 'channel', ... }
 * ```
 */
export function compressedTensorsNaiveWeightArgs(q: QuantizedTensor): CompressedTensorsQuantizationArgs {
  const target = 'compressed-tensors int-quantized / float-quantized';
  if (q.permutation) throw new UnsupportedFormatError(`${target} stores weights in natural column order; this layer was quantized in an activation order (use pack-quantized weights: a recipe without inputActivations)`);
  if (q.tensorScale !== undefined) throw new UnsupportedFormatError(`${target} has no place for a second-level tensor scale`);
  const common = { block_structure: null, dynamic: false, actorder: null, observer: 'minmax', observer_kwargs: {} } as const;
  if (q.format.type === 'float') {
    if (formatName(q.format) !== 'fp8-e4m3') throw new UnsupportedFormatError(`${target} stores FP8 E4M3 float weights only, not ${formatName(q.format)}`);
    return { num_bits: 8, type: 'float', symmetric: true, ...weightStrategy(q.granularity, target), ...common };
  }
  const format = requireIntFormat(q, target);
  return { num_bits: format.bits, type: 'int', symmetric: format.symmetric, ...weightStrategy(q.granularity, target), ...common };
}

function scaleShape(q: QuantizedTensor): number[] {
  const [n, k] = q.shape;
  const g = q.granularity;
  if (g.type === 'tensor') return [1];
  if (g.type === 'channel') return [n, 1];
  if (g.type === 'group') return [n, k / g.size];
  throw new UnsupportedFormatError(`granularity ${g.type}`);
}

/**
 * Stores a quantized `[N, K]` weight unpacked, as compressed-tensors' naive compressor does: integer codes as signed
 * I8 values `q = code - 2^(b-1)` (so `(q - zero_point) * scale` is the weight), FP8 E4M3 codes as their bit patterns;
 * scales in the dtype of the tensor's `scaleEncoding`, exactly; zero points (asymmetric only) as I8.
 *
 * @example
 * ```ts
 * const { tensors, args } = packCompressedTensorsNaive(quantize(w, { format: parseFormat('int8'), granularity: { type: 'channel' } }));
 * ```
 */
export function packCompressedTensorsNaive(q: QuantizedTensor): { tensors: CompressedTensorsNaiveLayer; args: CompressedTensorsQuantizationArgs } {
  const args = compressedTensorsNaiveWeightArgs(q);
  const [n, k] = q.shape;
  const shape = scaleShape(q);
  const weight_scale = floatTensor(q.scales, shape, scaleDType(q.scaleEncoding));
  if (args.type === 'float') {
    const bytes = new Uint8Array(n * k);
    bytes.set(q.codes);
    return { tensors: { weight: { dtype: 'F8_E4M3', shape: [n, k], bytes }, weight_scale }, args };
  }
  const half = 2 ** (args.num_bits - 1);
  const values = new Int8Array(n * k);
  for (let i = 0; i < n * k; i++) values[i] = q.codes[i]! - half;
  const tensors: { -readonly [K in keyof CompressedTensorsNaiveLayer]: CompressedTensorsNaiveLayer[K] } = {
    weight: { dtype: 'I8', shape: [n, k], bytes: new Uint8Array(values.buffer) },
    weight_scale,
  };
  if (!args.symmetric) {
    const zp = new Int8Array(q.zeroPoints!.length);
    for (let i = 0; i < zp.length; i++) zp[i] = q.zeroPoints![i]! - half;
    tensors.weight_zero_point = { dtype: 'I8', shape, bytes: new Uint8Array(zp.buffer) };
  }
  return { tensors, args };
}

/**
 * Reads an unpacked compressed-tensors weight back into a `QuantizedTensor` (the inverse of
 * {@link packCompressedTensorsNaive}: the same codes, scales and zero points).
 *
 * @throws InvalidArgumentError when a tensor's dtype or shape does not match the args, naming it.
 * @example
 * ```ts
 * const q = unpackCompressedTensorsNaive(tensors, args);
 * ```
 */
export function unpackCompressedTensorsNaive(layer: CompressedTensorsNaiveLayer, args: Pick<CompressedTensorsQuantizationArgs, 'num_bits' | 'type' | 'symmetric' | 'strategy' | 'group_size'>): QuantizedTensor {
  if (layer.weight.shape.length !== 2) throw new InvalidArgumentError('weight', `has shape [${layer.weight.shape.join(', ')}]; expected [N, K]`);
  const [n, k] = layer.weight.shape as [number, number];
  let granularity: Granularity;
  if (args.strategy === 'channel') granularity = { type: 'channel' };
  else if (args.strategy === 'tensor') granularity = { type: 'tensor' };
  else if (args.strategy === 'group' && args.group_size) granularity = { type: 'group', size: args.group_size };
  else throw new UnsupportedFormatError(`compressed-tensors weight strategy ${String(args.strategy)}${args.strategy === 'group' ? ' without group_size' : ''}; expected tensor, channel or group`);
  const groups = granularity.type === 'tensor' ? 1 : granularity.type === 'channel' ? n : n * (k / (granularity as { size: number }).size);
  const scales = Float32Array.from(storedValues(layer.weight_scale));
  if (scales.length !== groups) throw new InvalidArgumentError('weight_scale', `holds ${scales.length} scales; ${groups} expected for strategy ${args.strategy} over [${n}, ${k}]`);
  const scaleEncoding = scaleEncodingOf(layer.weight_scale.dtype);
  if (args.type === 'float') {
    if (args.num_bits !== 8 || layer.weight.dtype !== 'F8_E4M3') throw new UnsupportedFormatError(`float weights of ${args.num_bits} bits stored as ${layer.weight.dtype}; only FP8 E4M3 (F8_E4M3) is read`);
    return { shape: [n, k], format: parseFormat('fp8-e4m3'), granularity, codes: layer.weight.bytes.slice(), scales, scaleEncoding };
  }
  if (args.type !== 'int') throw new UnsupportedFormatError(`compressed-tensors weight type ${String(args.type)}; expected int or float`);
  if (layer.weight.dtype !== 'I8') throw new InvalidArgumentError('weight', `is ${layer.weight.dtype}; integer weights of an unpacked format are I8`);
  const bits = args.num_bits;
  const half = 2 ** (bits - 1);
  const values = new Int8Array(layer.weight.bytes.buffer, layer.weight.bytes.byteOffset, n * k);
  const codes = new Uint8Array(n * k);
  for (let i = 0; i < n * k; i++) {
    const code = values[i]! + half;
    if (code < 0 || code >= 2 * half) throw new InvalidArgumentError('weight', `element ${i} is ${values[i]}, outside the ${bits}-bit range [${-half}, ${half - 1}]`);
    codes[i] = code;
  }
  let zeroPoints: Float32Array | undefined;
  if (!args.symmetric) {
    if (!layer.weight_zero_point) throw new InvalidArgumentError('weight_zero_point', 'is missing for an asymmetric layer');
    const zp = storedValues(layer.weight_zero_point);
    if (zp.length !== groups) throw new InvalidArgumentError('weight_zero_point', `holds ${zp.length} values; ${groups} expected`);
    zeroPoints = Float32Array.from(zp, (z) => z + half);
  }
  return { shape: [n, k], format: { type: 'int', bits, symmetric: args.symmetric }, granularity, codes, scales, scaleEncoding, ...(zeroPoints ? { zeroPoints } : {}) };
}
