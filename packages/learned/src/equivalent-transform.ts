import type { BlockView, ModelEdit, StepWarning } from '@bitsmith/core';

/**
 * One learnable channel scale of an equivalent transform (OmniQuant's LET, scales only): the input channels of
 * `linears` are divided by `s` at their producer (a norm's gain, or the rows of a producing linear) and their weight
 * columns are multiplied by `s`, so the float block computes the same function while the quantizer sees `W diag(s)`.
 */
export interface TransformGroup {
  /** What produces the group's input: a norm (the scale folds into its gain) or a linear (into its rows). */
  readonly producer: { readonly kind: 'norm'; readonly name: string } | { readonly kind: 'linear'; readonly name: string };
  /** Full names of the linears that read the input (their columns are scaled). */
  readonly linears: readonly string[];
  /** `log s` per input channel (learned; 0 is the identity). */
  readonly logScale: Float32Array;
}

/**
 * The input groups of a block that an equivalent transform can learn a scale for, among the step's layers: the
 * producer is a norm, or a linear among `layers` without a bias (a bias would need its own trial value), every
 * linear of the group is among `layers`, and none has a run-time input transform (a per-channel scale does not
 * commute with an online Hadamard). Skipped groups that touch `layers` come back as warnings.
 *
 * @example
 * ```ts
 * const { groups, warnings } = transformGroups(context.block!, new Set(context.layers.map((l) => l.name)), 'omniquant');
 * ```
 */
export function transformGroups(block: BlockView, layers: ReadonlySet<string>, step: string): { groups: TransformGroup[]; warnings: StepWarning[] } {
  const groups: TransformGroup[] = [];
  const warnings: StepWarning[] = [];
  for (const group of block.inputGroups) {
    const names = group.linears.map((l) => l.name);
    const inside = names.filter((n) => layers.has(n));
    if (inside.length === 0) continue;
    const skip = (message: string): void => void warnings.push({ step, layer: inside[0]!, message: `equivalent transform skipped for this input group: ${message}` });
    if (group.producer.kind === 'none') continue; // nothing to fold into (grouped-query attention's v -> o): not a warning
    if (inside.length < names.length) {
      skip(`it shares its input with layers outside the step (${names.filter((n) => !layers.has(n)).join(', ')})`);
      continue;
    }
    const transformed = group.linears.find((l) => l.inputTransform);
    if (transformed) {
      skip(`${transformed.name} has a run-time input transform (${transformed.inputTransform!.name})`);
      continue;
    }
    const columns = group.linears[0]!.weight.shape[1];
    if (group.producer.kind === 'linear') {
      const producer = group.producer.linear;
      if (!layers.has(producer.name)) {
        skip(`its producer ${producer.name} is not among the step's layers`);
        continue;
      }
      if (producer.bias) {
        skip(`its producer ${producer.name} has a bias`);
        continue;
      }
      groups.push({ producer: { kind: 'linear', name: producer.name }, linears: names, logScale: new Float32Array(columns) });
    } else {
      groups.push({ producer: { kind: 'norm', name: group.producer.norm.name }, linears: names, logScale: new Float32Array(columns) });
    }
  }
  return { groups, warnings };
}

/** How one layer's weight is transformed: its column scale (as a consumer) and its row scale (as a producer). */
export interface LayerTransform {
  /** Index into the groups of the group whose input the layer reads, or -1. */
  readonly column: number;
  /** Index of the group whose producer the layer is, or -1. */
  readonly row: number;
  /** Whether the column scale's producer is a norm: trial weights then carry `1 / s` on their columns. */
  readonly unscaleColumns: boolean;
}

/**
 * Where each layer sits in the transform groups.
 *
 * @example
 * ```ts
 * const where = layerTransforms(groups).get('model.layers.0.mlp.up_proj'); // { column: 1, row: 2, unscaleColumns: true }
 * ```
 */
