import {
  channelShift,
  checkOptions,
  composeInputTransforms,
  fakeQuantizeActivations,
  InvalidArgumentError,
  parseFormat,
  validateActivationScheme,
  type ActivationScheme,
  type FormatSpec,
  type InputGroup,
  type Matrix,
  type QuantizeOptions,
  type Quantizer,
  type StepContext,
  type StepWarning,
} from '@bitsmith/core';
import { defaultBackend, type Backend } from '@bitsmith/linalg';
import { groupInputs, layerStatesFromBlock, selectFoldableGroups, throwIfAborted, draftStepContext, schemeMismatchWarnings } from './block-step.js';
import { foldInputScales, scaleColumns } from './fold-scales.js';
import { fakeQuantize, resolveQuantizationTarget, type QuantizationTarget } from './quantization-target.js';
import { outlierSuppressionPlusOptionsSchema } from './smoothing-options.js';

/** Options of {@link outlierSuppressionPlus}. The weight format and granularity are those of the quantize step that follows. */
export interface OutlierSuppressionPlusOptions extends QuantizationTarget {
  /**
   * How inputs are quantized at run time (the recipe's `inputActivations`), simulated in the scale search: a format
   * (name or spec) and `tensor` (one scale over the calibration sample: static min-max) or `token` (dynamic) scales.
   * Default `{ format: 'int8', granularity: 'tensor' }`.
   */
  activations?: { readonly format: FormatSpec | string; readonly granularity?: 'tensor' | 'token' };
  /** Apply the channel shift `z = (max + min) / 2`. Default true. */
  shift?: boolean;
  /** Search and fold the channel scale. Default true. */
  scale?: boolean;
  /** Thresholds `t` tried by the scale search (see {@link outlierSuppressionPlus}). Default 20. */
  candidates?: number;
  /** Calibration tokens requested from the runner (`inputs` statistic) and used by the search. Default 2048. */
  maxTokens?: number;
  /** Backend for the GEMMs. Default `await defaultBackend()`. */
  backend?: Backend;
}

/** Per-channel shift `(max + min) / 2` and half-range `(max - min) / 2` of `[tokens, channels]` inputs. */
export function channelShiftAndRange(inputs: Matrix): { shift: Float32Array; range: Float32Array } {
  const [tokens, channels] = inputs.shape;
  const min = new Float64Array(channels).fill(Infinity);
  const max = new Float64Array(channels).fill(-Infinity);
  const x = inputs.data;
  for (let t = 0; t < tokens; t++) {
    const o = t * channels;
    for (let j = 0; j < channels; j++) {
      const v = x[o + j]!;
      if (v < min[j]!) min[j] = v;
      if (v > max[j]!) max[j] = v;
    }
  }
  const shift = new Float32Array(channels);
  const range = new Float32Array(channels);
  if (tokens === 0) return { shift, range };
  for (let j = 0; j < channels; j++) {
    shift[j] = (max[j]! + min[j]!) / 2;
    range[j] = (max[j]! - min[j]!) / 2;
  }
  return { shift, range };
}

/**
 * OS+'s scale for an outlier threshold `t` (arXiv:2304.09145, eq. 5): `s_j = max(1, range_j / t)`, so that every
 * shifted channel's half-range is at most `t` after division by `s_j`.
 */
export function outlierSuppressionScales(range: Float32Array, threshold: number): Float32Array {
  if (!(threshold > 0)) throw new InvalidArgumentError('threshold', `got ${threshold}; expected a positive number`);
  const s = new Float32Array(range.length);
  for (let j = 0; j < range.length; j++) s[j] = Math.max(1, range[j]! / threshold);
  return s;
}

/** The thresholds tried: a geometric grid from the largest channel half-range (no scaling) down to the median one. */
export function outlierThresholds(range: Float32Array, count: number): number[] {
  const sorted = Float32Array.from(range).sort();
  const top = sorted[sorted.length - 1] ?? 0;
  const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
  if (!(top > 0)) return [];
  const low = Math.max(median, top * 1e-3);
  return Array.from({ length: count }, (_, i) => top * (low / top) ** (count > 1 ? i / (count - 1) : 0));
}

/** Evenly strided rows of `inputs`, at most `maxTokens`. */
function subsample(inputs: Matrix, maxTokens: number): Matrix {
  const [tokens, columns] = inputs.shape;
  if (tokens <= maxTokens) return inputs;
  const stride = tokens / maxTokens;
  const data = new Float32Array(maxTokens * columns);
  for (let r = 0; r < maxTokens; r++) data.set(inputs.data.subarray(Math.floor(r * stride) * columns, (Math.floor(r * stride) + 1) * columns), r * columns);
  return { dtype: 'float32', shape: [maxTokens, columns], data };
}

