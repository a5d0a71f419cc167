import type * as tf from '@tensorflow/tfjs-core';
import {
  InvalidArgumentError,
  matrix,
  type BlockView,
  type LinearInputCallback,
  type LinearView,
  type Matrix,
  type NormView,
  type QuantizableModel,
  type RuntimeInputTransform,
} from '@bitsmith/core';
import type { TfjsGraphLinear, TfjsGraphModel } from './tfjs-graph-model.js';

/** Turns a batch of token sequences into the graph's input tensors (the caller disposes them). */
export type TfjsGraphInputEncoder = (sequences: readonly ArrayLike<number>[]) => Record<string, tf.Tensor>;

/** Options of {@link tfjsQuantizableModel}. */
export interface TfjsQuantizableModelOptions {
  /** Builds the graph's inputs from token sequences (for the Universal Sentence Encoder: `sentenceEncoderInputs`). */
  encodeInputs: TfjsGraphInputEncoder;
  /**
   * Names the block of a linear from its node name. Default: the `Layer_N` / `layer_N` / `layers.N` segment of
   * the node name; linears outside any layer go to block `input` (before the first layer) or `head` (after).
   */
  blockOf?: (linear: TfjsGraphLinear) => string | undefined;
  /** Largest number of padded tokens (sequences x longest sequence) per graph execution. Default 4096. */
  maxBatchTokens?: number;
  /** Reported as `hiddenSize`. Default: the most common input width of the linears. */
  hiddenSize?: number;
  /** Reported as `architecture`. Default `tfjs-graph`. */
  architecture?: string;
}

/** Hidden-state handle of {@link tfjsQuantizableModel}: the calibration sequences, batched by length. */
interface TfjsHandle {
  readonly sequences: readonly ArrayLike<number>[];
  readonly batches: readonly (readonly number[])[];
}

const LAYER = /(?:^|\/)((?:[Ll]ayers?)[_.](\d+))(?:\/|$)/;
const OP_SEGMENTS = new Set(['MatMul', 'Conv2D', 'Tensordot', 'BiasAdd']);

function defaultBlockOf(linear: TfjsGraphLinear): string | undefined {
  return LAYER.exec(linear.node)?.[1];
}

function shortName(linear: TfjsGraphLinear, block: string): string {
  const segments = linear.node.split('/').filter((s) => !OP_SEGMENTS.has(s));
  const blockAt = segments.indexOf(block);
  const tail = blockAt >= 0 ? segments.slice(blockAt + 1) : segments;
  return `${block}/${tail.slice(-2).join('/')}`;
}

/**
 * Groups sequence indices into batches of similar length with at most `maxTokens` padded tokens each (longest
 * first), so graph executions waste little work on padding.
 */
