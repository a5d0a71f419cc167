import { InvalidArgumentError, NumericalError } from './errors.js';
import type { Granularity } from './granularity.js';
import type { RuntimeInputTransform } from './model-view.js';
import { elementCodec, formatName, parseFormat, type ElementCodec, type FormatSpec } from './number-format.js';
import { computeScales, dequantize, planQuantization, quantize, type GroupStatistics, type QuantizationPlan } from './quantize.js';
import type { ScaleEncoding } from './quantized-tensor.js';

/**
 * Which activations share one scale. Activations are `[tokens, channels]` (row-major, one token a row).
 * - `tensor`: one scale for every value passed in one call (for a dynamic scheme: one forward call's tokens).
 * - `token`: one per token (row); dynamic only, since the number of tokens varies.
 * - `channel`: one per channel (column); static only (a dynamic per-channel scale would depend on the other tokens).
 * - `group`: one per `size` consecutive channels of a token (dynamic), or per `size` consecutive channels over all
 *   tokens (static). With `size` = head dimension on keys or values this is per token and head.
 */
export type ActivationGranularity =
  | { readonly type: 'tensor' }
  | { readonly type: 'token' }
  | { readonly type: 'channel' }
  | { readonly type: 'group'; readonly size: number };

/** How a static scheme's scales are calibrated from observed activations. */
export type ActivationObserverKind = 'minmax' | 'percentile' | 'mse';

/**
 * How a linear layer's input (or output, or the KV cache) is quantized at run time, as llm-compressor's
 * `input_activations` / `kv_cache_scheme` declare it.
 *
 * - `format`: `int` (1-8 bits, symmetric or with a zero point), `float` minifloats (FP8 E4M3/E5M2, ...), `mx`
 *   (OCP MX blocks of 32) or `nvfp4` (blocks of 16). Integer scales follow core's convention (compressed-tensors':
 *   symmetric `absmax / (2^(b-1) - 1/2)`, codes `-2^(b-1) .. 2^(b-1)-1`).
 * - `dynamic`: scales computed from each tensor at run time (`true`) or calibrated once (`false`, static).
 *   Block formats (MX, NVFP4) are dynamic only.
 * - `observer` (static): `minmax` (default), `percentile` (of |x|, or of each tail with a zero point; `percentile`
 *   default 99.99) or `mse` (clip factor minimising the squared error on the observed sample).
 * - `scaleEncoding`: how run-time scales are held. Default `float32` (block formats fix their own).
 */
export interface ActivationScheme {
  readonly format: FormatSpec;
  readonly granularity: ActivationGranularity;
  readonly dynamic: boolean;
  readonly observer?: ActivationObserverKind;
  readonly percentile?: number;
  readonly scaleEncoding?: ScaleEncoding;
}

/** Calibrated scales of a static scheme: one per static group (1, `channels`, or `channels / size`). */
export interface ActivationScales {
  readonly scales: Float32Array;
  /** Integer-valued zero points, for integer formats with a zero point. */
  readonly zeroPoints?: Float32Array;
}

const SUPPORTED_TYPES = new Set(['int', 'float', 'mx', 'nvfp4']);

/**
 * Checks an activation scheme and throws an `InvalidArgumentError` that says what is wrong and what was expected.
 *
 * @example
 * ```ts
 * validateActivationScheme({ format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true });
 * ```
 */
