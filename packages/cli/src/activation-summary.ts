import { StatisticsCollector, type BlockOutputErrors, type LinearInputCallback, type Matrix, type QuantizableModel, type RunBlockOptions } from '@bitsmith/core';

/** Per-channel activation statistics of one linear's calibration input (for the report's outlier view). */
export interface ActivationSummary {
  readonly layer: string;
  /** Where the inputs were observed. */
  readonly stage: string;
  readonly channels: number;
  readonly tokens: number;
  /** max over channels of max|x|. */
  readonly maxAbs: number;
  /** mean over channels of mean|x|. */
  readonly meanAbs: number;
  /** max_c max|x_c| / mean_c max|x_c|: how far the largest channel stands out. */
  readonly outlierRatio: number;
  /** Per-channel max|x| (rounded to 4 significant digits). */
  readonly channelAbsMax: number[];
}

function round4(x: number): number {
  return Number(x.toPrecision(4));
}

/**
 * Wraps a model so that the first pass through each block (its calibration pass) summarises every linear's input:
 * per-channel max|x| and mean|x| over all the batches the model delivers (core's `StatisticsCollector`, beside the
 * runner's own observer), the activation-outlier view of the report, at no extra forward pass. A model that measures
 * output errors itself (`blockOutputErrors`, a GPU model) and gives its inputs' channel statistics: those, when its
 * pass is the block's first.
 *
 * @example
 * ```ts
 * const activations = new Map<string, ActivationSummary>();
 * await runRecipe(withActivationCapture(model, 'calibration input', activations), recipe, sequences);
 * ```
 */
export function withActivationCapture<M extends QuantizableModel>(model: M, stage: string, into: Map<string, ActivationSummary>): M {
  const passed = new Set<number>();
  const runBlock = async (index: number, hidden: unknown, observe?: LinearInputCallback, options?: RunBlockOptions) => {
    if (!observe || passed.has(index)) return model.runBlock(index, hidden, observe, options);
    passed.add(index);
    // Every linear of the block (auxiliary ones included) not summarised yet; no Hessian, so no kernels.
    const block = model.blocks[index]!;
    const names = new Set([...block.linears, ...(block.auxiliaryLinears ?? [])].map((l) => l.name).filter((name) => !into.has(name)));
    const collector = new StatisticsCollector([{ kind: 'input-absmax' }, { kind: 'input-absmean' }], names, undefined);
    const output = await model.runBlock(index, hidden, async (name: string, input: Matrix) => {
      await collector.observe(name, input);
      await observe(name, input);
    }, options);
    for (const name of collector.observedLayers()) {
      const s = collector.statistics(name);
      into.set(name, summary(name, stage, s.tokens, s.inputAbsMax!, s.inputAbsMean!));
    }
    return output;
  };
  const measure = model.blockOutputErrors?.bind(model);
  const blockOutputErrors = async (index: number, hidden: unknown, references: ReadonlyMap<string, Matrix>, rows: number): Promise<BlockOutputErrors | undefined> => {
    const result = await measure!(index, hidden, references, rows);
    if (!result?.inputChannels || passed.has(index)) return result;
    passed.add(index);
    // Per-channel means in float32, as the collector's input-absmean gives them.
    for (const [name, c] of result.inputChannels) if (!into.has(name)) into.set(name, summary(name, stage, c.rows, c.absMax, Float32Array.from(c.absSum, (v) => v / c.rows)));
    return result;
  };
  return Object.create(model, { runBlock: { value: runBlock }, ...(measure ? { blockOutputErrors: { value: blockOutputErrors } } : {}) }) as M;
}

function summary(layer: string, stage: string, tokens: number, absMax: Float32Array, absMean: ArrayLike<number>): ActivationSummary {
  const columns = absMax.length;
  let maxAbs = 0;
  let sumMax = 0;
  let sumMean = 0;
  for (let c = 0; c < columns; c++) {
    maxAbs = Math.max(maxAbs, absMax[c]!);
    sumMax += absMax[c]!;
    sumMean += absMean[c]!;
  }
  const meanOfMax = sumMax / columns;
  return {
    layer,
    stage,
    channels: columns,
    tokens,
    maxAbs: round4(maxAbs),
    meanAbs: round4(sumMean / columns),
    outlierRatio: round4(meanOfMax > 0 ? maxAbs / meanOfMax : 0),
    channelAbsMax: Array.from(absMax, round4),
  };
}

/**
 * Summarises one linear's input `[tokens, channels]`: per-channel max|x|, the largest and mean magnitudes, and the
 * outlier ratio (largest channel max over the mean channel max).
 *
 * @example
 * ```ts
 * summarise('model.layers.0.mlp.down_proj', 'calibration input', input).outlierRatio; // e.g. 7.3
 * ```
 */
export function summarise(layer: string, stage: string, input: Matrix): ActivationSummary {
  const [rows, columns] = input.shape;
  const x = input.data as Float32Array;
  const absMax = new Float32Array(columns);
  const absSum = new Float64Array(columns);
  for (let r = 0; r < rows; r++) {
    const o = r * columns;
    for (let c = 0; c < columns; c++) {
      const a = Math.abs(x[o + c]!);
      if (a > absMax[c]!) absMax[c] = a;
      absSum[c] += a;
    }
  }
  return summary(layer, stage, rows, absMax, Array.from(absSum, (v) => v / Math.max(1, rows)));
}
