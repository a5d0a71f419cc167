import {
  AbortError,
  assertFinite,
  InvalidArgumentError,
  StoredFormMismatchError,
  ModelEditError,
  UnsupportedSpecificationVersionError,
  STEP_SPECIFICATION_VERSION,
  applyModelEdits,
  changedTensor,
  resolveLayerScheme,
  viewFingerprint,
  type BlockView,
  type LayerScheme,
  type ModelEdit,
  type ModelView,
  describeStored,
  decodeStored,
  isDifferentiableModel,
  storedBitsPerWeight,
  storedFormMismatch,
  type BlockGradients,
  type StoredForm,
  type LayerAssignment,
  type LayerState,
  type LinearView,
  type Matrix,
  type QuantizableModel,
  type QuantizedTensor,
  type Quantizer,
  type StatisticRequest,
  type StepKind,
  type StepWarning,
  validateActivationScheme,
  heldMatrixAccess,
  calibrationBlocks,
  givenStatistics,
  type StatisticsCollector,
} from '@bitsmith/core';
import { defaultBackend, type Backend } from '@bitsmith/linalg';
import type { LayerReport, Recipe, RecipeProgressEvent, RecipeReport, RecipeStage, StepReport } from './recipe-types.js';
import { checkRecipeSelection, finiteInputs, scaleRangeWarning } from './recipe-checks.js';
import { installInputActivationQuantizers, installKvCacheQuantizers, resolveKvCacheScheme } from './activation-calibration.js';
import { checkSelectors, isSelected } from './selector.js';
import { BlockEta } from './block-eta.js';
import { CheckpointMismatchError, fingerprintDifferences, sequencesDigest, type RunCheckpointOptions, type RunCheckpointStore } from './run-checkpoint.js';
import { CheckpointFileError } from './checkpoint-encoding.js';

/** Options of {@link runRecipe}. */
export interface RunRecipeOptions {
  /** Backend for statistics (Hessians). Default: `defaultBackend()`. */
  backend?: Backend;
  /** Cancels between layers and blocks with core's `AbortError`. */
  signal?: AbortSignal;
  /** Progress events. */
  onProgress?: (event: RecipeProgressEvent) => void;
  /**
   * @deprecated Use `onStored`. Receives each layer's final stored form when it is a plain `grid` (codes, scales, zero
   * points, permutation), once per layer when its block is done; other kinds are not reported here.
   */
  onQuantized?: (layer: string, quantized: QuantizedTensor) => void;
  /**
   * Receives each quantized layer's final stored form (grid, LUT, codebook, low-rank, sparse outliers), once per
   * layer when its block is done. `decodeStored(stored)` is the layer's final weight (the runner checked it after
   * every step). Exporters take these and refuse the kinds they cannot write.
   */
  onStored?: (layer: string, stored: StoredForm) => void;
  /**
   * Write a checkpoint after every finished block (its weights, norms and stored forms; the propagated calibration
   * activations; the report so far) and, with `resume`, continue from the last one: the result is bit-identical to
   * an uninterrupted run when the steps are deterministic. Model-level steps (rotations) run again on resume (they
   * are seeded). Not with `inputActivations` or `kvCache` (their run-time quantizers are not plain data); a per-layer
   * step that installs a run-time input transform stops checkpointing with a warning.
   */
  checkpoint?: RunCheckpointOptions;
}

/** Version of the checkpoint layout written by {@link runRecipe}. */
const CHECKPOINT_VERSION = 2;

/** One finished block in a checkpoint: the state steps may have changed, and its layers' report records. */
interface BlockCheckpoint {
  readonly index: number;
  /** `weight` is left out where the layer's stored form (in `layers`) decodes to exactly its bits. */
  readonly linears: readonly { name: string; weight?: Matrix; shape: readonly number[]; bias?: Float32Array }[];
  readonly norms: readonly { name: string; weight: Float32Array; bias?: Float32Array }[];
  readonly layers: readonly {
    name: string;
    steps: string[];
    seconds: number;
    bitsPerWeight?: number;
    outputError?: number;
    storedKind?: string;
    stored?: StoredForm;
  }[];
}

/** The head of a checkpoint: which blocks are finished and what the next one needs. */
interface HeadCheckpoint {
  readonly version: number;
  readonly fingerprint: Record<string, string>;
  readonly nextBlock: number;
  readonly totalBlocks: number;
  readonly elapsedSeconds: number;
  readonly hidden: unknown;
  readonly floatHidden?: unknown;
  readonly steps: readonly { key: string; id: string; kind: StepKind; seconds: number; warnings: StepWarning[] }[];
  readonly caller?: unknown;
}

const KIND_ORDER: Record<StepKind, number> = { transform: 0, allocate: 1, quantize: 2, compensate: 3 };

/** Turns an array of quantizers into a recipe. */
export function toRecipe(recipe: Recipe | readonly Quantizer[]): Recipe {
  if (Array.isArray(recipe)) return { stages: (recipe as readonly Quantizer[]).map((step) => ({ step })) };
  return recipe as Recipe;
}

