import type { Matrix } from './tensor.js';

/** A sparse `[rows, columns]` float32 matrix in compressed sparse row form (the "sparse" half of dense-and-sparse). */
export interface CsrMatrix {
  readonly shape: readonly [rows: number, columns: number];
  /** `rows + 1` offsets into `columnIndices` / `values`. */
  readonly rowPointers: Int32Array;
  /** Column of every stored value, ascending within a row. */
  readonly columnIndices: Int32Array;
  /** The stored values, float32. */
  readonly values: Float32Array;
}

/**
 * Storage bits of a CSR matrix as exporters write it: float32 values, column indices of 16 bits when the row
 * length is at most 65536 (32 otherwise), and 32-bit row pointers.
 *
 * @example
 * ```ts
 * csrStorageBits(sparse) / (rows * columns); // extra bits per weight
 * ```
 */
export function csrStorageBits(csr: CsrMatrix): number {
  const indexBits = csr.shape[1] <= 65536 ? 16 : 32;
  return csr.values.length * (32 + indexBits) + csr.rowPointers.length * 32;
}

/**
 * Builds a CSR matrix holding the entries of `weight` at the flat (row-major) positions in `positions`.
 *
 * @example
 * ```ts
 * const sparse = csrFromPositions(w, new Int32Array([0, 17]));
 * ```
 */
export function csrFromPositions(weight: Matrix, positions: Int32Array): CsrMatrix {
  const [rows, columns] = weight.shape;
  const sorted = Int32Array.from(positions).sort();
  const rowPointers = new Int32Array(rows + 1);
  const columnIndices = new Int32Array(sorted.length);
  const values = new Float32Array(sorted.length);
  for (let i = 0; i < sorted.length; i++) {
    const p = sorted[i]!;
    rowPointers[Math.floor(p / columns) + 1]! += 1;
    columnIndices[i] = p % columns;
    values[i] = weight.data[p]!;
  }
  for (let r = 0; r < rows; r++) rowPointers[r + 1]! += rowPointers[r]!;
  return { shape: [rows, columns], rowPointers, columnIndices, values };
}
