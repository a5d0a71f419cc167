import type { LinearInputCallback, Matrix, QuantizableModel } from '@bitsmith/core';

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
 * Wraps a model so that the first time each linear's input is observed (the calibration pass of its block), per-channel
 * max|x| and mean|x| are summarised: the activation-outlier view of the report, at no extra forward pass.
 */
export function withActivationCapture(model: QuantizableModel, stage: string, into: Map<string, ActivationSummary>): QuantizableModel {
  const runBlock = async (index: number, hidden: unknown, observe?: LinearInputCallback) =>
    model.runBlock(index, hidden, observe && (async (name: string, input: Matrix) => {
      if (!into.has(name)) into.set(name, summarise(name, stage, input));
      await observe(name, input);
    }));
  return Object.create(model, { runBlock: { value: runBlock } }) as QuantizableModel;
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
  let maxAbs = 0;
  let sumMax = 0;
  let sumMean = 0;
  for (let c = 0; c < columns; c++) {
    maxAbs = Math.max(maxAbs, absMax[c]!);
    sumMax += absMax[c]!;
    sumMean += absSum[c]! / Math.max(1, rows);
  }
  const meanOfMax = sumMax / columns;
  return {
    layer,
    stage,
    channels: columns,
    tokens: rows,
    maxAbs: round4(maxAbs),
    meanAbs: round4(sumMean / columns),
    outlierRatio: round4(meanOfMax > 0 ? maxAbs / meanOfMax : 0),
    channelAbsMax: Array.from(absMax, round4),
  };
}