export function validateActivationScheme(scheme: ActivationScheme): void {
  const type = scheme.format?.type;
  if (!SUPPORTED_TYPES.has(type)) {
    throw new InvalidArgumentError('format', `activation format '${type}' is not supported; expected an int, minifloat (fp8-e4m3, fp8-e5m2, ...), mx or nvfp4 format`);
  }
  const g = scheme.granularity;
  if (!g || !['tensor', 'token', 'channel', 'group'].includes(g.type)) {
    throw new InvalidArgumentError('granularity', `got ${JSON.stringify(g)}; expected { type: 'tensor' | 'token' | 'channel' } or { type: 'group', size }`);
  }
  if (g.type === 'group' && !(Number.isInteger(g.size) && g.size >= 1)) {
    throw new InvalidArgumentError('granularity.size', `got ${g.size}; expected a positive integer`);
  }
  if (typeof scheme.dynamic !== 'boolean') throw new InvalidArgumentError('dynamic', `got ${String(scheme.dynamic)}; expected true (run-time scales) or false (calibrated)`);
  const codec = elementCodec(scheme.format);
  if (codec.blockSize !== undefined) {
    if (!scheme.dynamic) throw new InvalidArgumentError('dynamic', `${codec.name} computes its block scales at run time; expected dynamic: true`);
    if (g.type !== 'group' || g.size !== codec.blockSize) {
      throw new InvalidArgumentError('granularity', `${codec.name} uses blocks of ${codec.blockSize} channels; expected { type: 'group', size: ${codec.blockSize} }`);
    }
  }
  if (scheme.dynamic && g.type === 'channel') {
    throw new InvalidArgumentError('granularity', 'per-channel activation scales must be static (a dynamic one would depend on the other tokens of the batch); expected dynamic: false, or token / group granularity');
  }
  if (!scheme.dynamic && g.type === 'token') {
    throw new InvalidArgumentError('granularity', 'per-token scales can only be computed at run time; expected dynamic: true, or tensor / channel / group granularity');
  }
  if (scheme.observer !== undefined && !['minmax', 'percentile', 'mse'].includes(scheme.observer)) {
    throw new InvalidArgumentError('observer', `got '${scheme.observer}'; expected minmax, percentile or mse`);
  }
  if (scheme.percentile !== undefined && !(scheme.percentile > 0 && scheme.percentile <= 100)) {
    throw new InvalidArgumentError('percentile', `got ${scheme.percentile}; expected a number in (0, 100]`);
  }
}

/** Number of groups of the scheme for `rows` tokens of `columns` channels (static schemes: independent of rows). */
function groupCount(g: ActivationGranularity, rows: number, columns: number): number {
  switch (g.type) {
    case 'tensor':
      return 1;
    case 'token':
      return rows;
    case 'channel':
      return columns;
    case 'group':
      return (columns / g.size) * rows;
  }
}

function checkColumns(g: ActivationGranularity, columns: number): void {
  if (g.type === 'group' && columns % g.size !== 0) {
    throw new InvalidArgumentError('granularity.size', `group size ${g.size} does not divide the ${columns} channels; expected a divisor of ${columns}`);
  }
}

/** Scale plan for `count` groups (a `[count, 1]` per-row plan: only the codec, encoding and group count are used). */
function scalePlan(scheme: ActivationScheme, count: number): QuantizationPlan {
  return planQuantization(count, 1, { format: scheme.format, granularity: { type: 'channel' }, scaleEncoding: scheme.scaleEncoding ?? 'float32' });
}

function checkFinite(data: Float32Array, rows: number, columns: number): void {
  const n = rows * columns;
  for (let i = 0; i < n; i++) {
    const x = data[i]!;
    if (x - x !== 0) {
      throw new NumericalError(`activation element [${Math.floor(i / columns)}, ${i % columns}] is ${x}`, 'only finite activations can be quantized');
    }
  }
}

/**
 * Rounds values in place through a grid: each element of group `g` becomes `(decode(encode(x / s + z)) - z) * s`
 * with `s = scales[g]`, `z = zeroPoints[g]`; a group with scale 0 becomes 0.
 */
function roundThroughGrid(
  data: Float32Array,
  rows: number,
  columns: number,
  codec: ElementCodec,
  groupOf: (row: number, column: number) => number,
  scales: Float32Array,
  zeroPoints: Float32Array | undefined,
): void {
  const table = new Float64Array(codec.levels);
  for (let c = 0; c < codec.levels; c++) table[c] = codec.decode(c);
  for (let r = 0; r < rows; r++) {
    const base = r * columns;
    for (let c = 0; c < columns; c++) {
      const g = groupOf(r, c);
      const s = scales[g]!;
      if (!(s > 0)) {
        data[base + c] = 0;
        continue;
      }
      const z = zeroPoints ? zeroPoints[g]! : 0;
      data[base + c] = (table[codec.encode(data[base + c]! / s + z)]! - z) * s + 0; // + 0: no negative zero
    }
  }
}