/**
 * The output error of one candidate scale on the group (OS+'s search objective): the squared distance between the
 * quantized and the float outputs of every linear of the group on the shifted calibration inputs,
 * `sum_i ||Q_a((X - z) / s) Q_w(W_i diag(s))^T - (X - z) W_i^T||^2`.
 */
async function candidateLoss(
  shifted: Matrix,
  scales: Float32Array,
  weights: readonly Matrix[],
  references: readonly Float32Array[],
  activations: ActivationScheme,
  weightOptions: QuantizeOptions,
  backend: Backend,
): Promise<number> {
  const [tokens, columns] = shifted.shape;
  const x = new Float32Array(tokens * columns);
  for (let t = 0; t < tokens; t++) {
    const o = t * columns;
    for (let j = 0; j < columns; j++) x[o + j] = shifted.data[o + j]! / scales[j]!;
  }
  fakeQuantizeActivations(x, tokens, columns, activations);
  let loss = 0;
  for (const [i, w] of weights.entries()) {
    const rows = w.shape[0];
    const q = fakeQuantize(scaleColumns(w, scales), weightOptions);
    const out = new Float32Array(tokens * rows);
    await backend.sgemm({ m: tokens, n: rows, k: columns, a: x, b: q, c: out, transB: true });
    const ref = references[i]!;
    for (let k = 0; k < out.length; k++) loss += (out[k]! - ref[k]!) ** 2;
  }
  return loss;
}

/** Adds `W z` to a linear's bias (a new array): the compensation of the input shift `z`. */
function shiftedBias(weight: Matrix, shift: Float32Array, bias: Float32Array | undefined): Float32Array {
  const [rows, columns] = weight.shape;
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = bias ? bias[r]! : 0;
    const o = r * columns;
    for (let j = 0; j < columns; j++) acc += weight.data[o + j]! * shift[j]!;
    out[r] = acc;
  }
  return out;
}

/**
 * Outlier Suppression+ (Wei et al., arXiv:2304.09145) as a block-level transform for W8A8 / W4A4: for each input group
 * of `context.block` with a norm or linear producer and all its linears selected,
 * 1. **shift**: `z_j = (max_j + min_j) / 2` over the calibration tokens centres every channel (asymmetric outlier
 *    channels become symmetric); Llama has no bias in front of its linears to absorb `-z`, so the shift is a run-time
 *    input transform (`channelShift`) on each linear of the group and each linear's bias gains `W z` (a bias is added
 *    where there was none), keeping the float model unchanged;
 * 2. **scale**: `s_j = max(1, range_j / t)` (`range_j` the shifted half-range) scales down the channels whose range
 *    exceeds the outlier threshold `t`, folded exactly into the producer and the linears (as SmoothQuant's scale);
 *    `t` is searched over {@link outlierThresholds} (`candidates` values, the first one leaving `s = 1`) by the
 *    paper's objective, the output error of the group's linears with both their inputs (`activations`) and their
 *    weights (the following quantize step's format, round-to-nearest) fake-quantized.
 * It does not quantize: follow it with `rtn` or `gptq` at the same weight format, and set the recipe's
 * `inputActivations` to the scheme searched for. The run-time shift travels in fake-quant folders (`config.json`
 * records it; the added biases make the checkpoint a Llama with `attention_bias` / `mlp_bias`); packed exports refuse
 * it by name.
 *
 * Requires `{ kind: 'inputs', maxTokens }`.
 *
 * @param options `format` (required: the weight format), `granularity`, `activations` (`int8` per tensor), `shift`
 *   (true), `scale` (true), `candidates` (20), `maxTokens` (2048), `backend`.
 * @throws InvalidArgumentError naming the offending option.
 * @example
 * ```ts
 * const recipe = {
 *   inputActivations: { format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false },
 *   stages: [{ step: outlierSuppressionPlus({ format: 'int8', activations: { format: 'int8' } }) }, { step: rtn({ format: 'int8' }) }],
 * };
 * ```
 */
