import { InvalidArgumentError, ShapeMismatchError, type BlockBackward, type BlockGradients, type BlockPassOverrides, type Matrix } from '@bitsmith/core';
import { BlockWorkspace, llamaBlockBackward, llamaBlockForward } from './llama-block-backward.js';
import type { HiddenStates, LlamaGraph } from './llama-graph.js';
import { ropeTables } from './rope.js';
import { tokenBatches } from './token-batches.js';

function checkBatch(batch: readonly number[], count: number): void {
  for (const s of batch) {
    if (!Number.isInteger(s) || s < 0 || s >= count) throw new InvalidArgumentError('batch', `sequence index ${s} is outside [0, ${count})`);
  }
}

/** Rows of the selected sequences, copied into one contiguous batch (a view when the batch is all sequences). */
function gather(hidden: HiddenStates, starts: readonly number[], batch: readonly number[] | undefined, into?: (length: number) => Float32Array): HiddenStates {
  if (!batch) return hidden;
  checkBatch(batch, hidden.lengths.length);
  const columns = hidden.states.shape[1];
  const lengths = batch.map((s) => hidden.lengths[s]!);
  const rows = lengths.reduce((a, b) => a + b, 0);
  const data = into ? into(rows * columns) : new Float32Array(rows * columns);
  let at = 0;
  for (const s of batch) {
    const n = hidden.lengths[s]! * columns;
    data.set(hidden.states.data.subarray(starts[s]! * columns, starts[s]! * columns + n), at);
    at += n;
  }
  return { states: { dtype: 'float32', shape: [rows, columns], data }, lengths };
}

/**
 * The memory a released {@link llamaBlockGradients} capability hands on (its `release()`), for the next block's
 * capability to reuse: fresh memory's first touch costs more than the work on it on some hosts (page faults), and the
 * blocks of a model need the same sizes.
 */
export interface BlockGradientsMemory {
  /** The passes' workspace. */
  readonly workspace: BlockWorkspace;
  /** The float output's array, if it was computed (reused when the next capability has as many elements). */
  readonly target: Float32Array | undefined;
}

/** Options of {@link llamaBlockGradients}. */
export interface LlamaBlockGradientsOptions {
  /** Tokens per batch of the float output's forward (default {@link TARGET_BATCH_TOKENS}; a longer sequence goes alone). */
  targetTokens?: number;
  /** `'native'` (default) or `'reference'` (see `BlockPassOptions.arithmetic`). */
  arithmetic?: 'reference' | 'native';
  /** Memory a released capability handed on ({@link BlockGradientsMemory}), taken over by this one. */
  memory?: BlockGradientsMemory;
  /** Receives this capability's memory once `release()` was called and its last pass has finished. */
  onRelease?: (memory: BlockGradientsMemory) => void;
}

/**
 * Core's `BlockGradients` capability for block `index` of a {@link LlamaGraph}: the block's calibration input, its
 * float output (from the linear weights the block holds now, computed on first use and cached), and forward and
 * backward passes with trial weights through `llamaBlockForward` / `llamaBlockBackward`. Nothing modifies the graph.
 *
 * The float output is computed in batches of whole sequences of at most `targetTokens` tokens through the passes'
 * workspace (the same bits as one forward over all of them: every row's arithmetic is its own), so its memory is one
 * batch's activations, not all the calibration tokens'.
 *
 * @param hidden The block's input for the calibration sequences.
 * The passes (and the float output) use `arithmetic` (see `BlockPassOptions.arithmetic`): by default `'native'`, the
 * backend's native attention and float32 SiLU, as PyTorch trains; `'reference'` gives the calibration forward's bits
 * on every backend, at about 10% more time per AutoRound iteration on `ort`.
 *
 * `release()` ends the capability (its later calls are refused) and hands its memory to `options.onRelease`, which
 * `llamaQuantizableModel` gives to the next block's capability.
 *
 * @param options `targetTokens`, `arithmetic`, `memory` and `onRelease` ({@link LlamaBlockGradientsOptions}).
 * @example
 * ```ts
 * const g = llamaBlockGradients(graph, 0, graph.embed(sequences));
 * const target = await g.target();
 * ```
 */
