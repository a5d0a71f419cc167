import { calibrationBlocks as calibrationBlocks_, type CalibratableModel, type LinearInputCallback } from '@bitsmith/core';
import type { LinearInputEvent, LinearInputObserver } from './linear-layer.js';
import type { HiddenStates, LlamaBlock, LlamaGraph } from './llama-graph.js';
import { sequenceBatches, sliceHiddenStates } from './hidden-states.js';

/** Options of {@link calibrationBlocks} and {@link captureCalibration}. */
export interface CalibrationOptions {
  /** Sequences per forward call (bounds the size of the `[tokens, inFeatures]` inputs observers receive). Default 8. */
  batchSize?: number;
  /**
   * Which outputs become the next block's inputs. `'updated'` (default; sequential calibration as in GPTQ/AWQ):
   * the block is re-run after the consumer is done with it, with its weights as they are then (e.g. quantized).
   * `'captured'`: the outputs computed during `capture` (original weights) are reused, saving one pass per block.
   */
  propagate?: 'updated' | 'captured';
  signal?: AbortSignal;
}

/** One block of a calibration pass, as handed out by {@link calibrationBlocks}. */
export interface CalibrationBlock {
  readonly index: number;
  readonly block: LlamaBlock;
  /** The block's inputs for every calibration sequence (`[tokens, hiddenSize]`). */
  readonly input: HiddenStates;
  /**
   * Runs the block on its inputs, batch by batch, handing each linear layer's input to `observer`
   * (see {@link LinearInputObserver}). May be called more than once (e.g. after a transform changed the weights).
   */
  capture(observer: LinearInputObserver): Promise<void>;
}

/**
 * Walks a graph block by block for calibration, holding only one block's hidden states: embeds all sequences, then
 * for each block yields a {@link CalibrationBlock}; when the consumer asks for the next one, the block's outputs
 * are computed (see `propagate`) and become the next block's inputs. The walk is core's calibration driver
 * (`calibrationBlocks` in `@bitsmith/core`) over the graph, fed in batches of `batchSize` sequences; observers get
 * the graph's own events.
 *
 * @param sequences Calibration token sequences (BOS included if the model expects it).
 * @param options `batchSize` (8), `propagate` (`'updated'`), `signal`.
 * @example
 * ```ts
 * for await (const step of calibrationBlocks(graph, sequences)) {
 *   const hessians = new Map<string, Float64Array>();
 *   await step.capture(async ({ name, input }) => { ... accumulate X^T X for `name` ... });
 *   // quantize step.block.linears here; the next block sees the quantized block's outputs
 * }
 * ```
 */
export async function* calibrationBlocks(
  graph: LlamaGraph,
  sequences: readonly ArrayLike<number>[],
  options: CalibrationOptions = {},
): AsyncGenerator<CalibrationBlock, HiddenStates, void> {
  const batches = sequenceBatches(sequences.length, options.batchSize ?? 8);
  const signal = options.signal;
  // The graph event of the observer call in progress: core's driver hands observers (name, input); the graph's own
  // observers get the whole event (the layer, the block index) it belongs to.
  let event: LinearInputEvent | undefined;
  const runAll = async (index: number, input: HiddenStates, observe?: LinearInputCallback): Promise<HiddenStates> => {
    const observer = observe
      ? (e: LinearInputEvent) => {
          event = e;
          return observe(e.name, e.input);
        }
      : undefined;
    const out = new Float32Array(input.states.data.length);
    let offset = 0;
    for (const [start, end] of batches) {
      signal?.throwIfAborted();
      const part = await graph.runBlock(index, sliceHiddenStates(input, start, end), observer ? { observer, signal } : { signal });
      out.set(part.states.data, offset);
      offset += part.states.data.length;
    }
    return { states: { dtype: 'float32', shape: input.states.shape, data: out }, lengths: input.lengths };
  };
  // The graph as core's calibration driver sees it: blocks, embed, and a runBlock that feeds sequences in batches.
  const model: CalibratableModel<LlamaBlock> = {
    blocks: graph.blocks,
    embed: async (s) => graph.embed(s),
    runBlock: (index, hidden, observe) => runAll(index, hidden as HiddenStates, observe),
  };
  // The signal is checked per batch above (as before), not by the driver.
  const driver = calibrationBlocks_(model, sequences, { propagate: options.propagate ?? 'updated' });
  for (;;) {
    const next = await driver.next();
    if (next.done) return next.value as HiddenStates;
    const step = next.value;
    yield {
      index: step.block.index,
      block: step.block,
      input: step.input as HiddenStates,
      capture: (observer) => step.observe(() => observer(event!)),
    };
  }
}

/**
 * Runs calibration sequences through a graph block by block, handing every linear layer's inputs to `observer`
 * and calling `onBlock` after each block's capture (where a recipe transforms and quantizes that block) before the
 * block's outputs are propagated. Memory holds one block's activations.
 *
 * @param options `observer`, `onBlock`, plus {@link CalibrationOptions}.
 * @returns The final hidden states (after the last block, before the final norm).
 * @example
 * ```ts
 * const absmax = new Map<string, Float32Array>();
 * await captureCalibration(graph, sequences, {
 *   observer: ({ name, input }) => { ... per-channel max of |input| ... },
 *   onBlock: async (step) => { ... quantize step.block ... },
 * });
 * ```
 */
export async function captureCalibration(
  graph: LlamaGraph,
  sequences: readonly ArrayLike<number>[],
  options: CalibrationOptions & { observer?: LinearInputObserver; onBlock?: (step: CalibrationBlock) => void | Promise<void> } = {},
): Promise<HiddenStates> {
  const iterator = calibrationBlocks(graph, sequences, options);
  for (;;) {
    const next = await iterator.next();
    if (next.done) return next.value;
    const step = next.value;
    if (options.observer) await step.capture(options.observer);
    await options.onBlock?.(step);
  }
}