function validate(recipe: Recipe, checkpoint: RunCheckpointOptions | undefined): void {
  if (checkpoint && (recipe.inputActivations || recipe.kvCache)) {
    throw new InvalidArgumentError('checkpoint', `checkpoints cannot hold the run-time ${recipe.inputActivations ? 'input-activation' : 'key/value-cache'} quantizers of this recipe yet; run it without checkpointing (--no-checkpoint)`);
  }
  if (recipe.stages.length === 0 && !recipe.inputActivations && !recipe.kvCache) {
    throw new InvalidArgumentError('recipe.stages', 'a recipe needs at least one step (or inputActivations / kvCache alone)');
  }
  let sawLayerStep = false;
  recipe.stages.forEach((stage, i) => {
    if (!stage.step || typeof stage.step.run !== 'function') throw new InvalidArgumentError(`recipe.stages[${i}].step`, 'expected a Quantizer (an object with id, kind, requires and run)');
    for (const step of [stage.step, ...(stage.overrides ?? []).map((o) => o.step)]) checkSpecificationVersion(step);
    checkSelectors([...(stage.targets ?? []), ...(stage.ignore ?? []), ...(stage.overrides ?? []).flatMap((o) => o.targets)]);
    if ((stage.step.scope ?? 'layer') === 'model') {
      if (sawLayerStep) throw new InvalidArgumentError(`recipe.stages[${i}]`, `model-level step '${stage.step.id}' must come before every per-layer step (it runs once before calibration)`);
    } else sawLayerStep = true;
  });
  checkSelectors([...(recipe.targets ?? []), ...(recipe.ignore ?? [])]);
  if (recipe.inputActivations) validateActivationScheme(recipe.inputActivations);
}

/**
 * Refuses a step that wrote through the views it was handed (the first tensor replaced or written in place since
 * `before`), checks all its edits (targets, shapes; none may set the weight or bias of one of the step's own layers,
 * which travel in its layer states), then applies them once.
 */
function applyStepEdits(view: ModelView | BlockView, before: ReturnType<typeof viewFingerprint>, edits: readonly ModelEdit[], step: string, layers: ReadonlySet<string>): void {
  const written = changedTensor(before, viewFingerprint(view));
  if (written) {
    throw new ModelEditError(step, written.tensor, `${written.how} through the model's views during the step; a step returns new layer states and model edits (StepResult.edits) instead (step contract v2)`);
  }
  for (const edit of edits) {
    if ((edit.kind === 'set-weight' || edit.kind === 'set-bias') && layers.has(edit.target)) {
      throw new ModelEditError(step, `${edit.target}.${edit.kind === 'set-weight' ? 'weight' : 'bias'}`, 'is a layer the step returns: its weight and bias travel in its layer state, not in a model edit');
    }
  }
  applyModelEdits(view, edits, step, { checkOnly: true });
  applyModelEdits(view, edits, step);
}

/** The step of the recipe's first quantize stage that selects `name` (its first matching override's step, if any). */
function quantizeStepOf(stages: readonly RecipeStage[], recipe: Recipe, name: string): Quantizer | undefined {
  for (const stage of stages) {
    if (stage.step.kind !== 'quantize') continue;
    if (!isSelected(name, stage.targets ?? recipe.targets, stage.ignore ?? recipe.ignore)) continue;
    return stage.overrides?.find((o) => isSelected(name, o.targets, undefined))?.step ?? stage.step;
  }
  return undefined;
}

/** Refuses a step written against another version of the step contract (before any work). */
function checkSpecificationVersion(step: Quantizer): void {
  const version: unknown = (step as { specificationVersion?: unknown }).specificationVersion;
  if (version !== STEP_SPECIFICATION_VERSION) throw new UnsupportedSpecificationVersionError(step.id, version === undefined ? 'none' : String(version), STEP_SPECIFICATION_VERSION);
}

async function outputErrorTerms(x: Matrix, reference: Matrix, approximation: Matrix, backend: Backend): Promise<{ num: number; den: number }> {
  // ||X (W - Q)^T||_F^2 and ||X W^T||_F^2 through two GEMMs on the backend (the difference W - Q is formed first, so
  // the numerator does not suffer the cancellation of subtracting two large products).
  const [tokens, columns] = x.shape;
  const [outFeatures] = reference.shape;
  // A held reference (a checkpoint's bytes) is decoded for this product without keeping its float32 copy.
  const w = (heldMatrixAccess(reference)?.peek() ?? reference.data) as Float32Array;
  const q = approximation.data as Float32Array;
  const d = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) d[i] = w[i]! - q[i]!;
  const xs = (x.data as Float32Array).subarray(0, tokens * columns);
  const y = new Float32Array(tokens * outFeatures);
  const e = new Float32Array(tokens * outFeatures);
  await backend.sgemm({ m: tokens, n: outFeatures, k: columns, a: xs, b: w, c: y, transB: true });
  await backend.sgemm({ m: tokens, n: outFeatures, k: columns, a: xs, b: d, c: e, transB: true });
  let num = 0;
  let den = 0;
  for (let i = 0; i < y.length; i++) {
    num += e[i]! * e[i]!;
    den += y[i]! * y[i]!;
  }
  return { num, den };
}

/** Rows of each layer's propagated input on which the report's output error is measured. */
const OUTPUT_ERROR_ROWS = 2048;

interface LayerTrack {
  view: LinearView;
  assignment?: LayerAssignment;
  block: number;
  floatWeight?: Matrix;
  bitsPerWeight?: number;
  steps: string[];
  seconds: number;
  outputError?: number;
  stored?: StoredForm;
  storedKind?: string;
}

