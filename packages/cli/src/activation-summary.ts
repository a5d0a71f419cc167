import type { BlockOutputErrors, LinearInputCallback, Matrix, QuantizableModel, RunBlockOptions } from '@bitsmith/core';

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
 * per-channel max|x| and mean|x| over all the batches the model delivers, the activation-outlier view of the report,
 * at no extra forward pass. A model that measures output errors itself (`blockOutputErrors`, a GPU model) and gives
 * its inputs' channel statistics: those, when its pass is the block's first.
 */
export function withActivationCapture(model: QuantizableModel, stage: string, into: Map<string, ActivationSummary>): QuantizableModel {
  const passed = new Set<number>();
  const runBlock = async (index: number, hidden: unknown, observe?: LinearInputCallback, options?: RunBlockOptions) => {
    if (!observe || passed.has(index)) return model.runBlock(index, hidden, observe, options);
    passed.add(index);
    const sums = new Map<string, ChannelSums>();
    const output = await model.runBlock(index, hidden, async (name: string, input: Matrix) => {
      if (!into.has(name)) {
        let s = sums.get(name);
        if (!s) sums.set(name, (s = channelSums(input.shape[1])));
        accumulate(s, input);
      }
      await observe(name, input);
    }, options);
    for (const [name, s] of sums) into.set(name, summary(name, stage, s));
    return output;
  };
  const measure = model.blockOutputErrors?.bind(model);
  const blockOutputErrors = async (index: number, hidden: unknown, references: ReadonlyMap<string, Matrix>, rows: number): Promise<BlockOutputErrors | undefined> => {
    const result = await measure!(index, hidden, references, rows);
    if (!result?.inputChannels || passed.has(index)) return result;
    passed.add(index);
    for (const [name, c] of result.inputChannels) if (!into.has(name)) into.set(name, summary(name, stage, { rows: c.rows, absMax: c.absMax, absSum: c.absSum }));
    return result;
  };
  return Object.create(model, { runBlock: { value: runBlock }, ...(measure ? { blockOutputErrors: { value: blockOutputErrors } } : {}) }) as QuantizableModel;
}

interface ChannelSums {
  rows: number;
  absMax: Float32Array;
  absSum: Float64Array;
}

const channelSums = (columns: number): ChannelSums => ({ rows: 0, absMax: new Float32Array(columns), absSum: new Float64Array(columns) });

function accumulate(s: ChannelSums, input: Matrix): void {
  const [rows, columns] = input.shape;
  const x = input.data as Float32Array;
  const { absMax, absSum } = s;
  for (let r = 0; r < rows; r++) {
    const o = r * columns;
    for (let c = 0; c < columns; c++) {
      const a = Math.abs(x[o + c]!);
      if (a > absMax[c]!) absMax[c] = a;
      absSum[c] += a;
    }
  }
  s.rows += rows;
}

function summary(layer: string, stage: string, s: ChannelSums): ActivationSummary {
  const columns = s.absMax.length;
  let maxAbs = 0;
  let sumMax = 0;
  let sumMean = 0;
  for (let c = 0; c < columns; c++) {
    maxAbs = Math.max(maxAbs, s.absMax[c]!);
    sumMax += s.absMax[c]!;
    sumMean += s.absSum[c]! / Math.max(1, s.rows);
  }
  const meanOfMax = sumMax / columns;
  return {
    layer,
    stage,
    channels: columns,
    tokens: s.rows,
    maxAbs: round4(maxAbs),
    meanAbs: round4(sumMean / columns),
    outlierRatio: round4(meanOfMax > 0 ? maxAbs / meanOfMax : 0),
    channelAbsMax: Array.from(s.absMax, round4),
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
  const s = channelSums(input.shape[1]);
  accumulate(s, input);
  return summary(layer, stage, s);
}
