import { InvalidArgumentError, quantize, rangeSearch, roundHalfEven, clamp, roundScale, type QuantizedTensor } from '@bitsmith/core';

/** A weight to write into a tfjs weights manifest. */
export interface TfjsWeightInput {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'float32' | 'int32';
  readonly data: Float32Array | Int32Array;
}

/** A manifest entry as tfjs reads it (`weightsManifest[].weights[]`). */
export interface TfjsManifestEntry {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'float32' | 'int32';
  /** tfjs decodes `value = code * scale + min`. */
  readonly quantization?: { readonly dtype: 'uint8' | 'uint16'; readonly min: number; readonly scale: number };
}

/** One weight quantized onto tfjs's per-tensor affine grid. */
export interface TfjsQuantizedWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'uint8' | 'uint16';
  readonly codes: Uint8Array | Uint16Array;
  /** float32 step. */
  readonly scale: number;
  /** `-zeroPoint * scale`, exact in float64. */
  readonly min: number;
  readonly zeroPoint: number;
}

/** Options of {@link quantizeTfjsWeights}. */
export interface TfjsQuantizeOptions {
  /** `uint8` (default) or `uint16`. */
  dtype?: 'uint8' | 'uint16';
  /** Search the clipping range (core `rangeSearch`: 20 shrink factors from 1 to 0.5, mean squared error). Default true. */
  rangeSearch?: boolean;
  /** Which float32 weights to quantize. Default all of them. */
  include?: (name: string) => boolean;
}

/**
 * The per-tensor affine quantization tfjs loads: an asymmetric int grid with one float32 scale and an integer zero
 * point, written as `{ dtype, scale, min: -zeroPoint * scale }`. For uint8 it is core's `int8-asym` per-tensor grid
 * (with core `rangeSearch` choosing the clip); core formats stop at 8 bits, so uint16 uses the same rules here
 * (scale `(hi - lo) / 65535` rounded up to float32, zero point `round(-lo / scale)`, codes rounded half to even).
 */
export function quantizeTfjsWeight(name: string, shape: readonly number[], data: Float32Array, options: Omit<TfjsQuantizeOptions, 'include'> = {}): TfjsQuantizedWeight {
  const dtype = options.dtype ?? 'uint8';
  const search = options.rangeSearch ?? true;
  const weight = { dtype: 'float32' as const, shape: [1, data.length] as [number, number], data };
  if (dtype === 'uint8') {
    const settings = { format: { type: 'int' as const, bits: 8, symmetric: false }, granularity: { type: 'tensor' as const }, scaleEncoding: 'float32' as const };
    const clip = search ? rangeSearch(weight, settings) : undefined;
    const q = quantize(weight, clip ? { ...settings, clip } : settings);
    return fromQuantized(name, shape, q);
  }
  const levels = 65535;
  let lo0 = Infinity;
  let hi0 = -Infinity;
  for (const x of data) {
    if (!Number.isFinite(x)) throw new InvalidArgumentError(name, `holds a non-finite value ${x}`);
    lo0 = Math.min(lo0, x);
    hi0 = Math.max(hi0, x);
  }
  const grid = (factor: number) => {
    const lo = Math.min(lo0 * factor, 0);
    const hi = Math.max(hi0 * factor, 0);
    const scale = roundScale((hi - lo) / levels, 'float32', 'up');
    const zp = scale > 0 ? clamp(roundHalfEven(-lo / scale), 0, levels) + 0 : 0;
    return { scale, zp };
  };
  const encode = (x: number, scale: number, zp: number) => (scale > 0 ? clamp(roundHalfEven(x / scale + zp), 0, levels) : zp);
  let best = grid(1);
  if (search) {
    let bestError = Infinity;
    for (let step = 0; step < 20; step++) {
      const g = grid(1 - (0.5 * step) / 19);
      let e = 0;
      for (const x of data) {
        const d = x - (encode(x, g.scale, g.zp) - g.zp) * g.scale;
        e += d * d;
      }
      if (e < bestError) {
        bestError = e;
        best = g;
      }
    }
  }
  const codes = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) codes[i] = encode(data[i]!, best.scale, best.zp);
  return { name, shape: [...shape], dtype, codes, scale: best.scale, min: -best.zp * best.scale + 0, zeroPoint: best.zp };
}

