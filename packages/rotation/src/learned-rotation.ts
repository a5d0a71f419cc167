import {
  AbortError,
  calibrationBlocks,
  dequantize,
  elementCodec,
  fakeQuantizeActivations,
  InvalidArgumentError,
  isDifferentiableModel,
  matrix,
  parseFormat,
  quantize,
  requireLanguageModelHead,
  resolveBlockMapping,
  type ActivationScheme,
  type BlockGradients,
  type DifferentiableModel,
  type FormatSpec,
  type Granularity,
  type HiddenStatesHandle,
  type LinearInputQuantizer,
  type LinearView,
  type Matrix,
  type ModelView,
  type StepWarning,
} from '@bitsmith/core';
import { createRandom, resolveBackend, type Backend } from '@bitsmith/linalg';
import { applyHadamard } from './apply-hadamard.js';
import { cayleySgd, nearestOrthogonal } from './cayley-sgd.js';
import { requireHadamardFactorization } from './hadamard-orders.js';
import { randomSigns } from './random-hadamard.js';
import { orthogonalityError, planBlock, rotateModel } from './rotate-model.js';

/** Options of {@link learnRotation} and the `learned-rotation` step. */
export interface LearnRotationOptions {
  /** Seed of the starting Hadamard's random signs (as `rotation`'s `seed`) and of the batch and block draws. Default 0. */
  seed?: number;
  /** Cayley SGD steps. Default 100 (SpinQuant's). */
  iterations?: number;
  /**
   * Cayley SGD learning rate (the step is also bounded by Li et al.'s `2q / ||W||`). Default 60, chosen on the held-out
   * calibration loss of llama-docs-29m W4A4 among 1.5 (SpinQuant's, for its cross-entropy loss), 5, 20, 60 and 200.
   */
  learningRate?: number;
  /** Momentum of Cayley SGD. Default 0. */
  momentum?: number;
  /** Learning-rate schedule: `cosine` (default, SpinQuant's) or `constant`. */
  schedule?: 'constant' | 'cosine';
  /** Calibration sequences per step. Default 1. */
  batchSize?: number;
  /** Blocks per step, drawn at random without replacement (all blocks: the full loss). Default 2. */
  blocksPerIteration?: number;
  /**
   * Calibration sequences to train on (the first ones of the calibration set): the token budget. Default 8 (fewer
   * when the calibration set is smaller).
   */
  sequences?: number;
  /**
   * Calibration sequences held out (taken after the training ones) on which the loss of every block is measured at
   * the start, every `validateEvery` steps and at the end; the rotation with the lowest held-out loss is kept.
   * Default 2 (a fifth of a calibration set of fewer than 10); 0 keeps the last rotation.
   */
  validationSequences?: number;
  /** Steps between held-out evaluations. Default 25. */
  validateEvery?: number;
  /** Tokens of each sequence used (a prefix: causal attention makes it exact). Default 512. */
  maxLength?: number;
  /** Weight format of the round-to-nearest weights inside the loss. Default `int4`. */
  format?: FormatSpec | string;
  /** Their granularity. Default groups of 128 (per output channel when the input is not a multiple of 128). */
  granularity?: Granularity;
  /**
   * The input-activation quantization inside the loss (straight-through). Default: the recipe's `inputActivations`
   * (dynamic schemes as they are; static ones as their dynamic counterpart, with a warning); `false` for none.
   */
  activations?: ActivationScheme | false;
  /**
   * Pass the gradient through the absmax scales of the rounded weights and inputs, besides the straight-through
   * rounding (see {@link addAbsmaxScalePath}). Default true; false: straight-through only (the loss then barely moves).
   */
  scaleGradient?: boolean;
  /** Online Hadamard before every `down_proj` (`rotation`'s default true; emulated inside the loss). */
  onlineHadamard?: boolean;
  /** Per-head Hadamard fused into v_proj/o_proj (`rotation`'s default true). */
  valueHadamard?: boolean;
  /** Backend for the GEMMs. Default: `await defaultBackend()` from `@bitsmith/linalg`. */
  backend?: Backend;
  /** Cancellation, checked between steps. */
  signal?: AbortSignal;
  /** Progress: called after every step with the batch loss, and after each held-out evaluation. */
  progress?: (done: number, total: number, message?: string) => void;
}