export function outlierSuppressionPlus(options: OutlierSuppressionPlusOptions): Quantizer {
  checkOptions('outlierSuppressionPlus', outlierSuppressionPlusOptionsSchema, options);
  const weightOptions = resolveQuantizationTarget(options);
  const a = options.activations ?? { format: 'int8' };
  const granularity = a.granularity ?? 'tensor';
  const activations: ActivationScheme = { format: typeof a.format === 'string' ? parseFormat(a.format) : a.format, granularity: { type: granularity }, dynamic: true };
  validateActivationScheme(activations);
  const shiftOn = options.shift ?? true;
  const scaleOn = options.scale ?? true;
  if (!shiftOn && !scaleOn) throw new InvalidArgumentError('shift', 'shift and scale are both off: the step would do nothing; expected at least one');
  const candidates = options.candidates ?? 20;
  const maxTokens = options.maxTokens ?? 2048;
  return {
    specificationVersion: 'v2',
    id: 'outlier-suppression-plus',
    kind: 'transform',
    scope: 'layer',
    requires: [{ kind: 'inputs', maxTokens }],
    async run(given: StepContext) {
      // Step contract v2: fold into a draft of the block; the changes outside the layers return as model edits.
      const { context, edits } = draftStepContext(given);
      throwIfAborted(context.signal);
      const backend = options.backend ?? (await defaultBackend());
      const warnings: StepWarning[] = [];
      if (!context.block) warnings.push({ step: 'outlier-suppression-plus', message: 'no block in the step context: nothing to fold into; layers left unchanged' });
      const { groups, warnings: selectionWarnings } = selectFoldableGroups(context, 'outlier-suppression-plus');
      warnings.push(...selectionWarnings, ...schemeMismatchWarnings(context, 'outlier-suppression-plus', weightOptions));
      for (const [g, group] of groups.entries()) {
        throwIfAborted(context.signal);
        const first = group.linears[0]!.name;
        const raw = groupInputs(context, group.linears);
        if (!raw) {
          warnings.push({ step: 'outlier-suppression-plus', layer: first, message: 'no calibration inputs for this input group; skipped' });
          continue;
        }
        await suppressGroup(group, subsample(raw, maxTokens), { shiftOn, scaleOn, candidates, activations, weightOptions, backend, check: () => throwIfAborted(context.signal) });
        context.progress?.(g + 1, groups.length, first);
      }
      return { layers: layerStatesFromBlock(context), warnings, edits: edits() };
    },
  };
}

/** Shifts, searches and folds one input group (see {@link outlierSuppressionPlus}); returns the chosen threshold (Infinity: no scaling). */
async function suppressGroup(
  group: InputGroup,
  inputs: Matrix,
  o: { shiftOn: boolean; scaleOn: boolean; candidates: number; activations: ActivationScheme; weightOptions: QuantizeOptions; backend: Backend; check: () => void },
): Promise<number> {
  const [tokens, columns] = inputs.shape;
  const measured = channelShiftAndRange(inputs);
  const shift = o.shiftOn ? measured.shift : new Float32Array(columns);
  let range = measured.range;
  if (!o.shiftOn) {
    range = new Float32Array(columns);
    for (let j = 0; j < columns; j++) range[j] = Math.max(Math.abs(measured.shift[j]! + measured.range[j]!), Math.abs(measured.shift[j]! - measured.range[j]!));
  }
  let scales: Float32Array = new Float32Array(columns).fill(1);
  let threshold = Infinity;
  if (o.scaleOn) {
    const shifted = new Float32Array(tokens * columns);
    for (let t = 0; t < tokens; t++) for (let j = 0; j < columns; j++) shifted[t * columns + j] = inputs.data[t * columns + j]! - shift[j]!;
    const x: Matrix = { dtype: 'float32', shape: [tokens, columns], data: shifted };
    const weights = group.linears.map((l) => l.weight);
    const references = await Promise.all(
      weights.map(async (w) => {
        const ref = new Float32Array(tokens * w.shape[0]);
        await o.backend.sgemm({ m: tokens, n: w.shape[0], k: columns, a: shifted, b: w.data, c: ref, transB: true });
        return ref;
      }),
    );
    let best = Infinity;
    for (const t of outlierThresholds(range, o.candidates)) {
      o.check();
      const s = outlierSuppressionScales(range, t);
      const loss = await candidateLoss(x, s, weights, references, o.activations, o.weightOptions, o.backend);
      if (loss < best) {
        best = loss;
        scales = s;
        threshold = t;
      }
    }
    if (scales.some((s) => s !== 1)) foldInputScales(group, scales);
  }
  if (o.shiftOn) {
    // After folding, the linears see x / s: the shift in their coordinates is z / s, and (W diag(s)) (z / s) = W z.
    const z = new Float32Array(columns);
    for (let j = 0; j < columns; j++) z[j] = shift[j]! / scales[j]!;
    for (const linear of group.linears) {
      linear.bias = shiftedBias(linear.weight, z, linear.bias);
      linear.inputTransform = composeInputTransforms(channelShift(z), linear.inputTransform);
    }
  }
  return threshold;
}
