import { checkOptions, type LayerState, type Quantizer, type StepContext, type StepWarning } from '@bitsmith/core';
import { defaultBackend, type Backend } from '@bitsmith/linalg';
import { searchAwqClip } from './awq-clip.js';
import { awqScales } from './awq-scales.js';
import { groupInputs, layerStatesFromBlock, selectFoldableGroups, throwIfAborted, draftStepContext, schemeMismatchWarnings } from './block-step.js';
import { inputAbsMean, normalizedWeightMean } from './channel-statistics.js';
import { foldInputScales } from './fold-scales.js';
import { createOutputErrorMeter } from './output-error-meter.js';
import { resolveQuantizationTarget, type QuantizationTarget } from './quantization-target.js';
import { awqOptionsSchema } from './smoothing-options.js';
import { searchSmoothingScales } from './smoothing-loss.js';

/** Settings of AWQ's clipping search (see {@link AwqOptions.clipSearch}). */
export interface AwqClipSearchOptions {
  /** Ratios tried, evenly spaced from 1 down to `minShrink`. Default 20. */
  steps?: number;
  /** Smallest ratio of a group's max `|w|`. Default 0.5. */
  minShrink?: number;
  /** Calibration tokens used, taken at an even stride. Default 512 (AutoAWQ's `n_sample_token`). */
  maxTokens?: number;
}

/** Options of {@link awq}. The format and granularity must be those of the quantize step that follows. */
export interface AwqOptions extends QuantizationTarget {
  /** Number of ratios `alpha = i / grid`, `i = 0 .. grid - 1`, tried in the scale search. Default 20. */
  grid?: number;
  /** Divide by the normalised weight mean as well (`s = x^a / w^(1-a)`, AutoAWQ's `duo_scaling`). Default true. */
  duoScaling?: boolean;
  /**
   * Also try `s = 1` (no scaling), so a group is only scaled when some ratio beats plain quantization on the
   * calibration loss. AutoAWQ does not; set false for its exact grid. Default true.
   */
  includeIdentity?: boolean;
  /** Run the clipping search after scaling: `true` (defaults), `false`, or its settings. Default true. */
  clipSearch?: boolean | AwqClipSearchOptions;
  /** Layer kinds the clipping search leaves alone (their error passes through `q k^T`). Default `['q_proj', 'k_proj']`. */
  clipSkip?: readonly string[];
  /** Calibration tokens requested from the runner (`inputs` statistic). Default 4096. */
  maxTokens?: number;
  /** Backend for the GEMMs. Default `await defaultBackend()`. */
  backend?: Backend;
}

/**
 * AWQ: activation-aware weight quantization's scale and clip search (Lin et al., arXiv:2306.00978), as a block-level
 * transform. It does NOT quantize: it rescales and clips float weights so that the quantize step that follows (`rtn`,
 * `gptq`) loses less; give that step the same format and granularity.
 *
 * For each input group of `context.block` whose producer is a norm or a linear (groups with producer `none`, such as
 * `o_proj`, are skipped) and whose linears are all selected: per-input-channel scales
 * `s = mean|x|^a / mean|w|^(1-a)` (weights normalised per quantization group, clamped, normalised by
 * `sqrt(max s * min s)`) are tried for `a = 0, 1/grid, ...`; the one with the least output MSE of the group's
 * quantized linears on the captured inputs, `sum ||X W^T - (X/s) Q(W diag(s))^T||^2` (with `includeIdentity`, `s = 1`
 * competes too), is folded into the producer
 * (norm weight and bias, or producer linear rows, divided by `s`) and the linears (columns multiplied by `s`), which
 * leaves the float model unchanged. Then (`clipSearch`) every selected linear except `q_proj`/`k_proj` has each
 * quantization group's max `|w|` shrunk by the ratio that minimises that group's output error, and is clamped to it.
 *
 * Step contract v2: the block's views are never written. The scales are folded into a draft of the block; the returned
 * layer states hold the selected linears' new weights and `edits` the rest (norm weights and biases, an unselected
 * producing linear), which the runner applies once. Requires `{ kind: 'inputs', maxTokens }`.
 *
 * @param options `format` (required), `granularity` (core default), `grid` (20), `duoScaling` (true), `includeIdentity` (true),
 *   `clipSearch` (true: 20 steps down to 0.5 on 512 tokens), `clipSkip` (`['q_proj', 'k_proj']`), `maxTokens` (4096),
 *   `backend` (`defaultBackend()`).
 * @throws InvalidArgumentError naming the offending option.
 * @example
 * ```ts
 * const recipe = [
 *   awq({ format: 'int4', granularity: { type: 'group', size: 128 } }),
 *   rtn({ format: 'int4', granularity: { type: 'group', size: 128 } }),
 * ];
 * ```
 */
