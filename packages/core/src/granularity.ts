import { InvalidArgumentError } from './errors.js';

/**
 * Which weights share one scale (and zero point). Weights are `[outFeatures, inFeatures]`.
 * - `tensor`: one scale for the whole matrix.
 * - `channel`: one per output channel (row).
 * - `group`: one per `size` consecutive input weights of a row; `size` must divide the row length.
 * - `block`: one per `rows x columns` tile (edge tiles may be partial).
 */
export type Granularity =
  | { readonly type: 'tensor' }
  | { readonly type: 'channel' }
  | { readonly type: 'group'; readonly size: number }
  | { readonly type: 'block'; readonly rows: number; readonly columns: number };

/** Where each element's scale lives. */
export interface GroupLayout {
  /** Number of groups (= number of scales). */
  readonly count: number;
  /** Shape of the scale array: `[1, 1]`, `[rows, 1]`, `[rows, columns / size]` or `[ceil(rows / r), ceil(columns / c)]`. */
  readonly scaleShape: readonly [number, number];
  /**
   * Group index of each element, row-major (`rows * columns` entries). {@link groupLayout} computes it on first read
   * and keeps it: code that needs only `count` and `scaleShape` (or that finds groups arithmetically, as the
   * group-by-group path of `dequantize` and GPTQ do) never pays for it.
   */
  readonly ids: Int32Array;
}

function positiveInteger(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError(name, `got ${v}; expected a positive integer`);
}

/** Checks a granularity against a `[rows, columns]` matrix and throws a clear error when it does not fit. */
export function validateGranularity(granularity: Granularity, rows: number, columns: number): void {
  switch (granularity.type) {
    case 'tensor':
    case 'channel':
      return;
    case 'group':
      positiveInteger('granularity.size', granularity.size);
      if (columns % granularity.size !== 0) {
        throw new InvalidArgumentError(
          'granularity.size',
          `group size ${granularity.size} does not divide the row length ${columns}; expected a divisor of ${columns}`,
        );
      }
      return;
    case 'block':
      positiveInteger('granularity.rows', granularity.rows);
      positiveInteger('granularity.columns', granularity.columns);
      return;
    default:
      throw new InvalidArgumentError('granularity.type', `got '${(granularity as { type: string }).type}'; expected tensor, channel, group or block`);
  }
}

/**
 * Computes the group of every element of a `[rows, columns]` matrix. With a `permutation` (act-order: the order in
 * which a solver visited the input columns) and group granularity, groups are formed along the permuted order: column
 * `permutation[p]` belongs to group `floor(p / size)` of its row (GPTQ's `g_idx`).
 *
 * @example
 * ```ts
 * groupLayout(2, 8, { type: 'group', size: 4 }).scaleShape; // [2, 2]
 * ```
 */
export function groupLayout(rows: number, columns: number, granularity: Granularity, permutation?: Int32Array): GroupLayout {
  validateGranularity(granularity, rows, columns);
  if (permutation && granularity.type === 'group') return permutedGroupLayout(rows, columns, granularity.size, permutation);
  const lazy = (count: number, scaleShape: readonly [number, number], fill: (ids: Int32Array) => void): GroupLayout => {
    let ids: Int32Array | undefined;
    return {
      count,
      scaleShape,
      get ids(): Int32Array {
        if (!ids) {
          ids = new Int32Array(rows * columns);
          fill(ids);
        }
        return ids;
      },
    };
  };
  switch (granularity.type) {
    case 'tensor':
      return lazy(1, [1, 1], () => undefined);
    case 'channel':
      return lazy(rows, [rows, 1], (ids) => {
        for (let r = 0; r < rows; r++) ids.fill(r, r * columns, (r + 1) * columns);
      });
    case 'group': {
      const size = granularity.size;
      const perRow = columns / size;
      return lazy(rows * perRow, [rows, perRow], (ids) => {
        for (let r = 0; r < rows; r++) {
          for (let g = 0; g < perRow; g++) ids.fill(r * perRow + g, r * columns + g * size, r * columns + (g + 1) * size);
        }
      });
    }
    case 'block': {
      const gr = Math.ceil(rows / granularity.rows);
      const gc = Math.ceil(columns / granularity.columns);
      return lazy(gr * gc, [gr, gc], (ids) => {
        for (let r = 0; r < rows; r++) {
          const base = Math.floor(r / granularity.rows) * gc;
          for (let c = 0; c < columns; c++) ids[r * columns + c] = base + Math.floor(c / granularity.columns);
        }
      });
    }
  }
}

/** A short label: `tensor`, `channel`, `g128`, `b64x64`. */
export function granularityLabel(granularity: Granularity): string {
  switch (granularity.type) {
    case 'tensor':
    case 'channel':
      return granularity.type;
    case 'group':
      return `g${granularity.size}`;
    case 'block':
      return `b${granularity.rows}x${granularity.columns}`;
  }
}

function permutedGroupLayout(rows: number, columns: number, size: number, permutation: Int32Array): GroupLayout {
  if (permutation.length !== columns) {
    throw new InvalidArgumentError('permutation', `has ${permutation.length} entries; expected one per input column (${columns})`);
  }
  const seen = new Uint8Array(columns);
  for (const c of permutation) {
    if (!(c >= 0 && c < columns) || seen[c]) throw new InvalidArgumentError('permutation', `is not a permutation of 0..${columns - 1} (entry ${c})`);
    seen[c] = 1;
  }
  const perRow = columns / size;
  const ids = new Int32Array(rows * columns);
  for (let r = 0; r < rows; r++) {
    for (let p = 0; p < columns; p++) ids[r * columns + permutation[p]!] = r * perRow + Math.floor(p / size);
  }
  return { count: rows * perRow, scaleShape: [rows, perRow], ids };
}

/** GPTQ's `g_idx`: the group of each input column under a permutation (act-order) or in natural order. */
export function groupIndexOfColumns(columns: number, size: number, permutation?: Int32Array): Int32Array {
  const g = new Int32Array(columns);
  for (let p = 0; p < columns; p++) g[permutation ? permutation[p]! : p] = Math.floor(p / size);
  return g;
}