/**
 * Runs a recipe on a model, DESIGN.md's data flow: model-level steps (rotations) once; then block by block —
 * for each step in kind order (transform, allocate, quantize, compensate; recipe order within a kind) the block is
 * run on its calibration input to observe what the step `requires`, the step runs on its selected layers (with
 * `context.scheme(layer)` resolved once per layer), and its model edits are applied once and its layer states written
 * into the model (step contract v2: a step of another `specificationVersion` is refused before any work, a step that
 * writes through the views with `ModelEditError`); finally the block's output is recomputed with the new weights and
 * becomes the next block's input. Memory holds one block's activations plus the model.
 *
 * Progress events carry the elapsed time and an ETA for the run and the block in hand (mean time of the blocks
 * finished so far). With `checkpoint`, every finished block is written to a {@link RunCheckpointStore} (weights,
 * norms, stored forms, the propagated activations, the report so far) and `resume: true` continues from the last one,
 * bit-identical to an uninterrupted run; a checkpoint made from other inputs is refused ({@link CheckpointMismatchError}).
 *
 * @param calibration Token sequences (each starting with BOS).
 * @example
 * ```ts
 * const report = await runRecipe(model, [gptq({ format: 'int4', granularity: { type: 'group', size: 128 } })], sequences, {
 *   onProgress: (e) => e.type === 'block-done' && console.log(`block ${e.block + 1}/${e.totalBlocks}, ETA ${formatDuration(e.etaSeconds)}`),
 *   checkpoint: { store: directoryCheckpointStore('.out.checkpoint'), fingerprint: { model: 'sha256:...', recipe: 'sha256:...' }, resume: true },
 * });
 * ```
 */
