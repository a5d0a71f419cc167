import { InvalidArgumentError } from './errors.js';
import type { Matrix } from './tensor.js';

/**
 * Writes rows `[start, end)` of a held matrix, as float32, into `out` (`(end - start) * columns` floats), for example
 * by decoding a checkpoint's bfloat16 bytes. Must give the same values on every call.
 */
export type HeldRowDecoder = (start: number, end: number, out: Float32Array) => void;

/** Options of {@link heldMatrix}. */
export interface HeldMatrixOptions {
  /** Products read it a block of rows at a time while it is not resident (see {@link HeldMatrixAccess.streamed}). Default false. */
  readonly streamed?: boolean;
  /** Produces the whole matrix as a new float32 array (used instead of `decode` when all rows are read at once). */
  readonly whole?: () => Float32Array;
}

/** What a {@link heldMatrix} offers besides being a `Matrix<'float32'>`; see {@link heldMatrixAccess}. */
export interface HeldMatrixAccess {
  /** Whether the float32 copy is in memory (after the first read of `data`). */
  readonly resident: boolean;
  /**
   * Whether products should read it a block of rows at a time (without keeping a float32 copy) while it is not
   * resident: set for large tables read once per forward pass, such as an embedding used as the LM head, whose rows
   * decode cheaply one block at a time. Held matrices that are not streamed are read whole (`peek`) when they are read
   * without keeping them.
   */
  readonly streamed: boolean;
  /**
   * Rows `[start, end)` as float32: a view of the resident copy when there is one (do not write into it), else decoded
   * into `out` (or a new array) without keeping them.
   */
  rows(start: number, end: number, out?: Float32Array): Float32Array;
  /** The whole matrix as float32 without keeping it (the resident copy when there is one). */
  peek(): Float32Array;
  /** Drops the float32 copy (the next read of `data` decodes again); false when none was resident. */
  release(): boolean;
}

const ACCESS = Symbol.for('bitsmith.heldMatrix');

/**
 * A `Matrix<'float32'>` whose values are held in another form (for example a checkpoint's bfloat16 bytes) until its
 * `data` is first read: that read decodes the whole matrix and keeps the float32 copy, so the object behaves like a
 * plain matrix (same identity, same array on every read). Code that knows about held matrices
 * ({@link heldMatrixAccess}) reads rows without that copy: an embedding lookup decodes only the rows it needs, an LM
 * head's product decodes blocks of rows, a fingerprint hashes the rows one block at a time.
 *
 * @param rows - Rows of the matrix.
 * @param columns - Columns of the matrix.
 * @param decode - Writes rows `[start, end)` as float32 into its `out` argument.
 * @param options - `streamed` (products read it in blocks of rows while it is not resident), `whole` (produces the whole
 *   matrix at once, when that is cheaper than `decode` over all rows).
 * @example
 * ```ts
 * const table = heldMatrix(vocab, hidden, (start, end, out) => decodeBf16(bytes.subarray(start * hidden * 2, end * hidden * 2), out));
 * heldMatrixAccess(table)!.rows(42, 43); // one row, decoded; table.data is not created
 * ```
 */
export function heldMatrix(rows: number, columns: number, decode: HeldRowDecoder, options: HeldMatrixOptions = {}): Matrix<'float32'> {
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(columns) || columns < 0) {
    throw new InvalidArgumentError('shape', `expected non-negative integer rows and columns; got ${rows} x ${columns}`);
  }
  let copy: Float32Array | undefined;
  const decodeRows = (start: number, end: number, out?: Float32Array): Float32Array => {
    if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= rows)) {
      throw new InvalidArgumentError('rows', `[${start}, ${end}) is not a range of rows of a ${rows} x ${columns} matrix`);
    }
    if (copy) return copy.subarray(start * columns, end * columns);
    const length = (end - start) * columns;
    if (!out && start === 0 && end === rows && options.whole) {
      const whole = options.whole();
      if (whole.length !== length) throw new InvalidArgumentError('whole', `gave ${whole.length} values for a ${rows} x ${columns} matrix`);
      return whole;
    }
    if (out && out.length < length) throw new InvalidArgumentError('out', `holds ${out.length} floats; ${end - start} rows need ${length}`);
    const target = out ? out.subarray(0, length) : new Float32Array(length);
    decode(start, end, target);
    return target;
  };
  const access: HeldMatrixAccess = {
    get resident() {
      return copy !== undefined;
    },
    streamed: options.streamed === true,
    rows: decodeRows,
    peek: () => copy ?? decodeRows(0, rows),
    release() {
      const had = copy !== undefined;
      copy = undefined;
      return had;
    },
  };
  const matrix = {
    dtype: 'float32' as const,
    shape: [rows, columns] as const,
    get data(): Float32Array {
      return (copy ??= decodeRows(0, rows));
    },
  };
  Object.defineProperty(matrix, ACCESS, { value: access, enumerable: false });
  return matrix as Matrix<'float32'>;
}

/** The {@link HeldMatrixAccess} of a matrix made by {@link heldMatrix}; undefined for any other value. */
export function heldMatrixAccess(value: unknown): HeldMatrixAccess | undefined {
  return value !== null && typeof value === 'object' ? ((value as Record<symbol, HeldMatrixAccess | undefined>)[ACCESS] ?? undefined) : undefined;
}

/** Whether `value` is a held matrix whose float32 copy is not in memory (reading its `data` would decode it). */
export function isHeldOnly(value: unknown): boolean {
  const access = heldMatrixAccess(value);
  return access !== undefined && !access.resident;
}

/**
 * Whether two matrices are the same weight: the same object, or (both in memory as float32) the same array. Never
 * decodes a held matrix: one that is not resident can share its array with nothing (its copy is made on first read).
 */
export function sameMatrix(a: Matrix<'float32'> | Matrix, b: Matrix<'float32'> | Matrix): boolean {
  if (a === b) return true;
  if (isHeldOnly(a) || isHeldOnly(b)) return false;
  return a.data === b.data;
}

/**
 * An independent copy of a matrix for untying a shared weight: a held matrix that is not resident gives a new held
 * matrix over the same rows (nothing decoded now, its own float32 copy later), any other matrix a float32 copy.
 */
export function copyMatrix(value: Matrix<'float32'> | Matrix): Matrix<'float32'> {
  const [rows, columns] = value.shape;
  const held = heldMatrixAccess(value);
  if (held && !held.resident) {
    return heldMatrix(
      rows,
      columns,
      (start, end, out) => {
        const got = held.rows(start, end, out);
        if (got !== out) out.set(got);
      },
      { streamed: held.streamed },
    );
  }
  return { dtype: 'float32', shape: [rows, columns], data: Float32Array.from(value.data) };
}