export function layerTransforms(groups: readonly TransformGroup[]): Map<string, LayerTransform> {
  const out = new Map<string, { column: number; row: number; unscaleColumns: boolean }>();
  const entry = (name: string) => {
    let e = out.get(name);
    if (!e) out.set(name, (e = { column: -1, row: -1, unscaleColumns: false }));
    return e;
  };
  groups.forEach((g, i) => {
    for (const name of g.linears) {
      const e = entry(name);
      e.column = i;
      e.unscaleColumns = g.producer.kind === 'norm';
    }
    if (g.producer.kind === 'linear') entry(g.producer.name).row = i;
  });
  return out;
}

/**
 * The transformed weight `W~ = diag(1 / r) W diag(c)` (`r`, `c`: `exp` of the row and column groups' log-scales;
 * absent ones are 1), `[rows, columns]` row-major, written into `out`.
 *
 * @example
 * ```ts
 * transformWeight(w, 4, 8, exp(columnLogScale), undefined, out);
 * ```
 */
export function transformWeight(w: Float32Array, rows: number, columns: number, column: Float64Array | undefined, row: Float64Array | undefined, out: Float32Array): Float32Array {
  for (let i = 0; i < rows; i++) {
    const inv = row ? 1 / row[i]! : 1;
    const base = i * columns;
    if (column) for (let j = 0; j < columns; j++) out[base + j] = w[base + j]! * column[j]! * inv;
    else for (let j = 0; j < columns; j++) out[base + j] = w[base + j]! * inv;
  }
  return out;
}

/** `exp` of a log-scale vector, in float64. */
export function scalesOf(logScale: Float32Array): Float64Array {
  const s = new Float64Array(logScale.length);
  for (let j = 0; j < s.length; j++) s[j] = Math.exp(logScale[j]!);
  return s;
}

/**
 * Accumulates the gradients of the log-scales from one layer, given
 * - `transformed`: `W~` ({@link transformWeight}),
 * - `quantized`: `R = Q(W~)` (the dequantized weight),
 * - `gradQuantized`: `dL/dR`, and `gradTransformed`: `dL/dW~` (the quantizer's straight-through backward of it),
 * - `gradTrial`: `dL/dT` for the trial weight `T = R diag(1 / c)` when `unscaleColumns` (a norm-produced input: the
 *   block's norm is unchanged while training, so the trial carries the fold), else `T = R`.
 *
 * `dL/dlog c_j += sum_i dL/dW~_ij W~_ij - [unscaleColumns] sum_i dL/dT_ij T_ij` and
 * `dL/dlog r_i += -sum_j dL/dW~_ij W~_ij`.
 *
 * @example
 * ```ts
 * accumulateScaleGradients(rows, columns, wt, r, gradTrial, gradWt, true, dColumn, undefined);
 * ```
 */
export function accumulateScaleGradients(
  rows: number,
  columns: number,
  transformed: Float32Array,
  trial: Float32Array,
  gradTrial: ArrayLike<number>,
  gradTransformed: ArrayLike<number>,
  unscaleColumns: boolean,
  dColumn: Float64Array | undefined,
  dRow: Float64Array | undefined,
): void {
  for (let i = 0; i < rows; i++) {
    const base = i * columns;
    let rowSum = 0;
    for (let j = 0; j < columns; j++) {
      const k = base + j;
      const term = gradTransformed[k]! * transformed[k]!;
      rowSum += term;
      if (dColumn) dColumn[j] += unscaleColumns ? term - gradTrial[k]! * trial[k]! : term;
    }
    if (dRow) dRow[i] -= rowSum;
  }
}

/**
 * The model edits that fold the learned scales of norm-produced groups into their norms (`scale-norm` by `s`). The
 * scales of linear-produced groups travel in the producing layer's own new weight.
 *
 * @example
 * ```ts
 * const edits = normEdits(groups); // [{ kind: 'scale-norm', target: 'model.layers.0.input_layernorm', divisor }]
 * ```
 */
export function normEdits(groups: readonly TransformGroup[]): ModelEdit[] {
  const edits: ModelEdit[] = [];
  for (const g of groups) {
    if (g.producer.kind !== 'norm') continue;
    const divisor = Float32Array.from(scalesOf(g.logScale));
    edits.push({ kind: 'scale-norm', target: g.producer.name, divisor });
  }
  return edits;
}
