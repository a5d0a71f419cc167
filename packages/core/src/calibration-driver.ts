import type { ActivationScales, ActivationScheme } from './activation-quantization.js';
import { calibrateInputActivationScales } from './activation-scale-calibration.js';
import { AbortError, InvalidArgumentError } from './errors.js';
import type { BlockView, HiddenStatesHandle, LinearInputCallback, QuantizableModel, RunBlockOptions } from './model-view.js';
import type { StatisticRequest } from './quantizer.js';
import { sharedInputGroups, StatisticsCollector, type StatisticsKernels } from './statistics-collector.js';

/** What the driver needs of a block: its index and, for shared Hessians, its input groups (absent: none shared). */
export interface CalibratableBlock {
  readonly index: number;
  readonly inputGroups?: BlockView['inputGroups'];
}

/**
 * What the driver needs of a model: its blocks, `embed` and a batched `runBlock` (a `QuantizableModel` is one; a
 * lower-level graph can be adapted, as `@bitsmith/models`' graph-level `calibrationBlocks` does).
 */
export interface CalibratableModel<B extends CalibratableBlock = BlockView> {
  readonly blocks: readonly B[];
  embed(sequences: readonly ArrayLike<number>[]): Promise<HiddenStatesHandle>;
  runBlock(index: number, hidden: HiddenStatesHandle, observe?: LinearInputCallback, options?: RunBlockOptions): Promise<HiddenStatesHandle>;
}

/** Options of {@link collectBlockStatistics}. */
export interface CollectBlockStatisticsOptions {
  /** Declared shared-input groups; default {@link sharedInputGroups}`(block)` (the model's `inputGroups`). */
  readonly sharedInputs?: readonly (readonly string[])[];
  /** Each layer's inputs in the float model, for a `float-input-cross` request. */
  readonly floatInputs?: ReadonlyMap<string, readonly Float32Array[]>;
  /** Wraps the collector's observer (for example to check inputs for non-finite values first). */
  readonly wrap?: (observe: LinearInputCallback) => LinearInputCallback;
  /** Passed to `runBlock`. */
  readonly runOptions?: RunBlockOptions;
}

/**
 * One statistics pass over one block: runs `model.runBlock(block.index, input)` (the model feeds its calibration
 * sequences in batches and hands each batch's linear inputs to the observer) and collects `requests` for `layers`
 * with a {@link StatisticsCollector} (Hessians shared by the declared input groups).
 *
 * @returns The collector and the block's output of that pass (computed with the weights as they were during it).
 * @example
 * ```ts
 * const { collector, output } = await collectBlockStatistics(model, block, hidden, [{ kind: 'hessian' }], names, backend);
 * collector.statistics(names[0]).hessian; // mean X^T X, float64
 * ```
 */
export async function collectBlockStatistics(
  model: Pick<QuantizableModel, 'runBlock'>,
  block: CalibratableBlock,
  input: HiddenStatesHandle,
  requests: readonly StatisticRequest[],
  layers: ReadonlySet<string>,
  kernels: StatisticsKernels,
  options: CollectBlockStatisticsOptions = {},
): Promise<{ collector: StatisticsCollector; output: HiddenStatesHandle }> {
  const collector = new StatisticsCollector(requests, layers, kernels, {
    sharedInputs: options.sharedInputs ?? (block.inputGroups ? sharedInputGroups({ inputGroups: block.inputGroups }) : []),
    ...(options.floatInputs ? { floatInputs: options.floatInputs } : {}),
  });
  const observe = options.wrap ? options.wrap(collector.observe) : collector.observe;
  const output = await model.runBlock(block.index, input, observe, options.runOptions);
  return { collector, output };
}

/** One block of a calibration pass, as {@link calibrationBlocks} hands it out. */
export interface CalibrationBlock<B extends CalibratableBlock = BlockView> {
  readonly block: B;
  /** The block's input: the previous block's output (see `propagate`), or the embedded sequences. */
  readonly input: HiddenStatesHandle;
  /**
   * Runs the block on its input and collects `requests` for `layers` (see {@link collectBlockStatistics}). May be
   * called more than once (for example after a transform changed the weights); the last pass's output is the block's
   * captured output.
   */
  collect(requests: readonly StatisticRequest[], layers: ReadonlySet<string>, options?: CollectBlockStatisticsOptions): Promise<StatisticsCollector>;
  /**
   * Runs the block on its input with a raw observer (statistics no `StatisticRequest` names); like `collect`, the
   * pass's output is the block's captured output.
   */
  observe(observer: LinearInputCallback, options?: RunBlockOptions): Promise<void>;
  /**
   * Runs the block on its input and calibrates static input-activation scales for `layers` (see
   * `calibrateInputActivationScales`); like `collect`, the pass's output is the block's captured output.
   */
  activationScales(scheme: ActivationScheme, layers: readonly { readonly name: string; readonly inFeatures: number }[]): Promise<Map<string, ActivationScales>>;
  /**
   * Hands the driver the block's output, computed by the consumer itself (the recipe runner propagates while it
   * measures output errors): it becomes the next block's input and the driver runs no pass of its own. Without it,
   * the driver propagates as `propagate` says.
   */
  propagated(output: HiddenStatesHandle): void;
}

