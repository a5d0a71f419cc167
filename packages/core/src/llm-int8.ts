import { fakeQuantizeActivations, activationQuantizer, activationSchemeFromDescription, composeInputTransforms, validateActivationScheme, type ActivationScheme } from './activation-quantization.js';
import { z } from 'zod';
import { AbortError, InvalidArgumentError } from './errors.js';
import { activationSchemeOption, checkOptions, factoryOptions, formatNameOption, granularityOption } from './factory-options.js';
import { minifloat, FLOAT16 } from './minifloat.js';
import type { RuntimeInputTransform } from './model-view.js';
import { parseFormat } from './number-format.js';
import { quantize } from './quantize.js';
import type { LayerState, Quantizer } from './quantizer.js';
import type { ModelEdit } from './model-edit.js';
import { decodeStored, storedBitsPerWeight, type StoredForm } from './stored-form.js';
import type { Granularity } from './granularity.js';
import type { Matrix } from './tensor.js';

/**
 * LLM.int8()'s outlier columns (Dettmers et al., arXiv:2208.07339, section 3.2): the input channels whose calibration
 * magnitude `max |x_j|` reaches `threshold` (the paper's 6.0), or, with `topK`, the `topK` largest (ties by index),
 * ascending.
 *
 * @example
 * ```ts
 * outlierColumns(Float32Array.of(0.5, 7, 2, 9), { threshold: 6 }); // Int32Array [1, 3]
 * ```
 */
export function outlierColumns(absMax: Float32Array, options: { threshold?: number; topK?: number } = {}): Int32Array {
  if (options.topK !== undefined) {
    if (!Number.isInteger(options.topK) || options.topK < 0 || options.topK > absMax.length) throw new InvalidArgumentError('topK', `got ${options.topK}; expected an integer from 0 to ${absMax.length}`);
    const order = Array.from(absMax.keys()).sort((a, b) => absMax[b]! - absMax[a]! || a - b);
    return Int32Array.from(order.slice(0, options.topK)).sort();
  }
  const threshold = options.threshold ?? 6;
  if (!(threshold > 0)) throw new InvalidArgumentError('threshold', `got ${threshold}; expected a positive number`);
  const out: number[] = [];
  for (let j = 0; j < absMax.length; j++) if (absMax[j]! >= threshold) out.push(j);
  return Int32Array.from(out);
}

/**
 * An activation quantizer that leaves some input columns in 16 bits (LLM.int8()'s decomposition at run time): the
 * other columns are gathered, fake-quantized with `scheme` (per token, as the paper's vector-wise quantization, or any
 * other dynamic scheme), and scattered back; the `passthrough` columns are rounded to float16, as the 16-bit matmul
 * holds them. `describe()` gives `{ kind: 'llm-int8-activations', quantizer, passthroughColumns }`.
 *
 * @throws InvalidArgumentError for a static scheme (the gathered columns differ from the calibrated ones) or a column
 *   index out of range.
 * @example
 * ```ts
 * layer.inputTransform = outlierPassthroughQuantizer({ format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true }, Int32Array.of(3, 17));
 * ```
 */
export function outlierPassthroughQuantizer(scheme: ActivationScheme, passthrough: Int32Array): RuntimeInputTransform {
  validateActivationScheme(scheme);
  if (!scheme.dynamic) throw new InvalidArgumentError('scheme.dynamic', 'LLM.int8() quantizes the non-outlier columns with run-time scales; expected dynamic: true');
  const keep = Int32Array.from(passthrough).sort();
  const half = minifloat(FLOAT16);
  const inner = activationQuantizer(scheme);
  let buffer = new Float32Array(0);
  return {
    name: 'llm-int8-activations',
    apply: (input, rows, columns) => {
      const isOutlier = new Uint8Array(columns);
      for (const j of keep) {
        if (j < 0 || j >= columns) throw new InvalidArgumentError('passthrough', `column ${j} is outside the ${columns} input channels`);
        isOutlier[j] = 1;
      }
      const width = columns - keep.length;
      if (buffer.length < rows * width) buffer = new Float32Array(rows * width);
      for (let r = 0; r < rows; r++) {
        let k = r * width;
        const o = r * columns;
        for (let j = 0; j < columns; j++) {
          if (isOutlier[j]) input[o + j] = half.round(input[o + j]!);
          else buffer[k++] = input[o + j]!;
        }
      }
      if (width > 0) fakeQuantizeActivations(buffer, rows, width, scheme);
      for (let r = 0; r < rows; r++) {
        let k = r * width;
        const o = r * columns;
        for (let j = 0; j < columns; j++) if (!isOutlier[j]) input[o + j] = buffer[k++]!;
      }
    },
    describe: () => ({ kind: 'llm-int8-activations', quantizer: inner.describe(), passthroughColumns: Array.from(keep) }),
  };
}

/**
 * Rebuilds an {@link outlierPassthroughQuantizer} from its `describe()` (as a fake-quant `config.json` records it).
 *
 * @throws InvalidArgumentError when the description is not one, naming the field.
 */
export function outlierPassthroughQuantizerFromDescription(description: Record<string, unknown>): RuntimeInputTransform {
  if (description.kind !== 'llm-int8-activations') throw new InvalidArgumentError('kind', `got '${String(description.kind)}'; expected 'llm-int8-activations'`);
  const columns = description.passthroughColumns;
  if (!Array.isArray(columns) || columns.some((c) => !Number.isInteger(c) || c < 0)) throw new InvalidArgumentError('passthroughColumns', 'expected a list of column indices');
  const { scheme } = activationSchemeFromDescription((description.quantizer ?? {}) as Record<string, unknown>);
  return outlierPassthroughQuantizer(scheme, Int32Array.from(columns as number[]));
}

