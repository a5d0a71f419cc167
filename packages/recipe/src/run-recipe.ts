import {
  AbortError,
  assertFinite,
  InvalidArgumentError,
  StoredFormMismatchError,
  describeStored,
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
} from '@bitsmith/core';
import { defaultBackend, type Backend } from '@bitsmith/linalg';
import type { LayerReport, Recipe, RecipeProgressEvent, RecipeReport, RecipeStage, StepReport } from './recipe-types.js';
import { checkRecipeSelection, finiteInputs, scaleRangeWarning } from './recipe-checks.js';
import { installInputActivationQuantizers, installKvCacheQuantizers, resolveKvCacheScheme } from './activation-calibration.js';
import { checkSelectors, isSelected } from './selector.js';
import { StatisticsCollector } from './statistics-collector.js';

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
}

const KIND_ORDER: Record<StepKind, number> = { transform: 0, allocate: 1, quantize: 2, compensate: 3 };

/** Turns an array of quantizers into a recipe. */
export function toRecipe(recipe: Recipe | readonly Quantizer[]): Recipe {
  if (Array.isArray(recipe)) return { stages: (recipe as readonly Quantizer[]).map((step) => ({ step })) };
  return recipe as Recipe;
}

function validate(recipe: Recipe): void {
  if (recipe.stages.length === 0 && !recipe.inputActivations && !recipe.kvCache) {
    throw new InvalidArgumentError('recipe.stages', 'a recipe needs at least one step (or inputActivations / kvCache alone)');
  }
  let sawLayerStep = false;
  recipe.stages.forEach((stage, i) => {
    if (!stage.step || typeof stage.step.run !== 'function') throw new InvalidArgumentError(`recipe.stages[${i}].step`, 'expected a Quantizer (an object with id, kind, requires and run)');
    checkSelectors([...(stage.targets ?? []), ...(stage.ignore ?? []), ...(stage.overrides ?? []).flatMap((o) => o.targets)]);
    if ((stage.step.scope ?? 'layer') === 'model') {
      if (sawLayerStep) throw new InvalidArgumentError(`recipe.stages[${i}]`, `model-level step '${stage.step.id}' must come before every per-layer step (it runs once before calibration)`);
    } else sawLayerStep = true;
  });
  checkSelectors([...(recipe.targets ?? []), ...(recipe.ignore ?? [])]);
  if (recipe.inputActivations) validateActivationScheme(recipe.inputActivations);
}

async function outputError(x: Matrix, reference: Matrix, approximation: Matrix, backend: Backend): Promise<number> {
  // ||X (W - Q)^T||_F / ||X W^T||_F through two GEMMs on the backend (the difference W - Q is formed first, so the
  // numerator does not suffer the cancellation of subtracting two large products).
  const [tokens, columns] = x.shape;
  const [outFeatures] = reference.shape;
  const w = reference.data as Float32Array;
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
  return den === 0 ? 0 : Math.sqrt(num / den);
}

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
 * run on its calibration input to observe what the step `requires`, the step runs on its selected layers, and its
 * results are written into the model; finally the block's output is recomputed with the new weights and becomes
 * the next block's input. Memory holds one block's activations plus the model.
 *
 * @param calibration Token sequences (each starting with BOS).
 * @example
 * ```ts
 * const report = await runRecipe(model, [gptq({ format: 'int4', granularity: { type: 'group', size: 128 } })], sequences);
 * ```
 */