function groupIndexer(g: ActivationGranularity, columns: number, staticScales: boolean): (row: number, column: number) => number {
  switch (g.type) {
    case 'tensor':
      return () => 0;
    case 'token':
      return (r) => r;
    case 'channel':
      return (_r, c) => c;
    case 'group': {
      const size = g.size;
      if (staticScales) return (_r, c) => Math.floor(c / size);
      const perRow = columns / size;
      return (r, c) => r * perRow + Math.floor(c / size);
    }
  }
}

/** min, max, sum |x| and count per group, over the rows given. */
function activationStatistics(data: Float32Array, rows: number, columns: number, count: number, groupOf: (r: number, c: number) => number, into?: GroupStatistics): GroupStatistics {
  const stats = into ?? { min: new Float64Array(count).fill(Infinity), max: new Float64Array(count).fill(-Infinity), sumAbs: new Float64Array(count), count: new Float64Array(count) };
  const { min, max, sumAbs, count: n } = stats;
  for (let r = 0; r < rows; r++) {
    const base = r * columns;
    for (let c = 0; c < columns; c++) {
      const x = data[base + c]!;
      const g = groupOf(r, c);
      if (x < min[g]!) min[g] = x;
      if (x > max[g]!) max[g] = x;
      sumAbs[g] += Math.abs(x);
      n[g] += 1;
    }
  }
  return stats;
}

/**
 * Fake-quantizes activations in place: rounds `[rows, columns]` values to the scheme's grid and back to float32, as
 * the quantized model computes them. Dynamic schemes compute their scales from `data`; static ones use `scales`
 * (from an {@link ActivationObserver}). Throws `NumericalError` naming the element on NaN or infinity.
 *
 * @example
 * ```ts
 * const fp8 = { format: parseFormat('fp8-e4m3'), granularity: { type: 'token' }, dynamic: true } as const;
 * fakeQuantizeActivations(x, tokens, hidden, fp8); // x now holds FP8-representable values times per-token scales
 * ```
 */
export function fakeQuantizeActivations(data: Float32Array, rows: number, columns: number, scheme: ActivationScheme, scales?: ActivationScales): void {
  validateActivationScheme(scheme);
  const g = scheme.granularity;
  checkColumns(g, columns);
  if (data.length < rows * columns) throw new InvalidArgumentError('data', `holds ${data.length} values; expected at least ${rows} x ${columns}`);
  checkFinite(data, rows, columns);
  if (rows === 0) return;
  const codec = elementCodec(scheme.format);
  if (codec.blockSize !== undefined) {
    // MX / NVFP4: the weight quantizer's own block scaling, per token (row) in blocks of channels.
    const view = data.subarray(0, rows * columns);
    const roundTrip = dequantize(quantize({ dtype: 'float32', shape: [rows, columns], data: view }, { format: scheme.format }));
    view.set(roundTrip.data);
    return;
  }
  if (scheme.dynamic) {
    const count = groupCount(g, rows, columns);
    const groupOf = groupIndexer(g, columns, false);
    const stats = activationStatistics(data, rows, columns, count, groupOf);
    const { scales: s, zeroPoints } = computeScales(scalePlan(scheme, count), stats);
    roundThroughGrid(data, rows, columns, codec, groupOf, s, zeroPoints);
    return;
  }
  if (!scales) throw new InvalidArgumentError('scales', 'a static activation scheme needs calibrated scales; expected the result of an ActivationObserver');
  const expected = staticGroupCount(g, columns);
  if (scales.scales.length !== expected) {
    throw new InvalidArgumentError('scales', `has ${scales.scales.length} scales; expected ${expected} for ${granularityName(g)} over ${columns} channels`);
  }
  if (codec.scaleRule === 'minmax' && !scales.zeroPoints) throw new InvalidArgumentError('scales.zeroPoints', `${codec.name} needs zero points; expected one per scale`);
  roundThroughGrid(data, rows, columns, codec, groupIndexer(g, columns, true), scales.scales, codec.scaleRule === 'minmax' ? scales.zeroPoints : undefined);
}

function staticGroupCount(g: ActivationGranularity, columns: number): number {
  return g.type === 'tensor' ? 1 : g.type === 'channel' ? columns : g.type === 'group' ? columns / g.size : NaN;
}

/** A short label of an activation granularity: `tensor`, `token`, `channel`, `g64`. */
export function granularityName(g: ActivationGranularity): string {
  return g.type === 'group' ? `g${g.size}` : g.type;
}

