import {
  AbortError,
  bitsPerWeight,
  checkOptions,
  dequantize,
  InvalidArgumentError,
  parseFormat,
  quantize,
  type BlockGradients,
  type FormatSpec,
  type Granularity,
  type LayerState,
  type QuantizedTensor,
  type Quantizer,
  type ScaleEncoding,
  type StepWarning,
} from '@bitsmith/core';
import { createRandom, learnableRoundingKernels, tryReferenceKernels, type ReferenceKernels } from '@bitsmith/linalg';
import { gptqQuantizeLayer } from '@bitsmith/solvers';
import type { LearningRateSchedule } from './learning-rate-schedule.js';
import { autoRoundOptionsSchema } from './learned-options.js';
import { learnableRounding, type LearnableRounding, type RoundingParameters } from './learnable-rounding.js';
import { adam, signSgd, type Optimizer } from './optimizer.js';
import { accumulateScaleGradients, layerTransforms, normEdits, scalesOf, transformGroups, transformWeight, type LayerTransform, type TransformGroup } from './equivalent-transform.js';

/** Options of {@link autoRound}. */
export interface AutoRoundOptions {
  /** A uniform integer format or its name (`int4`, `int3`, `int2-asym`, ...). */
  format: FormatSpec | string;
  /** Default: per output channel. AutoRound's usual setting is `{ type: 'group', size: 128 }`. */
  granularity?: Granularity;
  /** Default `float16`. */
  scaleEncoding?: ScaleEncoding;
  /** Optimisation steps per block. Default 200 (the paper's and intel/auto-round's default). */
  iterations?: number;
  /** Learning rate of the rounding offsets. Default `1 / iterations` (intel/auto-round). */
  learningRate?: number;
  /** Learning rate of the min/max clipping factors. Default: `learningRate`. */
  scaleLearningRate?: number;
  /** Calibration sequences per step, drawn without replacement from a seeded shuffle per pass. Default 8. */
  batchSize?: number;
  /** Seed of the batch order. Default 0. */
  seed?: number;
  /** `sign-sgd` (default, the paper's) or `adam`. */
  optimizer?: 'sign-sgd' | 'adam';
  /** Default `linear` decay to 0 (AutoRound). */
  schedule?: LearningRateSchedule;
  /** Learn the min/max clipping factors too. Default true. */
  learnClipping?: boolean;
  /** Learn the rounding offsets. Default true (false leaves plain rounding: OmniQuant-style clipping only). */
  learnRounding?: boolean;
  /** Keep the parameters of the step with the lowest batch loss (AutoRound's default) rather than the last. Default true. */
  bestIterate?: boolean;
  /**
   * Where the rounding starts: `rtn` (default, AutoRound's round-to-nearest) or `gptq`: each layer is first solved by
   * GPTQ (`@bitsmith/solvers`, from the layer's Hessian, which the step then requests) and AutoRound refines that
   * solution, every weight within half a step of GPTQ's code and the clipping factors scaling GPTQ's group scales.
   * Iteration 0 is then exactly GPTQ's result, so with best-iterate selection on the full batch the block loss is
   * never worse than GPTQ's. Symmetric grids only.
   */
  init?: 'rtn' | 'gptq';
  /**
   * Also learn OmniQuant's equivalent transform (LET, scales only; arXiv:2308.13137): a scale per input channel of
   * every input group whose producer can take it (a norm: `input_layernorm` -> q/k/v, `post_attention_layernorm` ->
   * gate/up; a producing linear among the step's layers without a bias: `up_proj` -> `down_proj`, and `v_proj` ->
   * `o_proj` where every query head has its own key/value head), trained jointly with the rounding/clipping against
   * the block output. The quantizer sees `W diag(s)`; the scale is folded into the norm (`scale-norm` edit) or the
   * producer's rows. Starts at 1 (the step's result without it at iteration 0). Default false. Not with
   * `init: 'gptq'`.
   */
  equivalentTransform?: boolean;
  /** Adam's learning rate of the transform's log-scales. Default 5e-3 (OmniQuant's `let_lr`). */
  transformLearningRate?: number;
}

interface LayerTraining {
  state: LayerState;
  rounding: LearnableRounding;
  params: RoundingParameters;
  best: RoundingParameters;
  optimizers: { offset: Optimizer; minScale: Optimizer; maxScale: Optimizer };
  /** With an equivalent transform: where the layer sits, and its buffers (`W~`, the trial weight, `dL/dR`, `dL/dW~`). */
  transform?: { where: LayerTransform; transformed: Float32Array; trial: Float32Array; gradQuantized: Float32Array; gradTransformed: Float32Array };
}