/** What {@link learnRotation} did. */
export interface LearnRotationResult {
  readonly warnings: readonly StepWarning[];
  /** The JSON description of the fused rotation (as `rotateModel` gives it, plus the training record). */
  readonly description: Record<string, unknown>;
  /** Held-out loss (relative block-output error, mean over blocks) of the starting Hadamard, and of the kept rotation. */
  readonly validationLoss?: { readonly initial: number; readonly final: number; readonly history: readonly { iteration: number; loss: number }[] };
  /** Batch loss of every step (mean over the step's blocks). */
  readonly trainingLoss: readonly number[];
  /** The learned rotation `R` (`hidden x hidden`, `x ← x R`), as folded into the weights. */
  readonly rotation: Matrix;
}

const STEP = 'learned-rotation';
const DEFAULT_LEARNING_RATE = 60;

/** One linear of the residual stream, as the loss needs it: its (norm-folded) weight and how `R` enters it. */
export interface RotatedLinear {
  readonly name: string;
  /** `[rows, columns]` weight before the rotation (a reader's columns are the residual stream, a writer's rows). */
  readonly weight: Float32Array;
  readonly rows: number;
  readonly columns: number;
  /** A writer whose input gets the online Hadamard (down_proj). */
  readonly online: boolean;
}

/** One block of the learned rotation's loss: its block capability and the residual stream's linears ({@link rotationProblem}). */
export interface BlockProblem {
  readonly g: BlockGradients;
  readonly readers: readonly RotatedLinear[];
  readonly writers: readonly RotatedLinear[];
}

/**
 * Block `index` of `model` as {@link rotationBlockLoss} takes it: the block capability on `hidden` (its float
 * reference: the weights as they are now) and the residual stream's readers and writers from the mapping table. Fold
 * the norms first (`rotateModel` with the identity as rotation) for a loss that is 0 without quantization.
 *
 * @example
 * ```ts
 * const problem = rotationProblem(model, 0, await model.embed(sequences));
 * ```
 */
export function rotationProblem(model: DifferentiableModel, index: number, hidden: HiddenStatesHandle): BlockProblem {
  const plan = planBlock(model, index);
  const mlpOutputs = resolveBlockMapping(model.mapping!, model.blocks[index]!).mlpOutputs;
  const view = (l: LinearView, online: boolean): RotatedLinear => ({ name: l.name, weight: l.weight.data as Float32Array, rows: l.weight.shape[0], columns: l.weight.shape[1], online });
  return {
    // The reference arithmetic: the rotation's gain over the Hadamard is about 0.5%, measured with it (native
    // arithmetic moved the pooled result on llama-docs-29m to within the noise; docs/rotation.md).
    g: model.blockGradients(index, hidden, { arithmetic: 'reference' }),
    readers: plan.readers.flatMap((group) => group.linears.map((l) => view(l, false))),
    writers: plan.writers.map((l) => view(l, mlpOutputs.includes(l))),
  };
}

/** What the loss quantizes: weights (round-to-nearest) and the linears' inputs (straight-through). */
export interface RotationLossSettings {
  readonly hidden: number;
  readonly backend: Backend;
  /** Weight format and granularity of the round-to-nearest proxy; absent: float weights. */
  readonly weights?: { readonly format: FormatSpec; readonly granularity: Granularity };
  readonly activations?: ActivationScheme;
  /** Emulate the online Hadamard before down_proj (in its weight and before its input quantizer). */
  readonly onlineHadamard: boolean;
  /**
   * Pass the gradient through the absmax scales of the weights and inputs ({@link addAbsmaxScalePath}) besides the
   * straight-through rounding. Default true; false: rounding and scales both straight-through.
   */
  readonly scaleGradient?: boolean;
}

/** Columns per scale group of a weight granularity on a `columns`-wide matrix (groups that do not divide it: per channel). */
function weightGroupSize(granularity: Granularity, columns: number): number {
  return granularity.type === 'group' && columns % granularity.size === 0 ? granularity.size : columns;
}