/** The weight granularity that groups a `[tokens, channels]` matrix as the activation granularity does (per call). */
export function activationGroupingAsGranularity(g: ActivationGranularity, tokens: number): Granularity {
  switch (g.type) {
    case 'tensor':
      return { type: 'tensor' };
    case 'token':
      return { type: 'channel' };
    case 'group':
      return { type: 'group', size: g.size };
    case 'channel':
      return { type: 'block', rows: Math.max(1, tokens), columns: 1 };
  }
}

/** Options of {@link ActivationObserver}. */
export interface ActivationObserverOptions {
  /**
   * Values kept per static group for the `percentile` and `mse` observers. When more arrive, every other kept value
   * is dropped and only every 2^k-th new one is kept (a deterministic thinning, no randomness). Default 65,536 in all,
   * shared by the groups, at least 256 per group.
   */
  readonly maxSamples?: number;
  /** Clip factors tried by the `mse` observer: 1, 1 - 1/steps, ..., down to `minClip`. Defaults 50 and 0.3. */
  readonly mseSteps?: number;
  readonly minClip?: number;
}

/**
 * Calibrates the scales of a static activation scheme from observed activations: feed it every calibration batch
 * of one tensor (`observe`), then read `scales()`. Observing batches one after another gives the same result as
 * observing them concatenated (for `minmax` exactly; for `percentile`/`mse` while the sample is not thinned).
 *
 * @example
 * ```ts
 * const scheme = { format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false, observer: 'minmax' } as const;
 * const observer = new ActivationObserver(scheme, hidden);
 * for (const batch of batches) observer.observe(batch, tokensIn(batch));
 * fakeQuantizeActivations(x, tokens, hidden, scheme, observer.scales());
 * ```
 */
export class ActivationObserver {
  readonly scheme: ActivationScheme;
  readonly columns: number;
  private readonly count: number;
  private readonly groupOf: (r: number, c: number) => number;
  private readonly stats: GroupStatistics;
  private readonly samples?: { values: Float32Array[]; used: Int32Array; stride: Int32Array; skip: Int32Array; capacity: number };
  private readonly mseSteps: number;
  private readonly minClip: number;
  private seen = 0;

  constructor(scheme: ActivationScheme, columns: number, options: ActivationObserverOptions = {}) {
    validateActivationScheme(scheme);
    if (scheme.dynamic) throw new InvalidArgumentError('scheme.dynamic', 'a dynamic scheme computes its scales at run time; expected a static scheme (dynamic: false)');
    checkColumns(scheme.granularity, columns);
    this.scheme = scheme;
    this.columns = columns;
    this.count = staticGroupCount(scheme.granularity, columns);
    this.groupOf = groupIndexer(scheme.granularity, columns, true);
    this.stats = { min: new Float64Array(this.count).fill(Infinity), max: new Float64Array(this.count).fill(-Infinity), sumAbs: new Float64Array(this.count), count: new Float64Array(this.count) };
    this.mseSteps = options.mseSteps ?? 50;
    this.minClip = options.minClip ?? 0.3;
    const observer = scheme.observer ?? 'minmax';
    if (observer !== 'minmax') {
      const capacity = Math.max(256, Math.floor((options.maxSamples ?? 65536) / this.count));
      this.samples = {
        values: Array.from({ length: this.count }, () => new Float32Array(capacity)),
        used: new Int32Array(this.count),
        stride: new Int32Array(this.count).fill(1),
        skip: new Int32Array(this.count),
        capacity,
      };
    }
  }

  /** Tokens observed so far. */
  get tokens(): number {
    return this.seen;
  }