function fromQuantized(name: string, shape: readonly number[], q: QuantizedTensor): TfjsQuantizedWeight {
  const scale = q.scales[0]!;
  const zeroPoint = q.zeroPoints![0]!;
  return { name, shape: [...shape], dtype: 'uint8', codes: q.codes as Uint8Array, scale, min: -zeroPoint * scale + 0, zeroPoint };
}

/**
 * The core `QuantizedTensor` of a uint8 tfjs weight (`[1, size]`, `int8-asym`, per tensor, float32 scale), whose
 * `dequantize` equals what tfjs decodes, bit for bit.
 */
export function tfjsWeightToQuantizedTensor(w: TfjsQuantizedWeight): QuantizedTensor {
  if (w.dtype !== 'uint8') throw new InvalidArgumentError('dtype', 'core QuantizedTensor holds up to 8-bit integers; uint16 weights have no core form');
  return {
    shape: [1, w.codes.length],
    format: { type: 'int', bits: 8, symmetric: false },
    granularity: { type: 'tensor' },
    codes: w.codes,
    scales: Float32Array.of(w.scale),
    scaleEncoding: 'float32',
    zeroPoints: Float32Array.of(w.zeroPoint),
  };
}

/**
 * Quantizes the float32 weights of a tfjs model to tfjs's uint8/uint16 affine manifest quantization and lays out
 * one weights group: its manifest entries and the bytes of its shard (entries in order, codes little-endian).
 * int32 weights (and float32 ones not `include`d) are stored unquantized.
 *
 * @example
 * ```ts
 * const { entries, bytes } = quantizeTfjsWeights(weights, { dtype: 'uint8' });
 * ```
 */
export function quantizeTfjsWeights(weights: readonly TfjsWeightInput[], options: TfjsQuantizeOptions = {}): { entries: TfjsManifestEntry[]; bytes: Uint8Array; quantized: Map<string, TfjsQuantizedWeight> } {
  const parts: Uint8Array[] = [];
  const entries: TfjsManifestEntry[] = [];
  const quantized = new Map<string, TfjsQuantizedWeight>();
  for (const w of weights) {
    if (w.dtype === 'float32' && (options.include?.(w.name) ?? true)) {
      const q = quantizeTfjsWeight(w.name, w.shape, w.data as Float32Array, options);
      quantized.set(w.name, q);
      entries.push({ name: w.name, shape: [...w.shape], dtype: 'float32', quantization: { dtype: q.dtype, min: q.min, scale: q.scale } });
      parts.push(new Uint8Array(q.codes.buffer, q.codes.byteOffset, q.codes.byteLength));
    } else {
      entries.push({ name: w.name, shape: [...w.shape], dtype: w.dtype });
      parts.push(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength));
    }
  }
  const bytes = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    bytes.set(p, o);
    o += p.byteLength;
  }
  return { entries, bytes, quantized };
}

/**
 * Reads a quantized manifest entry and its bytes back into codes, scale, min and zero point (the inverse of
 * {@link quantizeTfjsWeight}; `@bitsmith/models`' `readTfjsModel` decodes the same bytes to floats).
 */
export function readTfjsQuantizedWeight(entry: TfjsManifestEntry, bytes: Uint8Array): TfjsQuantizedWeight {
  const q = entry.quantization;
  if (!q) throw new InvalidArgumentError(entry.name, 'has no quantization');
  const count = entry.shape.reduce((a, b) => a * b, 1);
  const codes = q.dtype === 'uint8' ? bytes.slice(0, count) : new Uint16Array(bytes.slice(0, 2 * count).buffer);
  const zeroPoint = q.scale > 0 ? Math.round(-q.min / q.scale) + 0 : 0;
  return { name: entry.name, shape: [...entry.shape], dtype: q.dtype, codes, scale: q.scale, min: q.min, zeroPoint };
}