/** Round-to-nearest copy of `w` (`rows x columns`); groups that do not divide the columns fall back to per channel. */
function fakeQuantizeWeight(w: Float32Array, rows: number, columns: number, settings: NonNullable<RotationLossSettings['weights']>): Float32Array {
  const size = weightGroupSize(settings.granularity, columns);
  const granularity: Granularity = size === columns ? { type: 'channel' } : { type: 'group', size };
  return dequantize(quantize(matrix<'float32'>(w, rows, columns), { format: settings.format, granularity })).data as Float32Array;
}

/**
 * Adds the gradient's path through absmax scales (`s = max_j |x_j| / q_max` per group of `groupSize` consecutive
 * values of each row, `x^ = s round(x / s)`): with the rounding straight-through, `dL/ds = sum_j g_j (x^_j - x_j) / s`
 * and `ds/dx_argmax = sign(x_argmax) / q_max`, so `g_argmax += sign(x_argmax) sum_j g_j (x^_j - x_j) / max_j |x_j|`
 * (LSQ, arXiv:1902.08153; SpinQuant's quantizers pass it too). This is how the loss sees that a rotation shrinks the
 * outliers that set the scales. In place on `grad`.
 *
 * @example
 * ```ts
 * addAbsmaxScalePath(x, fakeQuantized, gradient, tokens, hidden, hidden); // per-token scales
 * ```
 */
export function addAbsmaxScalePath(x: Float32Array, quantized: Float32Array, grad: Float32Array, rows: number, columns: number, groupSize: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * columns;
    for (let c0 = 0; c0 < columns; c0 += groupSize) {
      const end = Math.min(columns, c0 + groupSize);
      let arg = -1;
      let absmax = 0;
      let sum = 0;
      for (let j = o + c0; j < o + end; j++) {
        const v = x[j]!;
        const a = Math.abs(v);
        if (a > absmax) {
          absmax = a;
          arg = j;
        }
        sum += grad[j]! * (quantized[j]! - v);
      }
      if (arg >= 0) grad[arg]! += (Math.sign(x[arg]!) * sum) / absmax;
    }
  }
}

/** Whether a format's scale is its group's absmax over a fixed maximum (symmetric integers, minifloats). */
function hasAbsmaxScale(format: FormatSpec): boolean {
  return elementCodec(format).scaleRule === 'absmax';
}

/** A rotated weight before and after rounding, for the path through its scales. */
interface RoundedWeight {
  readonly pre: Float32Array;
  readonly post: Float32Array;
}

/**
 * The loss of one block at rotation `r` and, when `gradient` is given, `dLoss/dR` added into it (float64).
 *
 * With `X` the block's float input rows and `Y` its float output, the quantized block runs on `X R` with reader
 * weights `Q_w(F R)` (`F` the norm-folded weight), writer weights `Q_w(R^T W)` (down_proj: `Q_w(R^T W H) H^T` with
 * the online Hadamard, whose input quantizer is then `x ← Q_a(x H) H^T`) and inputs `Q_a(x)`; the loss is
 * `||O - Y R||^2 / ||Y - X||^2` (the block's output error relative to what its branches add). By the chain rule, with
 * the rounding straight-through: `dL/dR = X^T dX - Y^T dO + sum_readers F^T dP + sum_writers W dP^T`, where `dP` is
 * the gradient with respect to the rotated weight before rounding: the trial weight's gradient plus, with
 * `scaleGradient`, the path through its absmax scales ({@link addAbsmaxScalePath}); the inputs' scales pass it the
 * same way inside the block pass.
 *
 * @example
 * ```ts
 * const gradient = new Float64Array(hidden * hidden);
 * const loss = await rotationBlockLoss(rotationProblem(model, 0, hidden0), r, [0, 1], settings, gradient);
 * ```
 */