  /** Observes `rows` tokens of activations `[rows, columns]` (not modified). */
  observe(data: Float32Array, rows: number): void {
    if (data.length < rows * this.columns) throw new InvalidArgumentError('data', `holds ${data.length} values; expected at least ${rows} x ${this.columns}`);
    checkFinite(data, rows, this.columns);
    activationStatistics(data, rows, this.columns, this.count, this.groupOf, this.stats);
    this.seen += rows;
    const s = this.samples;
    if (!s) return;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < this.columns; c++) {
        const g = this.groupOf(r, c);
        if (s.skip[g]! > 0) {
          s.skip[g]! -= 1;
          continue;
        }
        if (s.used[g] === s.capacity) {
          // Thin: keep every other value and halve the rate of new ones.
          const v = s.values[g]!;
          for (let i = 0; i < s.capacity / 2; i++) v[i] = v[2 * i]!;
          s.used[g] = Math.floor(s.capacity / 2);
          s.stride[g]! *= 2;
        }
        s.values[g]![s.used[g]!++] = data[r * this.columns + c]!;
        s.skip[g] = s.stride[g]! - 1;
      }
    }
  }

  /** The calibrated scales (and zero points). Throws when nothing was observed. */
  scales(): ActivationScales {
    if (this.seen === 0) throw new InvalidArgumentError('observer', 'observed no activations; expected at least one calibration batch before scales()');
    const observer = this.scheme.observer ?? 'minmax';
    const plan = scalePlan(this.scheme, this.count);
    if (observer === 'minmax') return computeScales(plan, this.stats);
    const s = this.samples!;
    const clipped: GroupStatistics = { min: new Float64Array(this.count), max: new Float64Array(this.count), sumAbs: this.stats.sumAbs, count: this.stats.count };
    const symmetric = plan.codec.scaleRule !== 'minmax';
    for (let g = 0; g < this.count; g++) {
      const values = s.values[g]!.subarray(0, s.used[g]!);
      if (observer === 'percentile') {
        const p = (this.scheme.percentile ?? 99.99) / 100;
        if (symmetric) {
          const a = quantile(absolute(values), p);
          clipped.min[g] = -a;
          clipped.max[g] = a;
        } else {
          const sorted = values.slice().sort();
          clipped.min[g] = Math.min(0, quantileSorted(sorted, 1 - p));
          clipped.max[g] = Math.max(0, quantileSorted(sorted, p));
        }
      } else {
        const c = this.bestClip(values, this.stats.min[g]!, this.stats.max[g]!);
        clipped.min[g] = this.stats.min[g]! * c;
        clipped.max[g] = this.stats.max[g]! * c;
      }
    }
    return computeScales(plan, clipped);
  }

  /** The clip factor of the group's range with the least squared round-trip error on its sample. */
  private bestClip(values: Float32Array, min: number, max: number): number {
    const one = scalePlan(this.scheme, 1);
    let best = 1;
    let bestError = Infinity;
    const trial = new Float32Array(values.length);
    for (let step = 0; step <= this.mseSteps; step++) {
      const c = 1 - ((1 - this.minClip) * step) / this.mseSteps;
      const { scales, zeroPoints } = computeScales(one, { min: Float64Array.of(min), max: Float64Array.of(max), sumAbs: Float64Array.of(0), count: Float64Array.of(values.length) }, c);
      trial.set(values);
      roundThroughGrid(trial, 1, values.length, one.codec, () => 0, scales, zeroPoints);
      let error = 0;
      for (let i = 0; i < values.length; i++) error += (trial[i]! - values[i]!) ** 2;
      if (error < bestError) {
        bestError = error;
        best = c;
      }
    }
    return best;
  }
}

function absolute(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Math.abs(values[i]!);
  return out;
}

/** The `p`-quantile (0..1) of values, linear interpolation between order statistics (numpy's default). */
function quantile(values: Float32Array, p: number): number {
  return quantileSorted(values.slice().sort(), p);
}