export function llamaBlockGradients(graph: LlamaGraph, index: number, hidden: HiddenStates, options: LlamaBlockGradientsOptions = {}): BlockGradients {
  const targetTokens = options.targetTokens ?? TARGET_BATCH_TOKENS;
  const arithmetic = checkArithmetic('arithmetic', options.arithmetic) ?? 'native';
  if (!(targetTokens >= 1)) throw new InvalidArgumentError('targetTokens', `got ${targetTokens}; expected at least 1`);
  const block = graph.blocks[index];
  if (!block) throw new InvalidArgumentError('index', `block ${index} does not exist (the graph has ${graph.blocks.length})`);
  const starts: number[] = [];
  let row = 0;
  for (const n of hidden.lengths) {
    starts.push(row);
    row += n;
  }
  // The float reference: the linear weights as they are now (steps replace weight objects, they never write into them).
  const reference = new Map(block.linears.map((l) => [l.name, l.weight.data] as const));
  let target: Promise<Float32Array> | undefined;
  let released = false;
  // The passes share one scratch workspace, so they run one at a time (queued) even if a caller overlaps them; each
  // prepares it first (its arrays move into the kernels' memory once their sizes are known), so a pass's result
  // (transientResults) is valid until the next pass starts.
  const workspace = options.memory?.workspace ?? new BlockWorkspace();
  const batchInput = (length: number) => workspace.uninitialised('batch-input', length);
  let queue: Promise<unknown> = Promise.resolve();
  const serialised = <R>(task: () => Promise<R>): Promise<R> => {
    if (released) return Promise.reject(new InvalidArgumentError('blockGradients', `the capability of block ${index} was released (the recipe runner releases it after the block's steps); ask the model for a new one`));
    const result = queue.then(task);
    queue = result.catch(() => undefined);
    return result;
  };
  const { config, backend } = graph;
  // RoPE's tables once for the longest sequence (each position's entries do not depend on the table's length), not
  // once per pass.
  const rope = ropeTables(config, hidden.lengths.reduce((a, b) => Math.max(a, b), 1));
  const matrix = (data: Float32Array): Matrix => ({ dtype: 'float32', shape: [data.length / config.hiddenSize, config.hiddenSize], data });
  // The batch's input rows, or the caller's replacement for them; and the pass options with the input quantizer.
  const passInput = (batch: readonly number[] | undefined, overrides: BlockPassOverrides | undefined): HiddenStates => {
    const input = gather(hidden, starts, batch, batchInput);
    if (!overrides?.input) return input;
    const rows = input.states.shape[0];
    if (overrides.input.shape[0] !== rows || overrides.input.shape[1] !== config.hiddenSize || overrides.input.dtype !== 'float32') {
      throw new ShapeMismatchError('overrides.input', [rows, config.hiddenSize], overrides.input.shape, 'float32 rows of the selected sequences');
    }
    return { states: overrides.input as Matrix<'float32'>, lengths: input.lengths };
  };
  // The float block's output for every sequence, batch by batch through the workspace (see the doc above).
  const floatOutput = async (): Promise<Float32Array> => {
    const width = config.hiddenSize;
    const size = hidden.states.shape[0] * width;
    // The released capability's array when it has the size (every element is written below).
    const spare = options.memory?.target;
    const out = spare && spare.length === size ? spare : new Float32Array(size);
    let row = 0;
    for (const lengths of tokenBatches(hidden.lengths, targetTokens)) {
      const n = lengths.reduce((a, b) => a + b, 0);
      const input: HiddenStates = { states: { dtype: 'float32', shape: [n, width], data: hidden.states.data.subarray(row * width, (row + n) * width) }, lengths };
      await workspace.prepare();
      out.set(await llamaBlockForward(config, block, input, backend, { weights: reference, workspace, transientResults: true, arithmetic, rope }), row * width);
      row += n;
    }
    return out;
  };
  const passOptions = (weights: ReadonlyMap<string, Float32Array>, overrides: BlockPassOverrides | undefined) => ({
    weights,
    workspace,
    arithmetic,
    rope,
    ...(overrides?.quantizeInput ? { quantizeInput: overrides.quantizeInput } : {}),
    ...(overrides?.inputGradient === false ? { weightGradientsOnly: true } : {}),
    ...(overrides?.transientResults ? { transientResults: true } : {}),
    ...(overrides?.weightGradientsInto ? { weightGradientsInto: overrides.weightGradientsInto } : {}),
  });
  return {
    lengths: hidden.lengths,
    hiddenSize: config.hiddenSize,
    arithmetic,
    input: (batch) => gather(hidden, starts, batch).states,
    async target(batch) {
      target ??= serialised(() => floatOutput());
      const all = await target;
      return gather({ states: matrix(all), lengths: hidden.lengths }, starts, batch).states;
    },
    forward(weights, batch, overrides) {
      return serialised(async () => {
        await workspace.prepare();
        return matrix(await llamaBlockForward(config, block, passInput(batch, overrides), backend, passOptions(weights, overrides)));
      });
    },
    release() {
      if (released) return;
      released = true;
      const give = options.onRelease;
      // The float output's array when it was computed (the queue holds its pass, so it has settled by then).
      if (give) void queue.then(async () => give({ workspace, target: await target?.catch(() => undefined) }));
    },
    backward(weights, batch, seed, overrides): Promise<BlockBackward> {
      return serialised(async () => {
        await workspace.prepare();
        const r = await llamaBlockBackward(config, block, passInput(batch, overrides), backend, (y) => seed(matrix(y)), passOptions(weights, overrides));
        return { output: matrix(r.output), weightGradients: r.weightGradients, ...(overrides?.inputGradient === false ? {} : { inputGradient: matrix(r.inputGradient) }) };
      });
    },
  };
}

/** `value` when it names a training arithmetic (or is undefined), else an `InvalidArgumentError` on `option`. Internal. */
export function checkArithmetic(option: string, value: unknown): 'native' | 'reference' | undefined {
  if (value !== undefined && value !== 'native' && value !== 'reference') throw new InvalidArgumentError(option, `got ${String(value)}; expected 'native' or 'reference'`);
  return value;
}

/**
 * Default tokens per batch of {@link llamaBlockGradients}' float-output forward: 2048, AutoRound's batch of 8
 * sequences of 256 tokens, so the training passes reuse the same workspace memory.
 */
export const TARGET_BATCH_TOKENS = 2048;