const copyParams = (p: RoundingParameters): RoundingParameters => ({ offset: p.offset.slice(), minScale: p.minScale.slice(), maxScale: p.maxScale.slice() });

/** Batches of sequence indices: a fresh seeded shuffle of all sequences each pass, cut into `size` pieces. */
function batchOrder(count: number, size: number, seed: number): () => number[] {
  const random = createRandom(seed);
  let order: number[] = [];
  return () => {
    const batch: number[] = [];
    while (batch.length < Math.min(size, count)) {
      if (order.length === 0) {
        order = Array.from({ length: count }, (_, i) => i);
        for (let i = count - 1; i > 0; i--) {
          const j = Math.floor(random.uniform() * (i + 1));
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
      }
      batch.push(order.pop()!);
    }
    return batch;
  };
}

/**
 * The mean squared error between a block's output with trial weights and its float output, and the gradient of
 * that loss with respect to the trial weights (one forward and one backward pass), for a training loop: the float
 * output is read in place (all sequences, computed once by the capability), the output gradient goes into `grad`
 * (grown as needed), and the pass leaves out the input gradient and may return gradients that its next pass reuses;
 * the layers in `gradientsInto` get theirs written into those arrays (the quantizers' kernel buffers).
 */
function blockLoss(g: BlockGradients, gradientsInto?: ReadonlyMap<string, Float32Array>): (weights: ReadonlyMap<string, Float32Array>, batch: readonly number[]) => Promise<{ loss: number; gradients: ReadonlyMap<string, Float32Array> }> {
  const hidden = g.hiddenSize;
  const starts: number[] = [];
  let row = 0;
  for (const n of g.lengths) {
    starts.push(row);
    row += n;
  }
  let grad = new Float32Array(0);
  // The seed's loop in WebAssembly where available (the same bits): this loss's own instance.
  let kernels: Promise<ReferenceKernels | undefined> | undefined;
  return async (weights, batch) => {
    const target = (await g.target()).data as Float32Array;
    const wasm = await (kernels ??= tryReferenceKernels());
    let loss = 0;
    const r = await g.backward(
      weights,
      batch,
      (output) => {
        const y = output.data as Float32Array;
        const n = y.length;
        if (grad.length < n) grad = new Float32Array(n);
        const out = grad.length === n ? grad : grad.subarray(0, n);
        // Row by row against the target's rows of each sequence: the same order of terms as one gathered target.
        let sum = 0;
        let i = 0;
        for (const s of batch) {
          const length = g.lengths[s]! * hidden;
          const t = starts[s]! * hidden;
          sum = wasm ? wasm.squaredError(y.subarray(i, i + length), target.subarray(t, t + length), out.subarray(i, i + length), n, sum) : squaredErrorGradient(y, i, target, t, length, n, out, sum);
          i += length;
        }
        loss = sum / n;
        return out;
      },
      { inputGradient: false, transientResults: true, ...(gradientsInto && gradientsInto.size > 0 ? { weightGradientsInto: gradientsInto } : {}) },
    );
    return { loss, gradients: r.weightGradients };
  };
}

/**
 * `out[i + j] = 2 (y[i + j] - target[t + j]) / n` (float64, stored as float32) for `j < length`, and the running sum
 * `sum` of the squared differences continued in order, returned. With `n` a power of two the quotient is computed as a
 * product by `2 / n`, which is exact: the same bits as the division, without its cost.
 */
function squaredErrorGradient(y: Float32Array, i: number, target: Float32Array, t: number, length: number, n: number, out: Float32Array, sum: number): number {
  const end = i + length;
  const exact = (n & (n - 1)) === 0 && n > 0 && n <= 2 ** 30;
  const factor = 2 / n;
  for (; i < end; i++, t++) {
    const d = y[i]! - target[t]!;
    sum += d * d;
    out[i] = exact ? d * factor : (2 * d) / n;
  }
  return sum;
}

/** Copies the parameters into `into` (the best iterate's arrays, kept across iterations). */
function copyParamsInto(into: RoundingParameters, from: RoundingParameters): void {
  into.offset.set(from.offset);
  into.minScale.set(from.minScale);
  into.maxScale.set(from.maxScale);
}

/** Divides column `j` of a row-major `[rows, columns]` matrix by `scale[j]`, in place. */
function divideColumns(m: Float32Array, rows: number, columns: number, scale: Float64Array): void {
  for (let i = 0; i < rows; i++) {
    const base = i * columns;
    for (let j = 0; j < columns; j++) m[base + j] = m[base + j]! / scale[j]!;
  }
}

/**
 * AutoRound (SignRound; Cheng et al., arXiv:2309.05516) as a quantize step: for each block, learns a rounding offset
 * `v` in [-0.5, 0.5] per weight and min/max clipping factors in [0, 1] per group for all selected layers together,
 * by signed gradient descent on the mean squared error between the block's output with quantized weights and its
 * float output (straight-through rounding; `iterations` steps of `batchSize` calibration sequences, learning rate
 * `1 / iterations` decaying linearly, the parameters of the lowest-loss step kept). The result is an ordinary
 * uniform integer stored form (codes, float16 scales, zero points for `-asym`), so every exporter takes it.
 *
 * Needs the block capability (`StepContext.blockGradients`, which the recipe runner fills for models that provide
 * it, such as `@bitsmith/models`' Llama graphs). On loose layers without a block it falls back to round-to-nearest
 * and says so in a warning.
 *
 * Differences from intel/auto-round: the float target is the block's output on the same (quantized-prefix) input
 * the quantized block sees, and the loss is averaged over all tokens of the batch.
 *
 * @example
 * ```ts
 * const step = autoRound({ format: 'int4', granularity: { type: 'group', size: 128 } }); // 200 iterations
 * await runRecipe(model, [step], calibration);
 * ```
 */
export function autoRound(options: AutoRoundOptions): Quantizer {
  checkOptions('autoRound', autoRoundOptionsSchema, options);
  return blockwiseRounding(options, 'autoround');
}

/** @internal The block-output optimisation behind {@link autoRound} and `learnableWeightClipping`, under a step id. */
export function blockwiseRounding(options: AutoRoundOptions, id: string): Quantizer {
  const format = typeof options.format === 'string' ? parseFormat(options.format) : options.format;
  if (format.type !== 'int') throw new InvalidArgumentError('format', `AutoRound learns rounding on uniform integer grids (int2..int8, -asym); got ${format.type}`);
  const iterations = options.iterations ?? 200;
  const learningRate = options.learningRate ?? 1 / Math.max(1, iterations);
  const scaleLearningRate = options.scaleLearningRate ?? learningRate;
  const batchSize = options.batchSize ?? 8;
  const learnClipping = options.learnClipping ?? true;
  const learnRounding = options.learnRounding ?? true;
  if (!learnClipping && !learnRounding) throw new InvalidArgumentError('learnClipping/learnRounding', 'nothing to learn: enable at least one');
  const bestIterate = options.bestIterate ?? true;
  const init = options.init ?? 'rtn';
  const equivalentTransform = options.equivalentTransform ?? false;
  if (equivalentTransform && init === 'gptq') throw new InvalidArgumentError('equivalentTransform', "the equivalent transform changes the weights GPTQ's start was solved for; use it with init: 'rtn'");
  const transformLearningRate = options.transformLearningRate ?? 5e-3;
  if (init === 'gptq' && !format.symmetric) throw new InvalidArgumentError('init', `init: 'gptq' needs a symmetric integer format (int2..int8); got ${format.bits}-bit asymmetric`);
  const settings = {
    format,
    ...(options.granularity ? { granularity: options.granularity } : {}),
    scaleEncoding: options.scaleEncoding ?? ('float16' as ScaleEncoding),
  };
  const makeOptimizer = (lr: number, bounds: readonly [number, number], float32: boolean): Optimizer => {
    const o = { learningRate: lr, iterations: Math.max(1, iterations), bounds, ...(options.schedule ? { schedule: options.schedule } : {}) };
    return options.optimizer === 'adam' ? adam(o) : signSgd({ ...o, float32 });
  };

  return {
    specificationVersion: 'v2',
    id,
    kind: 'quantize',
    requires: init === 'gptq' ? [{ kind: 'hessian' }] : [],
    async run(context) {
      const warnings: StepWarning[] = [];
      const g = context.blockGradients;
      const training: LayerTraining[] = [];
      const unlearned: LayerState[] = [];
      // The rounding's loops in WebAssembly where available (same results); the equivalent transform rebuilds its
      // quantizers every iteration, so it keeps the JavaScript loops.
      const kernels = g && iterations > 0 && !equivalentTransform ? await learnableRoundingKernels() : undefined;
      // The rounding's loops and SignSGD steps in the arithmetic of the block's passes: float32 under the native one.
      const arithmetic = g?.arithmetic ?? 'reference';
      const native = arithmetic === 'native';
      for (const state of context.layers) {
        const settingsHere = state.assignment?.format.type === 'int' ? { ...settings, format: state.assignment.format, ...(state.assignment.granularity ? { granularity: state.assignment.granularity } : {}) } : settings;
        let start: QuantizedTensor | undefined;
        if (init === 'gptq') {
          const statistics = context.statistics(state.name);
          if (!statistics.hessian || statistics.tokens === 0) throw new InvalidArgumentError('statistics', `init: 'gptq' needs the Hessian of layer '${state.name}', and no calibration token reached it`);
          const solved = await gptqQuantizeLayer(state.weight, statistics.hessian, { ...settingsHere, ...(context.signal ? { signal: context.signal } : {}) });
          for (const warning of solved.warnings) warnings.push({ ...warning, step: id, layer: state.name });
          start = solved.quantized;
        }
        if (!g || iterations === 0) {
          // Nothing to learn: the starting point (GPTQ's solution, or round-to-nearest) is the result.
          const q = start ?? quantize(state.weight, settingsHere);
          unlearned.push({ ...state, weight: dequantize(q), quantized: q, bitsPerWeight: bitsPerWeight(q) });
          continue;
        }
        const rounding = learnableRounding(state.weight, { ...settingsHere, ...(start ? { start } : {}), ...(kernels ? { kernels } : {}), arithmetic });
        const params = rounding.initial();
        training.push({
          state,
          rounding,
          params,
          best: copyParams(params),
          optimizers: { offset: makeOptimizer(learningRate, [-0.5, 0.5], native), minScale: makeOptimizer(scaleLearningRate, [0, 1], native), maxScale: makeOptimizer(scaleLearningRate, [0, 1], native) },
        });
      }
      if (!g || iterations === 0) {
        if (!g) warnings.push({ step: id, message: `no block capability (loose layers or a model without block gradients): fell back to ${init === 'gptq' ? "GPTQ's solution" : 'round-to-nearest'}` });
        return { layers: unlearned, warnings };
      }
      // OmniQuant's equivalent transform: learnable channel scales between producers and the linears they feed.
      let groups: TransformGroup[] = [];
      if (equivalentTransform) {
        if (!context.block) {
          warnings.push({ step: id, message: 'equivalentTransform: the step was given no block (loose layers); learned without it' });
        } else {
          const found = transformGroups(context.block, new Set(training.map((t) => t.state.name)), id);
          groups = found.groups;
          warnings.push(...found.warnings);
          const where = layerTransforms(groups);
          for (const t of training) {
            const w = where.get(t.state.name);
            if (!w) continue;
            const n = t.rounding.rows * t.rounding.columns;
            t.transform = { where: w, transformed: new Float32Array(n), trial: new Float32Array(n), gradQuantized: new Float32Array(n), gradTransformed: new Float32Array(n) };
          }
        }
      }
      const transformOptimizers = groups.map(() => adam({ learningRate: transformLearningRate, iterations: Math.max(1, iterations), bounds: [-5, 5], ...(options.schedule ? { schedule: options.schedule } : {}) }));
      let bestLogScales = groups.map((grp) => grp.logScale.slice());
      const settingsOf = (t: LayerTraining) => ({ ...settings, format: t.rounding.plan.format, granularity: t.rounding.plan.granularity });
      // This iteration's W~ of every transformed layer, and its quantizer rebuilt on it (the parameters carry over).
      const transformAll = (logScales: readonly Float32Array[]): Float64Array[] => {
        const scales = logScales.map(scalesOf);
        for (const t of training) {
          if (!t.transform) continue;
          const { where, transformed } = t.transform;
          const { rows, columns } = t.rounding;
          transformWeight(t.state.weight.data as Float32Array, rows, columns, where.column >= 0 ? scales[where.column] : undefined, where.row >= 0 ? scales[where.row] : undefined, transformed);
          t.rounding = learnableRounding({ dtype: 'float32', shape: [rows, columns], data: transformed }, { ...settingsOf(t), arithmetic });
        }
        return scales;
      };

      const nextBatch = batchOrder(g.lengths.length, batchSize, options.seed ?? 0);
      // The weight gradients go straight into the quantizers' kernels (the layers without a transform), not copied there.
      const gradientsInto = new Map<string, Float32Array>();
      for (const t of training) {
        const buffer = t.transform ? undefined : t.rounding.gradientBuffer();
        if (buffer) gradientsInto.set(t.state.name, buffer);
      }
      const lossOf = blockLoss(g, gradientsInto);
      const weights = new Map<string, Float32Array>();
      let bestLoss = Infinity;
      let firstLoss = NaN;
      for (let it = 0; it < iterations; it++) {
        if (context.signal?.aborted) throw new AbortError();
        const scales = groups.length > 0 ? transformAll(groups.map((grp) => grp.logScale)) : [];
        for (const t of training) {
          if (!t.transform) {
            // The quantizer's own array (the kernel's output, no copy), read by the pass before the next iteration.
            weights.set(t.state.name, t.rounding.dequantizeKept(t.params));
            continue;
          }
          // Trial weight: R = Q(W~), with 1 / s on its columns when the scale belongs in a norm (the block's norms are
          // not changed while training): the block then computes exactly what the folded model will.
          const { where, trial } = t.transform;
          t.rounding.dequantize(t.params, trial);
          if (where.unscaleColumns) divideColumns(trial, t.rounding.rows, t.rounding.columns, scales[where.column]!);
          weights.set(t.state.name, trial);
        }
        const batch = nextBatch();
        const { loss, gradients } = await lossOf(weights, batch);
        if (!Number.isFinite(loss)) throw new InvalidArgumentError('calibration', `AutoRound's block loss became ${loss} at iteration ${it}`);
        if (it === 0) firstLoss = loss;
        if (loss < bestLoss || !bestIterate) {
          bestLoss = loss;
          for (const t of training) copyParamsInto(t.best, t.params);
          bestLogScales = groups.map((grp) => grp.logScale.slice());
        }
        const scaleGradients = groups.map((grp) => new Float64Array(grp.logScale.length));
        for (const t of training) {
          const grad = gradients.get(t.state.name);
          if (!grad) throw new InvalidArgumentError('blockGradients', `the block returned no gradient for '${t.state.name}'`);
          let d: ReturnType<LearnableRounding['backward']>;
          if (!t.transform) d = t.rounding.backward(t.params, grad);
          else {
            const { where, transformed, trial, gradQuantized, gradTransformed } = t.transform;
            const { rows, columns } = t.rounding;
            gradQuantized.set(grad);
            if (where.unscaleColumns) divideColumns(gradQuantized, rows, columns, scales[where.column]!);
            d = t.rounding.backward(t.params, gradQuantized, gradTransformed);
            accumulateScaleGradients(rows, columns, transformed, trial, grad, gradTransformed, where.unscaleColumns, where.column >= 0 ? scaleGradients[where.column] : undefined, where.row >= 0 ? scaleGradients[where.row] : undefined);
          }
          if (learnRounding) t.optimizers.offset.step(t.params.offset, d.offset);
          if (learnClipping) {
            t.optimizers.minScale.step(t.params.minScale, d.minScale);
            t.optimizers.maxScale.step(t.params.maxScale, d.maxScale);
          }
        }
        groups.forEach((grp, i) => transformOptimizers[i]!.step(grp.logScale, scaleGradients[i]!));
        context.progress?.(it + 1, iterations, `loss ${loss.toExponential(3)} (first ${firstLoss.toExponential(3)}, best ${bestLoss.toExponential(3)})`);
      }
      // The best iterate's scales: W~ once more, and the quantizers on it.
      groups.forEach((grp, i) => grp.logScale.set(bestLogScales[i]!));
      if (groups.length > 0) transformAll(bestLogScales);
      const layers: LayerState[] = training.map((t) => {
        const q = t.rounding.quantize(t.best);
        const reference = t.transform ? { dtype: 'float32' as const, shape: [t.rounding.rows, t.rounding.columns] as [number, number], data: t.transform.transformed } : undefined;
        return { ...t.state, weight: dequantize(q), quantized: q, bitsPerWeight: bitsPerWeight(q), ...(reference ? { reference } : {}) };
      });
      return { layers, warnings, ...(groups.length > 0 ? { edits: normEdits(groups) } : {}) };
    },
  };
}