/** Options of {@link llmInt8}. */
export interface LlmInt8Options {
  /** Outlier magnitude: input channels with calibration `max |x_j| >= threshold` stay in 16 bits. Default 6.0 (the paper's). */
  threshold?: number;
  /** Instead of a threshold: keep the `topK` channels of largest calibration magnitude per layer. */
  topK?: number;
  /** Weight format of the other columns. Default `int8` (symmetric). */
  format?: string;
  /** Weight granularity. Default per output channel (the paper's vector-wise row scales). */
  granularity?: Granularity;
  /** Run-time quantization of the other input columns (dynamic). Default int8 per token (vector-wise). */
  activations?: ActivationScheme;
}

/** The outlier options of LLM.int8(), checked by the same schemas in recipe files and in code. */
export const llmInt8OutlierOptions = {
  threshold: z.number().positive().optional(),
  topK: z.number().int().nonnegative().optional(),
};

const llmInt8OptionsSchema = factoryOptions<LlmInt8Options>({
  ...llmInt8OutlierOptions,
  format: formatNameOption.optional(),
  granularity: granularityOption.optional(),
  activations: activationSchemeOption.optional(),
});

/**
 * LLM.int8() mixed-precision decomposition (Dettmers et al., arXiv:2208.07339) as a quantize step: for each selected
 * linear, the outlier input columns ({@link outlierColumns} of the calibration `max |x_j|`) keep their weights in 16
 * bits and their activations bypass activation quantization; every other column is int8 (weights per output row over
 * the non-outlier columns, inputs per token at run time). The stored form is `sparse-outliers`: an int8 grid whose
 * outlier columns are zero, plus the float16-rounded outlier columns as sparse values. The step installs the
 * run-time quantizer ({@link outlierPassthroughQuantizer}) on each layer itself, so the recipe sets no
 * `inputActivations` for these layers. Exporters that hold grids only refuse the form by name; `--save fake` keeps it.
 *
 * Requires `{ kind: 'input-absmax' }`.
 *
 * @example
 * ```ts
 * const recipe = { stages: [{ step: llmInt8({ threshold: 6 }) }] };
 * ```
 */
export function llmInt8(options: LlmInt8Options = {}): Quantizer {
  checkOptions('llmInt8', llmInt8OptionsSchema, options);
  const format = parseFormat(options.format ?? 'int8');
  if (format.type !== 'int') throw new InvalidArgumentError('format', `got ${options.format}; LLM.int8() decomposes integer grids (int8, int4, ...)`);
  const activations: ActivationScheme = options.activations ?? { format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true };
  outlierPassthroughQuantizer(activations, new Int32Array(0)); // validates the scheme
  if (options.topK === undefined) outlierColumns(new Float32Array(0), { threshold: options.threshold ?? 6 });
  const half = minifloat(FLOAT16);
  return {
    specificationVersion: 'v2',
    id: 'llm-int8',
    kind: 'quantize',
    stores: ['sparse-outliers'],
    requires: [{ kind: 'input-absmax' }],
    async run(context) {
      const layers: LayerState[] = [];
      // Step contract v2: the outlier passthrough is installed by a model edit the runner applies, not through the view.
      const edits: ModelEdit[] = [];
      const views = new Map((context.block?.linears ?? []).map((v) => [v.name, v]));
      for (const [i, layer] of context.layers.entries()) {
        if (context.signal?.aborted) throw new AbortError();
        const absMax = context.statistics(layer.name).inputAbsMax;
        if (!absMax) throw new InvalidArgumentError('statistics', `no input-absmax statistic for ${layer.name}`);
        const outliers = outlierColumns(absMax, options.topK !== undefined ? { topK: options.topK } : { threshold: options.threshold ?? 6 });
        const stored = decompose(layer.weight, outliers, format, options.granularity, half.round);
        layers.push({ ...layer, weight: decodeStored(stored), stored, bitsPerWeight: storedBitsPerWeight(stored) });
        const view = views.get(layer.name);
        if (view) edits.push({ kind: 'set-input-transform', target: view.name, transform: composeInputTransforms(view.inputTransform, outlierPassthroughQuantizer(activations, outliers)) });
        context.progress?.(i + 1, context.layers.length, layer.name);
      }
      return { layers, warnings: [], edits };
    },
  };
}

/** The int grid of `weight` with the outlier columns zeroed, plus those columns (float16-rounded) as sparse values. */
function decompose(weight: Matrix, outliers: Int32Array, format: ReturnType<typeof parseFormat>, granularity: Granularity | undefined, round16: (x: number) => number): StoredForm {
  const [rows, columns] = weight.shape;
  const rest = Float32Array.from(weight.data);
  for (let r = 0; r < rows; r++) for (const j of outliers) rest[r * columns + j] = 0;
  const grid = quantize({ dtype: 'float32', shape: [rows, columns], data: rest }, { format, ...(granularity ? { granularity } : {}) });
  const k = outliers.length;
  const rowPointers = new Int32Array(rows + 1);
  const columnIndices = new Int32Array(rows * k);
  const values = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    rowPointers[r + 1] = (r + 1) * k;
    outliers.forEach((j, n) => {
      columnIndices[r * k + n] = j;
      values[r * k + n] = round16(weight.data[r * columns + j]!);
    });
  }
  return { kind: 'sparse-outliers', base: { kind: 'grid', tensor: grid }, sparse: { shape: [rows, columns], rowPointers, columnIndices, values } };
}
