import { captureCalibration, type CalibrationOptions } from './calibration.js';
import type { LlamaGraph } from './llama-graph.js';

/** Per-input-column sums of squared activations of one linear layer (see {@link linearInputSquareSums}). */
export interface InputSquareSums {
  /** Sum over tokens of x_j^2 for each input column j (float64 accumulators): the diagonal of X^T X. */
  readonly sums: Float64Array;
  /** Tokens summed. */
  readonly tokens: number;
}

/**
 * Runs calibration sequences through a graph with its weights as they are and sums, for every linear layer, the
 * squared activations of each input column: the diagonal of the layer's Hessian `X^T X` and the token count, which
 * is llama.cpp's importance matrix (imatrix; `sums / tokens` is the mean it weighs rounding errors by). Each block's
 * outputs computed during the capture feed the next (`propagate: 'captured'`, one pass), as `llama-imatrix` runs the
 * unquantized model.
 *
 * @param sequences Calibration token sequences (BOS included if the model expects it).
 * @param options `batchSize` (8), `signal`, and `onBlock(done, total)` for progress.
 * @example
 * ```ts
 * const sums = await linearInputSquareSums(graph, sequences);
 * sums.get('model.layers.0.self_attn.q_proj')!.tokens; // total calibration tokens
 * ```
 */
export async function linearInputSquareSums(
  graph: LlamaGraph,
  sequences: readonly ArrayLike<number>[],
  options: Omit<CalibrationOptions, 'propagate'> & { onBlock?: (done: number, total: number) => void } = {},
): Promise<Map<string, InputSquareSums>> {
  const acc = new Map<string, { sums: Float64Array; tokens: number }>();
  await captureCalibration(graph, sequences, {
    ...options,
    propagate: 'captured',
    observer: ({ name, input }) => {
      const [rows, columns] = input.shape;
      let e = acc.get(name);
      if (!e) {
        e = { sums: new Float64Array(columns), tokens: 0 };
        acc.set(name, e);
      }
      const x = input.data;
      const s = e.sums;
      for (let r = 0; r < rows; r++) {
        const o = r * columns;
        for (let j = 0; j < columns; j++) s[j] += x[o + j]! * x[o + j]!;
      }
      e.tokens += rows;
    },
    onBlock: (step) => options.onBlock?.(step.index + 1, graph.blocks.length),
  });
  return acc;
}