export async function runRecipe(
  model: QuantizableModel,
  recipeIn: Recipe | readonly Quantizer[],
  calibration: readonly ArrayLike<number>[],
  options: RunRecipeOptions = {},
): Promise<RecipeReport> {
  let started = performance.now();
  const recipe = toRecipe(recipeIn);
  const checkpoint = options.checkpoint;
  validate(recipe, checkpoint);
  if (calibration.length === 0) throw new InvalidArgumentError('calibration', 'needs at least one token sequence');
  checkRecipeSelection(recipe, model.blocks.flatMap((b) => b.linears.map((l) => l.name)));
  if (recipe.kvCache) {
    // Check the cache scheme against the attention geometry before any work.
    const geometry = model.blocks[0]?.attention;
    if (!geometry) throw new InvalidArgumentError('kvCache', `this ${model.architecture} model has no attention key/value cache to quantize`);
    resolveKvCacheScheme(recipe.kvCache, geometry.headDim);
  }
  const backend = options.backend ?? (await defaultBackend());
  const { signal, onProgress } = options;
  const check = () => {
    if (signal?.aborted) throw new AbortError();
  };
  const stepReports = new Map<RecipeStage | Quantizer, { id: string; kind: StepKind; seconds: number; warnings: StepWarning[] }>();
  const stepReport = (key: RecipeStage | Quantizer, step: Quantizer) => {
    let r = stepReports.get(key);
    if (!r) stepReports.set(key, (r = { id: step.id, kind: step.kind, seconds: 0, warnings: [] }));
    return r;
  };

  // 1. Model-level steps, before calibration.
  const modelStages = recipe.stages.filter((s) => (s.step.scope ?? 'layer') === 'model');
  for (const [index, stage] of modelStages.entries()) {
    check();
    onProgress?.({ type: 'model-step', step: stage.step.id, index, total: modelStages.length });
    const t0 = performance.now();
    const before = viewFingerprint(model);
    const result = await stage.step.run({
      layers: [],
      statistics: (name) => {
        throw new InvalidArgumentError('statistics', `model-level step '${stage.step.id}' asked for statistics of '${name}'; none are gathered before calibration`);
      },
      model,
      calibration,
      ...(recipe.inputActivations ? { inputActivations: recipe.inputActivations } : {}),
      ...(signal ? { signal } : {}),
      ...(onProgress
        ? {
            progress: (done: number, total: number, message?: string) => {
              const seconds = (performance.now() - t0) / 1000;
              const etaSeconds = done > 0 && total >= done ? (seconds * (total - done)) / done : undefined;
              onProgress({ type: 'model-step-progress', step: stage.step.id, done, total, ...(message ? { message } : {}), elapsedSeconds: seconds, ...(etaSeconds !== undefined ? { etaSeconds } : {}) });
            },
          }
        : {}),
    });
    applyStepEdits(model, before, result.edits ?? [], stage.step.id, new Set());
    const r = stepReport(stage, stage.step);
    r.seconds += (performance.now() - t0) / 1000;
    r.warnings.push(...result.warnings);
  }

  // 2. Block by block.
  const layerStages = recipe.stages
    .map((stage, order) => ({ stage, order }))
    .filter(({ stage }) => (stage.step.scope ?? 'layer') === 'layer')
    .sort((a, b) => KIND_ORDER[a.stage.step.kind] - KIND_ORDER[b.stage.step.kind] || a.order - b.order)
    .map(({ stage }) => stage);
  const tracks = new Map<string, LayerTrack>();
  // Steps that calibrate asymmetrically (GPTAQ) need each layer's input in the float model too: carry the float
  // model's activations beside the quantized ones, one more block pass per block.
  const wantsFloat = (q: Quantizer) => q.requires.some((r) => r.kind === 'float-input-cross');
  const needsFloatStream = layerStages.some((s) => wantsFloat(s.step) || (s.overrides ?? []).some((o) => wantsFloat(o.step)));
  const totalBlocks = model.blocks.length;
  // Checkpoints: the fingerprint of this run, and where a resumed run starts.
  const stepKeys = stepKeyTable(recipe);
  const fingerprint: Record<string, string> = checkpoint
    ? {
        ...checkpoint.fingerprint,
        calibration: sequencesDigest(calibration),
        structure: JSON.stringify({ architecture: model.architecture, blocks: totalBlocks, hidden: model.hiddenSize, linears: model.blocks.map((b) => b.linears.length) }),
        steps: [...stepKeys.keys()].join(','),
      }
    : {};
  let checkpointing = checkpoint !== undefined;
  let startBlock = 0;
  let hidden: unknown;
  let floatHidden: unknown;
  const head = checkpoint?.resume ? ((await checkpoint.store.read('head')) as HeadCheckpoint | undefined) : undefined;
  if (head) {
    if (head.version !== CHECKPOINT_VERSION) throw new CheckpointFileError(checkpoint!.store.location, `was written by checkpoint layout ${head.version}; this version reads layout ${CHECKPOINT_VERSION}. Run without --resume to start over`);
    const differences = fingerprintDifferences(head.fingerprint, fingerprint);
    if (differences.length > 0) throw new CheckpointMismatchError(checkpoint!.store.location, differences);
    for (let index = 0; index < head.nextBlock; index++) {
      check();
      const part = (await checkpoint!.store.read(`block-${index}`)) as BlockCheckpoint | undefined;
      if (!part || part.index !== index) throw new CheckpointFileError(checkpoint!.store.location, `block ${index} is missing though the checkpoint's head says ${head.nextBlock} blocks are finished`);
      restoreBlock(model.blocks[index]!, part, tracks, options);
      model.releaseBlock?.(index, new Map(part.layers.flatMap((l) => (l.stored ? [[l.name, l.stored] as const] : []))));
    }
    for (const s of head.steps) {
      const key = stepKeys.get(s.key);
      if (key) stepReports.set(key, { id: s.id, kind: s.kind, seconds: s.seconds, warnings: [...s.warnings] });
    }
    if (head.caller !== undefined) checkpoint!.restore?.(head.caller);
    startBlock = head.nextBlock;
    hidden = head.hidden;
    floatHidden = head.floatHidden;
    started -= head.elapsedSeconds * 1000;
    onProgress?.({ type: 'resumed', nextBlock: startBlock, totalBlocks, elapsedSeconds: head.elapsedSeconds });
  } else if (checkpoint) await checkpoint.store.clear();
  const elapsed = () => (performance.now() - started) / 1000;
  const eta = new BlockEta(totalBlocks);
  // Core's calibration driver walks the blocks: it embeds the sequences (or starts after the checkpoint's blocks),
  // hands out each block's input and runs the statistics passes; the runner hands it each block's output, computed
  // while it measures the output errors.
  const walk = calibrationBlocks(model, calibration, { kernels: backend, ...(head ? { start: { block: startBlock, input: hidden } } : {}), ...(signal ? { signal } : {}) });
  for await (const calibrationBlock of walk) {
    const block = calibrationBlock.block;
    check();
    const blockStart = performance.now();
    const inBlock = () => (performance.now() - blockStart) / 1000;
    const runEta = eta.remaining(block.index);
    onProgress?.({ type: 'block-start', block: block.index, totalBlocks, elapsedSeconds: elapsed(), ...(runEta !== undefined ? { etaSeconds: runEta } : {}) });
    for (const view of block.linears) if (!tracks.has(view.name)) tracks.set(view.name, { view, block: block.index, steps: [], seconds: 0 });
    // What a checkpoint cannot hold (run-time input transforms, cache quantizers) must not change in this block.
    const runtimeBefore = runtimeState(block);
    const blockInput = calibrationBlock.input;
    // The float model's stream (GPTAQ) starts at the embedded sequences.
    if (needsFloatStream && floatHidden === undefined) floatHidden = blockInput;
    // The block as a differentiable function of its weights, created before its first quantize step (so its float
    // reference is the block as the transforms left it) and handed to quantize and compensate steps.
    let blockGradients: BlockGradients | undefined;
    // The float model's inputs of this block's linears (chunk by chunk, as runBlock delivers them) and its output.
    let floatInputs: Map<string, Float32Array[]> | undefined;
    let floatNext: typeof hidden | undefined;
    const captureFloatInputs = async () => {
      const captured = new Map<string, Float32Array[]>();
      let lastBuffer: Float32Array | undefined;
      let lastCopy: Float32Array | undefined;
      const output = await model.runBlock(block.index, floatHidden!, async (name, input) => {
        const n = input.shape[0] * input.shape[1];
        // q/k/v (gate/up) read one buffer: keep one copy for all of them.
        const copy = input.data === lastBuffer && lastCopy ? lastCopy : input.data.slice(0, n);
        lastBuffer = input.data;
        lastCopy = copy;
        if (!captured.has(name)) captured.set(name, []);
        captured.get(name)!.push(copy);
      });
      return { captured, output };
    };
    if (needsFloatStream) {
      const first = await captureFloatInputs();
      floatInputs = first.captured;
      floatNext = first.output;
    }
    for (const stage of layerStages) {
      const targets = stage.targets ?? recipe.targets;
      const ignore = stage.ignore ?? recipe.ignore;
      const selected = block.linears.filter((l) => isSelected(l.name, targets, ignore));
      if (selected.length === 0) continue;
      // Split the selection between the stage's step and its overrides (first matching override wins).
      const groups = new Map<Quantizer, LinearView[]>();
      for (const view of selected) {
        const override = stage.overrides?.find((o) => isSelected(view.name, o.targets, undefined));
        const step = override?.step ?? stage.step;
        if (!groups.has(step)) groups.set(step, []);
        groups.get(step)!.push(view);
      }
      for (const [step, views] of groups) {
        check();
        const requests: readonly StatisticRequest[] = step.requires;
        let collector: Pick<StatisticsCollector, 'statistics' | 'release'> | undefined;
        // A model that computes Hessians itself (on the GPU) gives them for steps that need nothing else.
        const given =
          requests.length > 0 && model.blockHessians && requests.every((r) => r.kind === 'hessian')
            ? await model.blockHessians(block.index, blockInput, new Set(views.map((v) => v.name)), {
                resident: requests.every((r) => r.kind === 'hessian' && r.resident === true),
              })
            : undefined;
        if (given) {
          collector = givenStatistics(given);
        } else if (requests.length > 0) {
          if (requests.some((r) => r.kind === 'float-input-cross') && !floatInputs) {
            // A transform step changed this block's weights since the float inputs were captured: capture them again
            // (transforms keep the float function, so the float output stays as it was).
            floatInputs = (await captureFloatInputs()).captured;
          }
          // One statistics pass through core's calibration driver: Hessians shared by the block's declared input groups.
          collector = await calibrationBlock.collect(requests, new Set(views.map((v) => v.name)), {
            ...(floatInputs ? { floatInputs } : {}),
            wrap: (observe) => finiteInputs(block.index, observe),
            // The propagation computes the block's output again with the new weights: this pass's is not read.
            runOptions: { discardOutput: true },
          });
        }
        if (step.kind === 'quantize') for (const v of views) tracks.get(v.name)!.floatWeight ??= v.weight;
        if ((step.kind === 'quantize' || step.kind === 'compensate') && !blockGradients && isDifferentiableModel(model)) {
          blockGradients = model.blockGradients(block.index, blockInput);
        }
        const layers: LayerState[] = views.map((v) => {
          const { assignment, floatWeight, bitsPerWeight, stored } = tracks.get(v.name)!;
          // Compensate steps also get the float weight that entered the first quantize step (LayerState.reference)
          // and the bits per weight reported so far, to which they add their factors' bits.
          const compensate = step.kind === 'compensate';
          const reference = compensate ? floatWeight : undefined;
          return {
            name: v.name,
            weight: v.weight,
            ...(v.bias ? { bias: v.bias } : {}),
            ...(assignment ? { assignment } : {}),
            ...(reference ? { reference } : {}),
            ...(stored ? { stored } : {}),
            ...(compensate && bitsPerWeight !== undefined ? { bitsPerWeight } : {}),
          };
        });
        // Each layer's weight scheme, resolved once for this step (context.scheme): a quantize step's own scheme, or for
        // other steps the scheme of the recipe's quantize step for the layer; the layer's bit-plan assignment applied.
        const schemes = new Map<string, LayerScheme | undefined>();
        const schemeOf = (name: string): LayerScheme | undefined => {
          if (!schemes.has(name)) {
            const owner = step.kind === 'quantize' ? step : quantizeStepOf(layerStages, recipe, name);
            schemes.set(name, owner?.scheme ? resolveLayerScheme(owner.scheme, tracks.get(name)?.assignment) : undefined);
          }
          return schemes.get(name);
        };
        for (const v of views) schemeOf(v.name);
        const t0 = performance.now();
        const before = viewFingerprint(block);
        const result = await step.run({
          layers,
          statistics: (name) => {
            if (!collector) throw new InvalidArgumentError('statistics', `step '${step.id}' did not declare any statistic in 'requires'`);
            return collector.statistics(name);
          },
          releaseStatistics: (name) => collector?.release(name),
          scheme: schemeOf,
          block,
          ...(blockGradients && step.kind !== 'transform' && step.kind !== 'allocate' ? { blockGradients } : {}),
          ...(signal ? { signal } : {}),
          progress: (done, total, message) => {
            if (!onProgress) return;
            const t = inBlock();
            const runLeft = eta.remaining(block.index, t);
            const blockLeft = eta.blockRemaining(t);
            onProgress({
              type: 'step',
              block: block.index,
              totalBlocks,
              step: step.id,
              done,
              total,
              ...(message ? { layer: message } : {}),
              elapsedSeconds: elapsed(),
              ...(runLeft !== undefined ? { etaSeconds: runLeft } : {}),
              ...(blockLeft !== undefined ? { blockEtaSeconds: blockLeft } : {}),
            });
          },
        });
        const seconds = (performance.now() - t0) / 1000;
        const r = stepReport(step === stage.step ? stage : step, step);
        r.seconds += seconds;
        r.warnings.push(...result.warnings);
        if (result.layers.length !== views.length) {
          throw new InvalidArgumentError('step result', `step '${step.id}' returned ${result.layers.length} layers for ${views.length} given`);
        }
        // Step contract v2: nothing was written through the views; the step's edits are applied here, once.
        const edits = result.edits ?? [];
        applyStepEdits(block, before, edits, step.id, new Set(views.map((v) => v.name)));
        if (step.kind === 'transform' && edits.length > 0) floatInputs = undefined;
        result.layers.forEach((state, i) => {
          const view = views[i]!;
          const track = tracks.get(view.name)!;
          if (state.name !== view.name) throw new InvalidArgumentError('step result', `step '${step.id}' returned layer '${state.name}' where '${view.name}' was expected`);
          if (state.weight.shape[0] !== view.weight.shape[0] || state.weight.shape[1] !== view.weight.shape[1]) {
            throw new InvalidArgumentError('step result', `step '${step.id}' changed the shape of '${view.name}'`);
          }
          assertFinite(state.weight.data, { what: `the weight of ${view.name}`, shape: state.weight.shape, layer: view.name, step: step.id });
          // The stored form must decode to the weight the step returned (DESIGN.md: every exporter writes the stored
          // form, every evaluation runs the weight; they must be the same layer).
          const stored: StoredForm | undefined = state.stored ?? (state.quantized ? { kind: 'grid', tensor: state.quantized } : undefined);
          if (stored) {
            const mismatch = storedFormMismatch(stored, state.weight);
            if (mismatch) throw new StoredFormMismatchError(step.id, view.name, `the stored form (${describeStored(stored)}) does not decode to the returned weight: ${mismatch}`);
          } else if ((step.kind === 'quantize' || step.kind === 'compensate') && state.weight !== layers[i]!.weight) {
            throw new StoredFormMismatchError(step.id, view.name, `a ${step.kind} step changed the weight but returned no stored form (LayerState.stored)`);
          }
          // A quantize step that also moved the layer to another float basis (an equivalent transform folded into a
          // norm or a producing linear, StepResult.edits) names the float weight it approximates in `reference`.
          const floatReference = step.kind === 'quantize' ? state.reference : undefined;
          const damaged = step.kind === 'quantize' ? scaleRangeWarning(step.id, floatReference ?? view.weight, state) : undefined;
          if (damaged) r.warnings.push(damaged);
          if (step.kind === 'transform' && state.weight !== view.weight) floatInputs = undefined;
          view.weight = state.weight;
          // The float weight that entered quantization is kept for the output error (and compensate steps' reference);
          // a held one (a checkpoint's bytes) drops its float32 copy now that the layer has a new weight, and is decoded
          // again, one layer at a time, when it is read: the block is not held twice in float32 while it is solved.
          if (track.floatWeight && track.floatWeight !== state.weight) heldMatrixAccess(track.floatWeight)?.release();
          if (floatReference) {
            if (floatReference.shape[0] !== view.weight.shape[0] || floatReference.shape[1] !== view.weight.shape[1]) {
              throw new InvalidArgumentError('step result', `step '${step.id}' returned a reference of another shape for '${view.name}'`);
            }
            track.floatWeight = floatReference;
          }
          track.stored = stored;
          if (state.bias !== undefined) view.bias = state.bias;
          if (stored) track.bitsPerWeight = storedBitsPerWeight(stored);
          else if (state.bitsPerWeight !== undefined) track.bitsPerWeight = state.bitsPerWeight;
          if (state.assignment !== undefined) track.assignment = state.assignment;
          if (!track.steps.includes(step.id)) track.steps.push(step.id);
          track.seconds += seconds / views.length;
        });
      }
    }
    // The block's steps are done with its capability: its memory may serve the next block's.
    blockGradients?.release?.();
    if (recipe.inputActivations) {
      const selected = block.linears.filter((l) => isSelected(l.name, recipe.targets, recipe.ignore));
      await installInputActivationQuantizers(model, block, blockInput, recipe.inputActivations, selected);
    }
    if (recipe.kvCache) await installKvCacheQuantizers(model, block, blockInput, recipe.kvCache);
    // Propagate with the final weights (and activation quantizers), measuring each quantized layer's output error on
    // its actual inputs: the first OUTPUT_ERROR_ROWS rows, over as many batches as the model delivers them in.
    // A model that measures output errors where the inputs are (a GPU) does the propagation and the measurement in
    // one pass; one that cannot for this block returns undefined and the block is observed on the host as before.
    const references = new Map<string, Matrix>();
    for (const v of block.linears) {
      const track = tracks.get(v.name)!;
      if (track.floatWeight && track.block === block.index) references.set(v.name, track.floatWeight);
    }
    const measured = references.size > 0 && model.blockOutputErrors ? await model.blockOutputErrors(block.index, blockInput, references, OUTPUT_ERROR_ROWS) : undefined;
    if (measured) {
      hidden = measured.output;
      for (const [name, terms] of measured.errors) {
        const track = tracks.get(name)!;
        // A non-finite sum means a non-finite input (or weight): the error the host path's input check raises.
        assertFinite([terms.squaredReference, terms.squaredError], { what: `the input of ${name} (activations of block ${block.index}, its output-error sums)`, layer: name });
        if (terms.rows > 0) track.outputError = terms.squaredReference === 0 ? 0 : Math.sqrt(terms.squaredError / terms.squaredReference);
      }
    }
    const errorTerms = new Map<string, { rows: number; num: number; den: number }>();
    if (!measured) hidden = await model.runBlock(
      block.index,
      blockInput,
      finiteInputs(block.index, async (name, input) => {
        const track = tracks.get(name);
        if (!track || !track.floatWeight || track.block !== block.index) return;
        const terms = errorTerms.get(name) ?? { rows: 0, num: 0, den: 0 };
        errorTerms.set(name, terms);
        const rows = Math.min(input.shape[0], OUTPUT_ERROR_ROWS - terms.rows);
        if (rows <= 0) return;
        const sample: Matrix = rows < input.shape[0] ? { dtype: 'float32', shape: [rows, input.shape[1]], data: input.data.subarray(0, rows * input.shape[1]) } : input;
        const { num, den } = await outputErrorTerms(sample, track.floatWeight, track.view.weight, backend);
        terms.rows += rows;
        terms.num += num;
        terms.den += den;
        track.outputError = terms.den === 0 ? 0 : Math.sqrt(terms.num / terms.den);
      }),
      { observeRows: OUTPUT_ERROR_ROWS },
    );
    calibrationBlock.propagated(hidden);
    if (needsFloatStream) floatHidden = floatNext;
    const storedForms = new Map<string, StoredForm>();
    for (const v of block.linears) {
      const track = tracks.get(v.name)!;
      delete track.floatWeight; // free the float copies of this block
      if (track.stored && track.block === block.index) {
        track.storedKind = describeStored(track.stored);
        storedForms.set(v.name, track.stored);
        options.onStored?.(v.name, track.stored);
        if (track.stored.kind === 'grid') options.onQuantized?.(v.name, track.stored.tensor);
      }
      delete track.stored;
    }
    const blockSeconds = inBlock();
    eta.finished(block.index, blockSeconds);
    // The checkpoint is written before 'block-done', so a block reported done is one a resume does not redo.
    if (checkpointing) {
      const changed = runtimeChange(block, runtimeBefore);
      if (changed) {
        // A later resume could not rebuild this block: stop checkpointing and remove what was written.
        checkpointing = false;
        await checkpoint!.store.clear();
        const report = [...stepReports.values()].at(-1);
        report?.warnings.push({ step: 'checkpoint', message: `checkpointing stopped at block ${block.index}: ${changed}, which a checkpoint cannot hold; a resume of this run would start over` });
      } else {
        const t0 = performance.now();
        let bytes = await checkpoint!.store.write(`block-${block.index}`, blockCheckpoint(block, tracks, storedForms));
        const head: HeadCheckpoint = {
          version: CHECKPOINT_VERSION,
          fingerprint,
          nextBlock: block.index + 1,
          totalBlocks,
          elapsedSeconds: elapsed(),
          hidden,
          ...(needsFloatStream ? { floatHidden } : {}),
          steps: [...stepReports].map(([key, r]) => ({ key: stepKeyOf(stepKeys, key), ...r })),
          ...(checkpoint!.save ? { caller: checkpoint!.save() } : {}),
        };
        const headBytes = await checkpoint!.store.write('head', head);
        if (bytes !== undefined && headBytes !== undefined) bytes += headBytes;
        onProgress?.({ type: 'checkpoint', block: block.index, totalBlocks, seconds: (performance.now() - t0) / 1000, ...(bytes !== undefined ? { bytes } : {}) });
      }
    }
    onProgress?.({ type: 'block-done', block: block.index, totalBlocks, seconds: blockSeconds, elapsedSeconds: elapsed(), etaSeconds: eta.remaining(block.index + 1) ?? 0 });
    // The block is final: a model that holds weights lazily may drop its float32 copies now.
    model.releaseBlock?.(block.index, storedForms);
  }

  const layers: LayerReport[] = [...tracks.values()].map((t) => ({
    name: t.view.name,
    block: t.block,
    bitsPerWeight: t.bitsPerWeight ?? 16,
    outputError: t.outputError ?? 0,
    steps: t.steps,
    seconds: t.seconds,
    ...(t.storedKind ? { stored: t.storedKind } : {}),
  }));
  let bits = 0;
  let weights = 0;
  for (const t of tracks.values()) {
    if (t.bitsPerWeight === undefined) continue;
    // The shape from the layer's fields where the model has them: reading `weight` could bring a released one back.
    const view = t.view as LinearView & { outFeatures?: number; inFeatures?: number };
    const n = view.outFeatures !== undefined && view.inFeatures !== undefined ? view.outFeatures * view.inFeatures : view.weight.data.length;
    bits += t.bitsPerWeight * n;
    weights += n;
  }
  const tokens = calibration.reduce((a, s) => a + s.length, 0);
  const steps: StepReport[] = [...stepReports.values()];
  return {
    recipe: recipe.name ?? recipe.stages.map((s) => s.step.id).join('+'),
    protocol: { sequences: calibration.length, tokens, maxSequenceLength: Math.max(...calibration.map((s) => s.length)) },
    layers,
    steps,
    averageBitsPerWeight: weights > 0 ? bits / weights : 16,
    seconds: (performance.now() - started) / 1000,
    ...(startBlock > 0 ? { resumedBlocks: startBlock } : {}),
  };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Stable keys of a recipe's stages and overrides (`s0`, `s0.o1`), for step reports in checkpoints. */
function stepKeyTable(recipe: Recipe): Map<string, RecipeStage | Quantizer> {
  const keys = new Map<string, RecipeStage | Quantizer>();
  recipe.stages.forEach((stage, i) => {
    keys.set(`s${i}:${stage.step.id}`, stage);
    (stage.overrides ?? []).forEach((o, j) => keys.set(`s${i}.o${j}:${o.step.id}`, o.step));
  });
  return keys;
}

function stepKeyOf(keys: Map<string, RecipeStage | Quantizer>, value: RecipeStage | Quantizer): string {
  for (const [k, v] of keys) if (v === value) return k;
  throw new InvalidArgumentError('checkpoint', 'a step report belongs to no stage of the recipe');
}

/** The run-time state of a block that checkpoints cannot hold: input transforms and the cache quantization. */
function runtimeState(block: QuantizableModel['blocks'][number]): Map<string, unknown> {
  const state = new Map<string, unknown>();
  for (const l of [...block.linears, ...(block.auxiliaryLinears ?? [])]) state.set(l.name, l.inputTransform);
  state.set('#kvCache', block.kvCache);
  return state;
}

function runtimeChange(block: QuantizableModel['blocks'][number], before: Map<string, unknown>): string | undefined {
  for (const [name, value] of runtimeState(block)) {
    if (before.get(name) !== value) return name === '#kvCache' ? `block ${block.index}'s key/value cache quantization changed` : `a step installed a run-time input transform on ${name}`;
  }
  return undefined;
}

function blockCheckpoint(block: QuantizableModel['blocks'][number], tracks: Map<string, LayerTrack>, stored: Map<string, StoredForm>): BlockCheckpoint {
  return {
    index: block.index,
    // A quantized layer's float32 weight is left out when its stored form decodes to exactly the same bits: the
    // checkpoint then costs the codes, not 4 bytes per weight.
    linears: [...block.linears, ...(block.auxiliaryLinears ?? [])].map((l) => {
      const form = stored.get(l.name);
      const redundant = form !== undefined && sameBits(decodeStored(form).data as Float32Array, l.weight.data as Float32Array);
      return { name: l.name, shape: [...l.weight.shape], ...(redundant ? {} : { weight: l.weight }), ...(l.bias ? { bias: l.bias } : {}) };
    }),
    norms: block.norms.map((n) => ({ name: n.name, weight: n.weight, ...(n.bias ? { bias: n.bias } : {}) })),
    layers: block.linears.map((l) => {
      const t = tracks.get(l.name)!;
      return {
        name: l.name,
        steps: t.steps,
        seconds: t.seconds,
        ...(t.bitsPerWeight !== undefined ? { bitsPerWeight: t.bitsPerWeight } : {}),
        ...(t.outputError !== undefined ? { outputError: t.outputError } : {}),
        ...(t.storedKind !== undefined ? { storedKind: t.storedKind } : {}),
        ...(stored.has(l.name) ? { stored: stored.get(l.name)! } : {}),
      };
    }),
  };
}

/** Writes a checkpointed block back into the model and the report, and replays its stored forms to the callbacks. */
function restoreBlock(block: QuantizableModel['blocks'][number], part: BlockCheckpoint, tracks: Map<string, LayerTrack>, options: RunRecipeOptions): void {
  const linears = new Map([...block.linears, ...(block.auxiliaryLinears ?? [])].map((l) => [l.name, l]));
  const norms = new Map(block.norms.map((n) => [n.name, n]));
  const missing = (what: string) => new CheckpointFileError(`block-${block.index}`, `names ${what}, which block ${block.index} of this model does not have`);
  const storedOf = new Map(part.layers.flatMap((r) => (r.stored ? [[r.name, r.stored] as const] : [])));
  for (const l of part.linears) {
    const view = linears.get(l.name);
    if (!view) throw missing(`the linear ${l.name}`);
    const [rows, columns] = l.shape as [number, number];
    const shape = view as LinearView & { outFeatures?: number; inFeatures?: number };
    const [viewRows, viewColumns] = shape.outFeatures !== undefined && shape.inFeatures !== undefined ? [shape.outFeatures, shape.inFeatures] : view.weight.shape;
    if (viewRows !== rows || viewColumns !== columns) throw missing(`${l.name} with shape [${rows}, ${columns}]`);
    const form = storedOf.get(l.name);
    const data = l.weight?.data ?? (form ? (decodeStored(form).data as Float32Array) : undefined);
    if (!data) throw new CheckpointFileError(`block-${block.index}`, `holds neither the weight nor a stored form of ${l.name}`);
    view.weight = { dtype: 'float32', shape: [rows, columns], data };
    view.bias = l.bias;
  }
  for (const n of part.norms) {
    const norm = norms.get(n.name);
    if (!norm) throw missing(`the norm ${n.name}`);
    norm.weight = n.weight;
    if (n.bias) norm.bias = n.bias;
  }
  for (const r of part.layers) {
    const view = linears.get(r.name);
    if (!view) throw missing(`the linear ${r.name}`);
    tracks.set(r.name, {
      view,
      block: block.index,
      steps: r.steps,
      seconds: r.seconds,
      ...(r.bitsPerWeight !== undefined ? { bitsPerWeight: r.bitsPerWeight } : {}),
      ...(r.outputError !== undefined ? { outputError: r.outputError } : {}),
      ...(r.storedKind !== undefined ? { storedKind: r.storedKind } : {}),
    });
    if (r.stored) {
      options.onStored?.(r.name, r.stored);
      if (r.stored.kind === 'grid') options.onQuantized?.(r.name, r.stored.tensor);
    }
  }
}