export function lengthBatches(sequences: readonly ArrayLike<number>[], maxTokens = 4096): number[][] {
  const order = sequences.map((_, i) => i).sort((a, b) => sequences[b]!.length - sequences[a]!.length || a - b);
  const batches: number[][] = [];
  let current: number[] = [];
  let longest = 0;
  for (const i of order) {
    const length = sequences[i]!.length;
    const nextLongest = Math.max(longest, length);
    if (current.length > 0 && nextLongest * (current.length + 1) > maxTokens) {
      batches.push(current);
      current = [];
      longest = 0;
    }
    current.push(i);
    longest = Math.max(longest, length);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * Rows of a captured tensor that belong to real tokens. The tensor holds one row per token (`[tokens, C]`, as after
 * a gather of the valid positions), one row per sequence (`[batch, C]`, after pooling: kept as is), or one row per
 * padded position (`[batch, longest, ..., C]`): then the positions past each sequence's end are dropped. Rows come
 * out in (sequence, position) order.
 */
export function tokenRows(data: Float32Array, columns: number, lengths: readonly number[]): Float32Array {
  const rows = data.length / columns;
  const tokens = lengths.reduce((a, b) => a + b, 0);
  if (rows === tokens || rows === lengths.length) return data; // per token, or per sequence (pooled)
  const longest = Math.max(...lengths);
  if (rows !== lengths.length * longest) {
    throw new InvalidArgumentError('capture', `a captured tensor has ${rows} rows; expected ${tokens} (tokens) or ${lengths.length} x ${longest} (padded)`);
  }
  const out = new Float32Array(tokens * columns);
  let o = 0;
  for (let b = 0; b < lengths.length; b++) {
    const length = lengths[b]!;
    out.set(data.subarray(b * longest * columns, (b * longest + length) * columns), o);
    o += length * columns;
  }
  return out;
}

interface LinearEntry {
  readonly view: LinearView;
  readonly linear: TfjsGraphLinear;
}

/**
 * Presents a {@link TfjsGraphModel} as core's `QuantizableModel`, so the recipe runner (GPTQ, RTN, AWQ-style
 * statistics) runs on it. Blocks are the graph's transformer layers (`Layer_0`, `Layer_1`, ...) plus `input` / `head`
 * blocks for linears outside them; each block's linears are views whose weights read from and write to the graph.
 *
 * Execution: tfjs runs the graph, not a block at a time: the hidden-state handle is the calibration batch itself,
 * and `runBlock(i)` executes the graph up to block i's linears with the current weights (earlier blocks already
 * quantized, so calibration is sequential as in GPTQ) and captures each linear's input as an extra output, with
 * padding positions removed. Each linear is observed once per call with all calibration tokens. Linears that read
 * the same tensor get the same array, so the runner computes their Hessian once.
 *
 * The model has blocks only: no language-model head capability (core's `hasLanguageModelHead` is false), so
 * steps and tools that need a head (a residual rotation, logits) refuse it with core's `MissingCapabilityError`.
 * Bias and input-transform writes are refused with `InvalidArgumentError` (the graph cannot take run-time transforms).
 *
 * @example
 * ```ts
 * const encoder = await loadSentenceEncoder();
 * const model = tfjsQuantizableModel(encoder.model, { encodeInputs: sentenceEncoderInputs });
 * const report = await runRecipe(model, [gptq({ format: 'int4', granularity: { type: 'group', size: 128 } })], sequences);
 * ```
 */
export function tfjsQuantizableModel(graph: TfjsGraphModel, options: TfjsQuantizableModelOptions): QuantizableModel {
  const blockOf = options.blockOf ?? defaultBlockOf;
  const maxBatchTokens = options.maxBatchTokens ?? 4096;
  // Assign blocks: named layers in numeric order; linears outside them before the first layer -> 'input', else 'head'.
  const named = graph.linears.map((l) => blockOf(l));
  const firstLayer = named.findIndex((b) => b !== undefined);
  const blockNames = graph.linears.map((_, i) => named[i] ?? (firstLayer >= 0 && i < firstLayer ? 'input' : 'head'));
  const layerNumber = (name: string) => (name === 'input' ? -Infinity : name === 'head' ? Infinity : Number(/(\d+)$/.exec(name)?.[1] ?? 0));
  const order = [...new Set(blockNames)].sort((a, b) => layerNumber(a) - layerNumber(b));

  const entries: LinearEntry[][] = order.map(() => []);
  const usedNames = new Set<string>();
  graph.linears.forEach((linear, i) => {
    const block = blockNames[i]!;
    let name = shortName(linear, block);
    if (usedNames.has(name)) name = linear.node;
    usedNames.add(name);
    let cached: Matrix | undefined;
    const view: LinearView = {
      name,
      kind: name.split('/').pop()!,
      get weight(): Matrix {
        return (cached ??= graph.getWeight(linear));
      },
      set weight(value: Matrix) {
        graph.setWeight(linear, value);
        cached = value;
      },
      get bias(): Float32Array | undefined {
        return undefined;
      },
      set bias(value: Float32Array | undefined) {
        if (value !== undefined) throw new InvalidArgumentError('bias', `${name}: bias edits are not supported on tfjs graph models`);
      },
      get inputTransform(): RuntimeInputTransform | undefined {
        return undefined;
      },
      set inputTransform(value: RuntimeInputTransform | undefined) {
        if (value !== undefined) throw new InvalidArgumentError('inputTransform', `${name}: a tfjs graph cannot take run-time input transforms`);
      },
    };
    entries[order.indexOf(block)]!.push({ view, linear });
  });

  const blocks: BlockView[] = order.map((name, index) => ({
    index,
    name,
    linears: entries[index]!.map((e) => e.view),
    norms: [] as NormView[],
    // No folding producers are exposed: scales cannot be folded into a tfjs graph's ops.
    inputGroups: entries[index]!.map((e) => ({ linears: [e.view], producer: { kind: 'none' as const } })),
  }));

  const widths = new Map<number, number>();
  for (const l of graph.linears) widths.set(l.inFeatures, (widths.get(l.inFeatures) ?? 0) + 1);
  const hiddenSize = options.hiddenSize ?? [...widths.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;

  async function runBlock(index: number, hidden: unknown, observe?: LinearInputCallback): Promise<unknown> {
    const handle = hidden as TfjsHandle;
    const blockEntries = entries[index];
    if (!blockEntries) throw new InvalidArgumentError('index', `block ${index} does not exist (the model has ${blocks.length})`);
    if (!observe) return handle; // all state lives in the weights: nothing to propagate
    const captures = [...new Set(blockEntries.map((e) => e.linear.input))];
    const columns = captures.map((c) => blockEntries.find((e) => e.linear.input === c)!.linear.inFeatures);
    const chunks: Float32Array[][] = captures.map(() => []);
    for (const batch of handle.batches) {
      const sequences = batch.map((i) => handle.sequences[i]!);
      const inputs = options.encodeInputs(sequences);
      try {
        const outs = await graph.execute(inputs, captures);
        try {
          const lengths = sequences.map((s) => s.length);
          for (const [c, tensor] of outs.entries()) {
            const data = (await tensor.data()) as Float32Array;
            const rows = tokenRows(data, columns[c]!, lengths);
            chunks[c]!.push(rows === data ? data.slice() : rows);
          }
        } finally {
          for (const t of outs) t.dispose();
        }
      } finally {
        for (const t of Object.values(inputs)) t.dispose();
      }
    }
    const matrices = captures.map((_, c) => {
      const total = chunks[c]!.reduce((a, x) => a + x.length, 0);
      const data = new Float32Array(total);
      let o = 0;
      for (const x of chunks[c]!) {
        data.set(x, o);
        o += x.length;
      }
      chunks[c] = [];
      return matrix<'float32'>(data, total / columns[c]!, columns[c]!);
    });
    for (const e of blockEntries) await observe(e.view.name, matrices[captures.indexOf(e.linear.input)]!);
    return handle;
  }

  return {
    architecture: options.architecture ?? 'tfjs-graph',
    hiddenSize,
    blocks,
    embed: async (sequences) => {
      if (sequences.length === 0) throw new InvalidArgumentError('sequences', 'needs at least one token sequence');
      if (sequences.some((s) => s.length === 0)) throw new InvalidArgumentError('sequences', 'every sequence needs at least one token');
      const handle: TfjsHandle = { sequences, batches: lengthBatches(sequences, maxBatchTokens) };
      return handle;
    },
    runBlock,
  };
}