function quantileSorted(sorted: Float32Array, p: number): number {
  if (sorted.length === 0) return 0;
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/**
 * An activation quantizer as a run-time input transform: installed on a linear layer (after any other input
 * transform, see {@link composeInputTransforms}), it fake-quantizes the layer's input in every forward pass, so that
 * evaluation measures the model as it would run. `describe()` gives the scheme (and static scales) for exported configs.
 *
 * @example
 * ```ts
 * layer.inputTransform = activationQuantizer({ format: parseFormat('fp8-e4m3'), granularity: { type: 'token' }, dynamic: true });
 * ```
 */
export function activationQuantizer(scheme: ActivationScheme, scales?: ActivationScales): RuntimeInputTransform {
  validateActivationScheme(scheme);
  if (!scheme.dynamic && !scales) throw new InvalidArgumentError('scales', 'a static activation scheme needs calibrated scales; expected the result of an ActivationObserver');
  return {
    name: 'activation-quantization',
    apply: (input, rows, columns) => fakeQuantizeActivations(input, rows, columns, scheme, scales),
    describe: () => ({
      kind: 'activation-quantization',
      format: formatName(scheme.format),
      granularity: granularityName(scheme.granularity),
      dynamic: scheme.dynamic,
      ...(scheme.dynamic ? {} : { observer: scheme.observer ?? 'minmax', scales: Array.from(scales!.scales), ...(scales!.zeroPoints ? { zeroPoints: Array.from(scales!.zeroPoints) } : {}) }),
    }),
  };
}

/**
 * Parses what an activation quantizer's `describe()` returned (as saved in a quantized model's `config.json`) back
 * into its scheme and static scales, so that exporters can translate it and evaluation can reinstall it.
 *
 * @throws InvalidArgumentError when the description is not one of an activation quantizer, naming the field.
 * @example
 * ```ts
 * const { scheme, scales } = activationSchemeFromDescription(quantizer.describe());
 * ```
 */
export function activationSchemeFromDescription(description: Record<string, unknown>): { scheme: ActivationScheme; scales?: ActivationScales } {
  const d = description as { kind?: unknown; format?: unknown; granularity?: unknown; dynamic?: unknown; observer?: unknown; scales?: unknown; zeroPoints?: unknown };
  if (d.kind !== 'activation-quantization') throw new InvalidArgumentError('kind', `got '${String(d.kind)}'; expected 'activation-quantization'`);
  if (typeof d.format !== 'string') throw new InvalidArgumentError('format', 'expected a format name such as int8 or fp8-e4m3');
  const label = String(d.granularity);
  const group = /^g(\d+)$/.exec(label);
  const granularity: ActivationGranularity | undefined = group
    ? { type: 'group', size: Number(group[1]) }
    : label === 'tensor' || label === 'token' || label === 'channel'
      ? { type: label }
      : undefined;
  if (!granularity) throw new InvalidArgumentError('granularity', `got '${label}'; expected tensor, token, channel or g<size>`);
  if (typeof d.dynamic !== 'boolean') throw new InvalidArgumentError('dynamic', 'expected true or false');
  const numbers = (v: unknown, field: string): Float32Array => {
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) throw new InvalidArgumentError(field, 'expected a list of finite numbers');
    return Float32Array.from(v as number[]);
  };
  const scheme: ActivationScheme = {
    format: parseFormat(d.format),
    granularity,
    dynamic: d.dynamic,
    ...(typeof d.observer === 'string' ? { observer: d.observer as ActivationObserverKind } : {}),
  };
  validateActivationScheme(scheme);
  if (scheme.dynamic) return { scheme };
  return { scheme, scales: { scales: numbers(d.scales, 'scales'), ...(d.zeroPoints !== undefined ? { zeroPoints: numbers(d.zeroPoints, 'zeroPoints') } : {}) } };
}

/**
 * Rebuilds an activation quantizer from what its `describe()` returned (as saved in a quantized model's
 * `config.json`), so that evaluation reinstalls exactly the calibrated quantizer.
 *
 * @throws InvalidArgumentError when the description is not one of an activation quantizer, naming the field.
 * @example
 * ```ts
 * const again = activationQuantizerFromDescription(quantizer.describe());
 * ```
 */
export function activationQuantizerFromDescription(description: Record<string, unknown>): RuntimeInputTransform {
  const { scheme, scales } = activationSchemeFromDescription(description);
  return activationQuantizer(scheme, scales);
}

/**
 * Chains run-time input transforms: applies them in the order given (for example an online Hadamard, then activation
 * quantization). `undefined` entries are skipped; one transform is returned as is.
 *
 * @example
 * ```ts
 * layer.inputTransform = composeInputTransforms(layer.inputTransform, activationQuantizer(scheme));
 * ```
 */
export function composeInputTransforms(...transforms: readonly (RuntimeInputTransform | undefined)[]): RuntimeInputTransform | undefined {
  const list = transforms.filter((t): t is RuntimeInputTransform => t !== undefined);
  if (list.length <= 1) return list[0];
  return {
    name: list.map((t) => t.name).join('+'),
    apply: async (input, rows, columns) => {
      for (const t of list) await t.apply(input, rows, columns);
    },
    describe: () => ({ kind: 'sequence', transforms: list.map((t) => t.describe()) }),
  };
}