/** Options of {@link calibrationBlocks}. */
export interface CalibrationBlocksOptions {
  /** `gram` and `sgemm` for the statistics (a linalg `Backend`); needed only by `collect`. */
  readonly kernels?: StatisticsKernels;
  /**
   * Which output becomes the next block's input. `'updated'` (default; sequential calibration as in GPTQ and AWQ): the
   * block is run again once the consumer is done with it, with its weights as they are then (quantized).
   * `'captured'`: the output of the block's last `collect` pass is reused (one pass fewer per block; the float model's
   * activations when the consumer changes no weight, as a sensitivity pass wants); a block that was never collected
   * is run once.
   */
  readonly propagate?: 'updated' | 'captured';
  /** Checked before every block (core's `AbortError`). */
  readonly signal?: AbortSignal;
  /**
   * Start at this block with this input instead of embedding the sequences and starting at the first block (a
   * resumed run: the earlier blocks are finished and `input` is their propagated output).
   */
  readonly start?: { readonly block: number; readonly input: HiddenStatesHandle };
}

/**
 * The calibration driver: walks a model block by block, holding one block's activations. It embeds the calibration
 * sequences (or starts where `start` says), then for each block hands out a {@link CalibrationBlock} whose `collect`
 * gathers the statistics steps request (one batched forward pass of the block per call, DESIGN.md's data flow); when
 * the consumer asks for the next block, this block's output (the one the consumer handed over with `propagated`, else
 * computed as `propagate` says) becomes the next block's input. Returns the last block's output.
 *
 * @param calibration - Token sequences (each starting with BOS when the model expects it).
 * @example
 * ```ts
 * for await (const step of calibrationBlocks(model, sequences, { kernels: backend, propagate: 'captured' })) {
 *   const names = new Set(step.block.linears.map((l) => l.name));
 *   const stats = await step.collect([{ kind: 'hessian' }], names);
 *   for (const name of names) console.log(name, stats.statistics(name).tokens);
 * }
 * ```
 */
export async function* calibrationBlocks<B extends CalibratableBlock = BlockView>(
  model: CalibratableModel<B>,
  calibration: readonly ArrayLike<number>[],
  options: CalibrationBlocksOptions,
): AsyncGenerator<CalibrationBlock<B>, HiddenStatesHandle, void> {
  const propagate = options.propagate ?? 'updated';
  const check = () => {
    if (options.signal?.aborted) throw new AbortError();
  };
  check();
  const start = options.start;
  if (start && (!Number.isInteger(start.block) || start.block < 0 || start.block > model.blocks.length)) {
    throw new InvalidArgumentError('start.block', `got ${start.block}; expected an integer from 0 to ${model.blocks.length}`);
  }
  let hidden = start ? start.input : await model.embed(calibration);
  for (const block of model.blocks) {
    if (start && block.index < start.block) continue;
    check();
    const input = hidden;
    // Only kept when it will be the next input: with 'updated' a pass's output is dropped at once (no block held twice).
    let captured: { output: HiddenStatesHandle } | undefined;
    let given: { output: HiddenStatesHandle } | undefined;
    yield {
      block,
      input,
      collect: async (requests, layers, collectOptions) => {
        if (!options.kernels) throw new InvalidArgumentError('kernels', 'collect() needs the gram/sgemm kernels (a linalg Backend) in the options of calibrationBlocks');
        const pass = await collectBlockStatistics(model, block, input, requests, layers, options.kernels, collectOptions);
        if (propagate === 'captured') captured = { output: pass.output };
        return pass.collector;
      },
      observe: async (observer, runOptions) => {
        const output = await model.runBlock(block.index, input, observer, runOptions);
        if (propagate === 'captured') captured = { output };
      },
      activationScales: async (scheme, layers) => {
        const pass = await calibrateInputActivationScales(model, block, input, scheme, layers);
        if (propagate === 'captured') captured = { output: pass.output };
        return pass.scales;
      },
      propagated: (output) => {
        given = { output };
      },
    };
    hidden = given ? given.output : propagate === 'captured' && captured ? captured.output : await model.runBlock(block.index, input);
  }
  return hidden;
}