export async function rotationBlockLoss(
  problem: BlockProblem,
  r: Float32Array,
  batch: readonly number[],
  settings: RotationLossSettings,
  gradient?: Float64Array,
): Promise<number> {
  const { g } = problem;
  const n = settings.hidden;
  const backend = settings.backend;
  const x = g.input(batch);
  const tokens = x.shape[0];
  const xd = x.data as Float32Array;
  const y = (await g.target(batch)).data as Float32Array;
  const xr = new Float32Array(tokens * n);
  const yr = new Float32Array(tokens * n);
  await backend.sgemm({ m: tokens, n, k: n, a: xd, b: r, c: xr });
  await backend.sgemm({ m: tokens, n, k: n, a: y, b: r, c: yr });
  let energy = 0;
  for (let i = 0; i < tokens * n; i++) {
    const d = y[i]! - xd[i]!;
    energy += d * d;
  }
  if (!(energy > 0)) throw new InvalidArgumentError('calibration', 'a block adds nothing to its input on the calibration batch; its relative error is undefined');

  const weightSettings = settings.weights;
  const scalePath = (settings.scaleGradient ?? true) && gradient !== undefined;
  const weightScalePath = scalePath && weightSettings !== undefined && hasAbsmaxScale(weightSettings.format);
  const rounded = new Map<string, RoundedWeight>();
  const online = new Set(problem.writers.filter((l) => l.online && settings.onlineHadamard).map((l) => l.name));
  const trial = new Map<string, Float32Array>();
  for (const l of problem.readers) {
    const fr = new Float32Array(l.rows * n);
    await backend.sgemm({ m: l.rows, n, k: n, a: l.weight, b: r, c: fr });
    if (!weightSettings) trial.set(l.name, fr);
    else {
      const post = fakeQuantizeWeight(fr, l.rows, n, weightSettings);
      trial.set(l.name, post);
      if (weightScalePath) rounded.set(l.name, { pre: fr, post });
    }
  }
  for (const l of problem.writers) {
    const rw = new Float32Array(n * l.columns);
    await backend.sgemm({ m: n, n: l.columns, k: n, a: r, b: l.weight, c: rw, transA: true });
    if (!weightSettings) {
      trial.set(l.name, rw);
      continue;
    }
    if (online.has(l.name)) await applyHadamard(rw, n, l.columns, { backend });
    const post = fakeQuantizeWeight(rw, n, l.columns, weightSettings);
    if (weightScalePath) rounded.set(l.name, { pre: rw, post });
    if (online.has(l.name)) {
      const back = post.slice();
      await applyHadamard(back, n, l.columns, { backend, transpose: true });
      trial.set(l.name, back);
    } else trial.set(l.name, post);
  }
  const scheme = settings.activations;
  const activationGroup = (rows: number, columns: number): { rows: number; columns: number; size: number } | undefined => {
    if (!scheme || !hasAbsmaxScale(scheme.format)) return undefined;
    const gr = scheme.granularity;
    if (gr.type === 'token') return { rows, columns, size: columns };
    if (gr.type === 'group') return { rows, columns, size: gr.size };
    if (gr.type === 'tensor') return { rows: 1, columns: rows * columns, size: rows * columns };
    return undefined;
  };
  const quantizeInput: LinearInputQuantizer | undefined = scheme
    ? async (name, input, rows, columns) => {
        const rotated = online.has(name);
        if (rotated) await applyHadamard(input, rows, columns, { backend });
        const group = scalePath ? activationGroup(rows, columns) : undefined;
        const before = group ? input.slice(0, rows * columns) : undefined;
        fakeQuantizeActivations(input, rows, columns, scheme);
        const after = group ? input.slice(0, rows * columns) : undefined;
        if (rotated) await applyHadamard(input, rows, columns, { backend, transpose: true });
        if (!group) return undefined;
        // d/dx of Q(x H) H^T: H, then the scale path on x H, then H^T (without the online Hadamard: the path alone).
        return async (grad: Float32Array) => {
          if (rotated) await applyHadamard(grad, rows, columns, { backend });
          addAbsmaxScalePath(before!, after!, grad, group.rows, group.columns, group.size);
          if (rotated) await applyHadamard(grad, rows, columns, { backend, transpose: true });
        };
      }
    : undefined;

  const scale = 1 / energy;
  const overrides = { input: matrix<'float32'>(xr, tokens, n), ...(quantizeInput ? { quantizeInput } : {}) };
  if (!gradient) {
    // The loss alone: a forward pass.
    const o = (await g.forward(trial, batch, overrides)).data as Float32Array;
    let sum = 0;
    for (let i = 0; i < o.length; i++) {
      const e = o[i]! - yr[i]!;
      sum += e * e;
    }
    const loss = sum * scale;
    if (!Number.isFinite(loss)) throw new InvalidArgumentError('calibration', `the learned rotation's block loss became ${loss}`);
    return loss;
  }
  let loss = 0;
  const result = await g.backward(
    trial,
    batch,
    (output) => {
      const o = output.data as Float32Array;
      const d = new Float32Array(o.length);
      let sum = 0;
      for (let i = 0; i < o.length; i++) {
        const e = o[i]! - yr[i]!;
        sum += e * e;
        d[i] = 2 * e * scale;
      }
      loss = sum * scale;
      return d;
    },
    overrides,
  );
  if (!Number.isFinite(loss)) throw new InvalidArgumentError('calibration', `the learned rotation's block loss became ${loss}`);
  if (!result.inputGradient) throw new InvalidArgumentError('model', 'the block capability returned no input gradient; learned rotations need it');
  // dL/dR = X^T dX - Y^T dO + sum F^T dW (readers) + sum W dW^T (writers), each n x n, summed in float64.
  const term = new Float32Array(n * n);
  const add = (sign: number) => {
    for (let i = 0; i < n * n; i++) gradient[i] += sign * term[i]!;
  };
  await backend.sgemm({ m: n, n, k: tokens, a: xd, b: result.inputGradient.data as Float32Array, c: term, transA: true });
  add(1);
  const dOut = new Float32Array(tokens * n);
  const out = result.output.data as Float32Array;
  for (let i = 0; i < dOut.length; i++) dOut[i] = 2 * (out[i]! - yr[i]!) * scale;
  await backend.sgemm({ m: n, n, k: tokens, a: y, b: dOut, c: term, transA: true });
  add(-1);
  // The gradient with respect to the rotated weight before rounding (the trial weight's, plus its scales' path).
  const preGradient = async (l: RotatedLinear, rows: number, columns: number): Promise<Float32Array> => {
    const dw = result.weightGradients.get(l.name);
    if (!dw) throw new InvalidArgumentError('model', `the block returned no gradient for ${l.name}`);
    const isOnline = online.has(l.name) && weightSettings !== undefined;
    const rw = rounded.get(l.name);
    if (!rw && !isOnline) return dw;
    const d = dw.slice();
    if (isOnline) await applyHadamard(d, rows, columns, { backend }); // trial = Q(Z) H^T: dQ = dTrial H
    if (rw) addAbsmaxScalePath(rw.pre, rw.post, d, rows, columns, weightGroupSize(weightSettings!.granularity, columns));
    if (isOnline) await applyHadamard(d, rows, columns, { backend, transpose: true }); // Z = (R^T W) H
    return d;
  };
  for (const l of problem.readers) {
    await backend.sgemm({ m: n, n, k: l.rows, a: l.weight, b: await preGradient(l, l.rows, n), c: term, transA: true });
    add(1);
  }
  for (const l of problem.writers) {
    await backend.sgemm({ m: n, n, k: l.columns, a: l.weight, b: await preGradient(l, n, l.columns), c: term, transB: true });
    add(1);
  }
  return loss;
}