export async function runRecipe(
  model: QuantizableModel,
  recipeIn: Recipe | readonly Quantizer[],
  calibration: readonly ArrayLike<number>[],
  options: RunRecipeOptions = {},
): Promise<RecipeReport> {
  const started = performance.now();
  const recipe = toRecipe(recipeIn);
  validate(recipe);
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
    const result = await stage.step.run({
      layers: [],
      statistics: (name) => {
        throw new InvalidArgumentError('statistics', `model-level step '${stage.step.id}' asked for statistics of '${name}'; none are gathered before calibration`);
      },
      model,
      ...(signal ? { signal } : {}),
    });
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
  let hidden = await model.embed(calibration);
  // Steps that calibrate asymmetrically (GPTAQ) need each layer's input in the float model too: carry the float
  // model's activations beside the quantized ones, one more block pass per block.
  const wantsFloat = (q: Quantizer) => q.requires.some((r) => r.kind === 'float-input-cross');
  const needsFloatStream = layerStages.some((s) => wantsFloat(s.step) || (s.overrides ?? []).some((o) => wantsFloat(o.step)));
  let floatHidden = needsFloatStream ? hidden : undefined;
  const totalBlocks = model.blocks.length;
  for (const block of model.blocks) {
    check();
    const blockStart = performance.now();
    onProgress?.({ type: 'block-start', block: block.index, totalBlocks });
    for (const view of block.linears) if (!tracks.has(view.name)) tracks.set(view.name, { view, block: block.index, steps: [], seconds: 0 });
    const blockInput = hidden;
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
        let collector: StatisticsCollector | undefined;
        if (requests.length > 0) {
          if (requests.some((r) => r.kind === 'float-input-cross') && !floatInputs) {
            // A transform step changed this block's weights since the float inputs were captured: capture them again
            // (transforms keep the float function, so the float output stays as it was).
            floatInputs = (await captureFloatInputs()).captured;
          }
          collector = new StatisticsCollector(requests, new Set(views.map((v) => v.name)), backend, floatInputs);
          await model.runBlock(block.index, blockInput, finiteInputs(block.index, collector.observe));
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
        const t0 = performance.now();
        const result = await step.run({
          layers,
          statistics: (name) => {
            if (!collector) throw new InvalidArgumentError('statistics', `step '${step.id}' did not declare any statistic in 'requires'`);
            return collector.statistics(name);
          },
          block,
          ...(blockGradients && step.kind !== 'transform' && step.kind !== 'allocate' ? { blockGradients } : {}),
          ...(signal ? { signal } : {}),
          progress: (done, total, message) =>
            onProgress?.({ type: 'step', block: block.index, totalBlocks, step: step.id, done, total, ...(message ? { layer: message } : {}) }),
        });
        const seconds = (performance.now() - t0) / 1000;
        const r = stepReport(step === stage.step ? stage : step, step);
        r.seconds += seconds;
        r.warnings.push(...result.warnings);
        if (result.layers.length !== views.length) {
          throw new InvalidArgumentError('step result', `step '${step.id}' returned ${result.layers.length} layers for ${views.length} given`);
        }
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
          const damaged = step.kind === 'quantize' ? scaleRangeWarning(step.id, view.weight, state) : undefined;
          if (damaged) r.warnings.push(damaged);
          if (step.kind === 'transform' && state.weight !== view.weight) floatInputs = undefined;
          view.weight = state.weight;
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
    if (recipe.inputActivations) {
      const selected = block.linears.filter((l) => isSelected(l.name, recipe.targets, recipe.ignore));
      await installInputActivationQuantizers(model, block, blockInput, recipe.inputActivations, selected);
    }
    if (recipe.kvCache) await installKvCacheQuantizers(model, block, blockInput, recipe.kvCache);
    // Propagate with the final weights (and activation quantizers), measuring each quantized layer's output error on its actual inputs.
    hidden = await model.runBlock(
      block.index,
      blockInput,
      finiteInputs(block.index, async (name, input) => {
        const track = tracks.get(name);
        if (!track || !track.floatWeight || track.block !== block.index) return;
        const sample: Matrix = input.shape[0] > 2048 ? { dtype: 'float32', shape: [2048, input.shape[1]], data: input.data.subarray(0, 2048 * input.shape[1]) } : input;
        track.outputError = await outputError(sample, track.floatWeight, track.view.weight, backend);
      }),
    );
    if (needsFloatStream) floatHidden = floatNext;
    for (const v of block.linears) {
      const track = tracks.get(v.name)!;
      delete track.floatWeight; // free the float copies of this block
      if (track.stored && track.block === block.index) {
        track.storedKind = describeStored(track.stored);
        options.onStored?.(v.name, track.stored);
        if (track.stored.kind === 'grid') options.onQuantized?.(v.name, track.stored.tensor);
      }
      delete track.stored;
    }
    onProgress?.({ type: 'block-done', block: block.index, totalBlocks, seconds: (performance.now() - blockStart) / 1000 });
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
    const n = t.view.weight.data.length;
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
  };
}