export function awq(options: AwqOptions): Quantizer {
  checkOptions('awq', awqOptionsSchema, options);
  const quantize = resolveQuantizationTarget(options);
  const grid = options.grid ?? 20;
  const maxTokens = options.maxTokens ?? 4096;
  const duoScaling = options.duoScaling ?? true;
  const includeIdentity = options.includeIdentity ?? true;
  const clipOption = options.clipSearch ?? true;
  const clip = clipOption === false ? undefined : clipOption === true ? {} : clipOption;
  const clipSteps = clip?.steps ?? 20;
  const clipTokens = clip?.maxTokens ?? 512;
  const minShrink = clip?.minShrink ?? 0.5;
  const clipSkip = options.clipSkip ?? ['q_proj', 'k_proj'];
  const kindOf = (name: string): string => name.slice(name.lastIndexOf('.') + 1);

  return {
    specificationVersion: 'v2',
    id: 'awq',
    kind: 'transform',
    scope: 'layer',
    requires: [{ kind: 'inputs', maxTokens }],
    async run(given: StepContext) {
      // Step contract v2: fold into a draft of the block; the changes outside the layers return as model edits.
      const { context, edits } = draftStepContext(given);
      const backend = options.backend ?? (await defaultBackend());
      const check = (): void => throwIfAborted(context.signal);
      check();
      const warnings: StepWarning[] = [];
      const block = context.block;
      const { groups, warnings: selectionWarnings } = selectFoldableGroups(context, 'awq');
      warnings.push(...selectionWarnings, ...schemeMismatchWarnings(context, 'awq', quantize));
      if (!block) {
        warnings.push({ step: 'awq', message: 'no block in the step context: the scale search needs input groups and was skipped' + (clip ? '; clipping only' : '') });
      }
      // Clip targets: block views when there is a block, else the loose layer states.
      const clipTargets = clip
        ? block
          ? block.linears.filter((v) => context.layers.some((l) => l.name === v.name) && !clipSkip.includes(v.kind))
          : context.layers.filter((l) => !clipSkip.includes(kindOf(l.name))).map((l) => ({ name: l.name, weight: l.weight }))
        : [];
      const total = groups.length + clipTargets.length;
      let done = 0;
      const divisors = new Map<string, Float32Array>();

      for (const group of groups) {
        check();
        const inputs = groupInputs(context, group.linears);
        const first = group.linears[0]!.name;
        if (!inputs || inputs.shape[0] === 0) {
          warnings.push({ step: 'awq', layer: first, message: 'no calibration inputs captured for this input group; its scale search was skipped' });
        } else {
          const meter = await createOutputErrorMeter(inputs, { backend, maxTokens });
          const weights = group.linears.map((l) => l.weight);
          const xMean = inputAbsMean(inputs);
          const wMean = duoScaling ? normalizedWeightMean(weights, quantize) : undefined;
          const candidate = (i: number): Float32Array => (i < grid ? awqScales(xMean, wMean, i / grid, duoScaling) : new Float32Array(xMean.length).fill(1));
          const best = await searchSmoothingScales(weights, includeIdentity ? grid + 1 : grid, candidate, meter, quantize, check);
          if (best.scales.some((v) => v !== 1)) foldInputScales(group, best.scales);
          for (const l of group.linears) divisors.set(l.name, best.scales);
        }
        context.progress?.(++done, total, `scales ${first}`);
      }

      const loose = new Map<string, LayerState>();
      for (const target of clipTargets) {
        check();
        const inputs = context.statistics(target.name).inputs;
        if (!inputs || inputs.shape[0] === 0) {
          warnings.push({ step: 'awq', layer: target.name, message: 'no calibration inputs captured; clipping search skipped' });
        } else {
          const divisor = divisors.get(target.name);
          const meter = await createOutputErrorMeter(inputs, { backend, maxTokens: clipTokens, ...(divisor ? { divisor } : {}) });
          const { weight } = await searchAwqClip(target.weight, meter, { quantize, steps: clipSteps, minShrink, check });
          target.weight = weight;
          if (!block) loose.set(target.name, { name: target.name, weight });
        }
        context.progress?.(++done, total, `clip ${target.name}`);
      }

      const layers = block ? layerStatesFromBlock(context) : context.layers.map((l) => (loose.has(l.name) ? { ...loose.get(l.name)!, ...(l.bias ? { bias: l.bias } : {}) } : l));
      return { layers, warnings, edits: edits() };
    },
  };
}