/** `diag(s) H / sqrt(n)` as a dense float64 matrix: the starting rotation, equal to `rotation`'s with the same seed. */
async function seededHadamard(n: number, seed: number, backend: Backend): Promise<Float64Array> {
  requireHadamardFactorization(n, 'hiddenSize');
  const signs = randomSigns(n, seed);
  const rows = new Float32Array(n * n);
  for (let i = 0; i < n; i++) rows[i * n + i] = signs[i]!;
  await applyHadamard(rows, n, n, { backend });
  return Float64Array.from(rows);
}

/** Seeded draws of `k` distinct indices of `[0, count)`. */
function drawer(seed: number): (count: number, k: number) => number[] {
  const random = createRandom(seed);
  return (count, k) => {
    const order = Array.from({ length: count }, (_, i) => i);
    for (let i = count - 1; i > 0; i--) {
      const j = Math.floor(random.uniform() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return order.slice(0, Math.min(k, count));
  };
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new InvalidArgumentError(name, `expected an integer >= ${min}, got ${value}`);
}

/**
 * A learned residual-stream rotation, SpinQuant-style (Liu et al., "SpinQuant: LLM quantization with learned
 * rotations", arXiv:2405.16406), folded into the weights exactly as {@link rotateModel} folds QuaRot's Hadamard, so
 * GPTQ and every exporter take the result unchanged. In place on `model`:
 * 1. folds the RMSNorm gains and the per-head value Hadamard (the float model is unchanged);
 * 2. captures every block's float input and output on the first `sequences + validationSequences` calibration
 *    sequences (prefixes of `maxLength` tokens);
 * 3. starts from `R0 = diag(s) H / sqrt(hidden)`, the seeded randomized Hadamard of `rotation` with the same `seed`,
 *    and takes `iterations` Cayley SGD steps on the Stiefel manifold (Li et al., arXiv:2002.01113; {@link cayleySgd})
 *    on the sum over `blocksPerIteration` random blocks of each block's relative output error with round-to-nearest
 *    weights (`format`, `granularity`) and quantized inputs (`activations`) in the rotated basis, both
 *    straight-through (see {@link rotationBlockLoss} for the loss and its gradient);
 * 4. keeps the rotation with the lowest loss on the held-out `validationSequences` (R0 included), projects it onto
 *    the orthogonal matrices (Newton-Schulz), and folds it (embedding, readers, writers, head) with the online
 *    Hadamard before down_proj as `rotation` adds it.
 *
 * The model's logits do not change (up to float32 rounding); what changes is how its weights and activations
 * quantize. Differences from SpinQuant: the loss is the block outputs' error (one block at a time, float inputs)
 * rather than the network's cross-entropy, and only the residual rotation `R1` is learned (the value rotation `R2`
 * stays the per-head Hadamard).
 *
 * @param model - A model with the block capability (`llamaQuantizableModel(graph)` from `@bitsmith/models`),
 *   RMSNorm and no run-time input transforms yet; modified.
 * @param calibration - Token sequences (each starting with BOS).
 * @param options - `seed` (0), `iterations` (100), `learningRate` (60), `momentum` (0), `schedule` ('cosine'),
 *   `batchSize` (1), `blocksPerIteration` (2), `sequences` (8, or what the calibration set has beside the held-out
 *   ones), `validationSequences` (2, or a fifth of a smaller calibration set), `validateEvery` (25),
 *   `maxLength` (512), `format` ('int4'), `granularity` (groups of 128), `activations` (none here; the step passes
 *   the recipe's), `scaleGradient` (true), `onlineHadamard` (true), `valueHadamard` (true), `backend`, `signal`,
 *   `progress`.
 * @throws `InvalidArgumentError` for models without the block capability, LayerNorm models, too few calibration
 *   sequences, or a hidden size without a Hadamard matrix; the block pass throws `UnsupportedFormatError` for
 *   blocks that do not compute as Llama's (checked on one token before any write).
 * @example
 * ```ts
 * const model = llamaQuantizableModel(await loadLlamaGraph('models/llama-docs-29m'));
 * const { validationLoss } = await learnRotation(model, sequences, { activations: { format: parseFormat('int4'), granularity: { type: 'token' }, dynamic: true } });
 * ```
 */
export async function learnRotation(model: ModelView, calibration: readonly ArrayLike<number>[], options: LearnRotationOptions = {}): Promise<LearnRotationResult> {
  if (!isDifferentiableModel(model as DifferentiableModel)) {
    throw new InvalidArgumentError('model', `${model.architecture} offers no block gradients (blockGradients/embed/runBlock); a learned rotation needs a differentiable model such as @bitsmith/models' llamaQuantizableModel`);
  }
  const dm = model as DifferentiableModel;
  const seed = options.seed ?? 0;
  checkCount('seed', seed, 0);
  const iterations = options.iterations ?? 100;
  checkCount('iterations', iterations, 0);
  const batchSize = options.batchSize ?? 1;
  checkCount('batchSize', batchSize, 1);
  const blocksPerIteration = Math.min(options.blocksPerIteration ?? 2, model.blocks.length);
  checkCount('blocksPerIteration', blocksPerIteration, 1);
  const available = calibration.length;
  const validationCount = options.validationSequences ?? Math.min(2, Math.floor(available / 5));
  checkCount('validationSequences', validationCount, 0);
  // Without an explicit budget, a short calibration set is used whole.
  const trainCount = options.sequences ?? Math.min(8, available - validationCount);
  checkCount('sequences', trainCount, 1);
  const validateEvery = options.validateEvery ?? 25;
  checkCount('validateEvery', validateEvery, 1);
  const maxLength = options.maxLength ?? 512;
  checkCount('maxLength', maxLength, 2);
  const onlineHadamard = options.onlineHadamard ?? true;
  const valueHadamard = options.valueHadamard ?? true;
  if (typeof onlineHadamard !== 'boolean') throw new InvalidArgumentError('onlineHadamard', `a learned rotation supports true (down_proj) or false, got ${String(onlineHadamard)}`);
  const format = typeof options.format === 'string' ? parseFormat(options.format) : (options.format ?? parseFormat('int4'));
  const granularity = options.granularity ?? { type: 'group', size: 128 };
  const warnings: StepWarning[] = [];
  let activations: ActivationScheme | undefined = options.activations === false ? undefined : options.activations;
  if (activations && !activations.dynamic) {
    warnings.push({ step: STEP, message: `the static ${activations.granularity.type} input scheme is optimised for as its dynamic counterpart (static scales are calibrated after the rotation)` });
    activations = { ...activations, dynamic: true };
  }
  const hidden = model.hiddenSize;
  if (available < trainCount + validationCount) {
    throw new InvalidArgumentError('calibration', `has ${available} sequences; the learned rotation trains on ${trainCount} and holds out ${validationCount} (options sequences, validationSequences)`);
  }
  // Checks before the first write: the head (the rotation folds into the embedding and the head), the mapping's
  // readers and writers, norms, Hadamard orders, no run-time transforms.
  requireLanguageModelHead(model, `${STEP} (a learned rotation of the residual stream)`);
  const mapping = model.mapping;
  if (!mapping) throw new InvalidArgumentError('model', `${model.architecture} has no architecture mapping table; rotations need one`);
  if (onlineHadamard) {
    for (const block of model.blocks) for (const l of resolveBlockMapping(mapping, block).mlpOutputs) requireHadamardFactorization(l.weight.shape[1], `${l.name} input features`);
  }
  for (let i = 0; i < model.blocks.length; i++) planBlock(model, i);
  requireHadamardFactorization(hidden, 'hiddenSize');
  for (const block of model.blocks) {
    for (const l of block.linears) {
      if (l.inputTransform) throw new InvalidArgumentError('model', `${l.name} already has a run-time input transform (${l.inputTransform.name}); run learned-rotation first, instead of another rotation`);
    }
  }
  const signal = options.signal;
  const throwIfAborted = (): void => {
    if (signal?.aborted) throw new AbortError(signal.reason instanceof Error ? signal.reason.message : `${STEP} aborted`);
  };
  const backend = await resolveBackend(options);
  // The block pass refuses non-Llama computation: try it on one token before changing anything.
  const probe = dm.blockGradients(0, await dm.embed([Array.from(calibration[0]!).slice(0, 1)]), { arithmetic: 'reference' });
  await probe.backward(new Map(), undefined, (o) => new Float32Array(o.data.length));

  // 1. Fold the norms (and the value Hadamard): the identity "rotation" leaves the residual stream as it is.
  const identity = new Float32Array(hidden * hidden);
  for (let i = 0; i < hidden; i++) identity[i * hidden + i] = 1;
  const fold = await rotateModel(model, { rotation: matrix<'float32'>(identity, hidden, hidden), onlineHadamard: false, valueHadamard, backend });
  warnings.push(...fold.warnings.map((w) => ({ ...w, step: STEP })));
  throwIfAborted();

  // 2. Every block's float input (and, lazily, output) on the training and held-out sequences.
  const used = calibration.slice(0, trainCount + validationCount).map((s) => Array.from(s).slice(0, maxLength));
  const problems: BlockProblem[] = [];
  // Core's calibration driver walks the float blocks; the last block's output is no block's input, so the walk stops
  // before computing it.
  for await (const step of calibrationBlocks(dm, used, { propagate: 'captured' })) {
    throwIfAborted();
    problems.push(rotationProblem(dm, step.block.index, step.input));
    if (step.block.index + 1 === model.blocks.length) break;
  }
  const train = Array.from({ length: trainCount }, (_, i) => i);
  const held = Array.from({ length: validationCount }, (_, i) => trainCount + i);
  const settings: RotationLossSettings = {
    hidden,
    backend,
    weights: { format, granularity },
    ...(activations ? { activations } : {}),
    onlineHadamard,
    scaleGradient: options.scaleGradient ?? true,
  };

  // 3. Cayley SGD from the seeded Hadamard.
  const r = await seededHadamard(hidden, seed, backend);
  const rf = new Float32Array(hidden * hidden);
  const heldOutLoss = async (): Promise<number> => {
    rf.set(r);
    let sum = 0;
    for (const p of problems) sum += await rotationBlockLoss(p, rf, held, settings);
    return sum / problems.length;
  };
  const history: { iteration: number; loss: number }[] = [];
  let best: Float64Array = r.slice();
  let bestLoss = Infinity;
  const validate = async (iteration: number) => {
    if (held.length === 0) return;
    const loss = await heldOutLoss();
    history.push({ iteration, loss });
    if (loss < bestLoss) {
      bestLoss = loss;
      best = r.slice();
    }
    options.progress?.(iteration, iterations, `held-out loss ${loss.toExponential(4)} (start ${history[0]!.loss.toExponential(4)})`);
  };
  await validate(0);
  const optimizer = cayleySgd({
    rows: hidden,
    learningRate: options.learningRate ?? DEFAULT_LEARNING_RATE,
    momentum: options.momentum ?? 0,
    schedule: options.schedule ?? 'cosine',
    iterations: Math.max(1, iterations),
    backend,
  });
  const draw = drawer(seed);
  const trainingLoss: number[] = [];
  const gradient = new Float64Array(hidden * hidden);
  for (let it = 0; it < iterations; it++) {
    throwIfAborted();
    const batch = draw(train.length, batchSize).map((i) => train[i]!);
    const blocks = draw(problems.length, blocksPerIteration);
    rf.set(r);
    gradient.fill(0);
    let loss = 0;
    for (const b of blocks) loss += await rotationBlockLoss(problems[b]!, rf, batch, settings, gradient);
    loss /= blocks.length;
    for (let i = 0; i < gradient.length; i++) gradient[i]! /= blocks.length;
    trainingLoss.push(loss);
    await optimizer.step(r, gradient);
    options.progress?.(it + 1, iterations, `batch loss ${loss.toExponential(4)} (blocks ${blocks.join(', ')})`);
    if ((it + 1) % validateEvery === 0 || it + 1 === iterations) await validate(it + 1);
  }
  if (held.length === 0) best = r;
  const drift = orthogonalityError(best, hidden);
  await nearestOrthogonal(best, hidden, hidden, backend);
  const rotation = matrix<'float32'>(Float32Array.from(best), hidden, hidden);

  // 4. Fold R like rotation's Hadamard (norm gains are 1 now), with the online Hadamard.
  throwIfAborted();
  const folded = await rotateModel(model, { rotation, onlineHadamard, valueHadamard: false, backend });
  warnings.push(...folded.warnings.map((w) => ({ ...w, step: STEP })));
  const kept = history.length > 0 ? history.reduce((a, b) => (b.loss < a.loss ? b : a)) : undefined;
  const description: Record<string, unknown> = {
    ...folded.description,
    rotation: 'learned',
    start: { rotation: 'hadamard', seed },
    valueHadamard: fold.description.valueHadamard,
    training: {
      optimizer: 'cayley-sgd',
      iterations,
      learningRate: options.learningRate ?? DEFAULT_LEARNING_RATE,
      momentum: options.momentum ?? 0,
      batchSize,
      blocksPerIteration,
      sequences: trainCount,
      validationSequences: validationCount,
      maxLength,
      weights: { format, granularity },
      activations: activations ?? 'none',
      scaleGradient: options.scaleGradient ?? true,
      ...(kept ? { keptIteration: kept.iteration } : {}),
      orthogonalityBeforeProjection: drift,
    },
  };
  return {
    warnings,
    description,
    ...(history.length > 0 ? { validationLoss: { initial: history[0]!.loss, final: bestLoss, history } } : {}),
    trainingLoss,
    rotation,
  };
}
