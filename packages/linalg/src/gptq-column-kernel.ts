import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import { instantiateKernel } from './backends/wasm-load.js';
import { PAGE_BYTES } from './backends/wasm-memory.js';

/** Arguments of {@link GptqColumnKernel.quantizeColumns}. */
export interface GptqColumnArguments {
  /** Output features (length of one column). */
  readonly rows: number;
  /** Columns in this call (consecutive in processing order). */
  readonly count: number;
  /** The columns, `count` runs of `rows` float32 each (a slice of GPTQ's transposed weight). Not modified. */
  readonly columns: Float32Array;
  /** GPTQ's upper factor `U` (`n x n`, row-major float64). */
  readonly factor: Float64Array;
  /** `n`, the factor's size. */
  readonly size: number;
  /** Processing index of the first column: the call reads `U[start + i, start + j]`. */
  readonly start: number;
  /** Scale of each row (`<= 0`: the row takes its `spare` code). */
  readonly scale: Float64Array;
  /** Zero point of each row (0 for symmetric grids). */
  readonly zero: Float64Array;
  /** Code of each row whose scale is not positive. */
  readonly spare: Float64Array;
  /** The grid: `code = clamp(round_half_even(w / s + z), low, high) + shift`, decoded as `code - shift`. */
  readonly low: number;
  readonly high: number;
  readonly shift: number;
  /** Out: the scaled errors `(w - q) / U_ii`, `count` runs of `rows`. */
  readonly errors: Float32Array;
  /** Out: the codes, `count` runs of `rows`. */
  readonly codes: Uint8Array;
}

/** GPTQ's column loop for integer grids in WebAssembly SIMD; see {@link createGptqColumnKernel}. */
export interface GptqColumnKernel {
  /**
   * Quantizes `count` consecutive columns one after the other: each column is rounded to the grid, its scaled error
   * `(w - q) / U_ii` is written to `errors`, and that error updates the call's later columns (`w_j -= U_ij err_i`,
   * on a copy). The caller applies the errors to all columns after the call (the lazy-batch GEMM).
   */
  quantizeColumns(args: GptqColumnArguments): void;
}

interface Exports {
  readonly memory: { buffer: ArrayBuffer; grow(pages: number): number };
  readonly HEAP_BASE: { value: number };
  quantizeColumns(w: number, err: number, codes: number, u: number, scale: number, zero: number, spare: number, rows: number, k: number, lo: number, hi: number, shift: number): void;
}

function kernelUrls(): URL[] {
  // `../wasm` from src/*.ts (vitest runs the sources; the built file is in packages/linalg/wasm).
  return [new URL('./gptq-columns.wasm', import.meta.url), new URL('../wasm/gptq-columns.wasm', import.meta.url)];
}

/**
 * GPTQ's inner column loop (arXiv:2210.17323, Algorithm 1's lines inside a block) for integer grids, in WebAssembly
 * with 128-bit SIMD. The arithmetic is the scalar loop's, operation for operation in float64 with float32 stores and
 * no fused multiply-add, so codes and errors are bit-identical to it (tested against the JavaScript loop in
 * `@bitsmith/solvers`). Each call copies its columns, the factor's `count x count` block and the row parameters into
 * the kernel's own memory (about `9 * rows * count` bytes) and the codes and errors out.
 *
 * @returns A kernel with its own memory; rejects where WebAssembly SIMD is unavailable (callers fall back to JavaScript).
 * @example
 * ```ts
 * const kernel = await createGptqColumnKernel();
 * kernel.quantizeColumns({ rows, count: 16, columns, factor: u, size: n, start: i, scale, zero, spare, low: -8, high: 7, shift: 8, errors, codes });
 * ```
 */
export async function createGptqColumnKernel(): Promise<GptqColumnKernel> {
  const exports = await instantiateKernel<Exports>('gptq-columns.wasm', kernelUrls());
  const base = exports.HEAP_BASE.value;
  return {
    quantizeColumns(args) {
      const { rows, count: k, size: n, start } = args;
      if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(k) || k < 0) throw new InvalidArgumentError('rows/count', `got ${rows}/${k}; expected non-negative integers`);
      if (!(start >= 0 && start + k <= n) || args.factor.length !== n * n) throw new InvalidArgumentError('start', `columns ${start}..${start + k} do not fit a factor of size ${n} (${args.factor.length} entries)`);
      for (const [name, a, length] of [
        ['columns', args.columns, k * rows],
        ['errors', args.errors, k * rows],
        ['codes', args.codes, k * rows],
        ['scale', args.scale, rows],
        ['zero', args.zero, rows],
        ['spare', args.spare, rows],
      ] as const) {
        if (a.length < length) throw new ShapeMismatchError(name, [length], [a.length], 'at least this many entries');
      }
      if (k === 0 || rows === 0) return;
      // Layout: float64 arrays first (8-byte aligned), then float32, then bytes.
      const uAt = base;
      const scaleAt = uAt + 8 * k * k;
      const zeroAt = scaleAt + 8 * rows;
      const spareAt = zeroAt + 8 * rows;
      const wAt = spareAt + 8 * rows;
      const errAt = wAt + 4 * k * rows;
      const codesAt = errAt + 4 * k * rows;
      const end = codesAt + k * rows + 16;
      const have = exports.memory.buffer.byteLength;
      if (end > have) exports.memory.grow(Math.ceil((end - have) / PAGE_BYTES));
      const buffer = exports.memory.buffer;
      const u = new Float64Array(buffer, uAt, k * k);
      for (let i = 0; i < k; i++) u.set(args.factor.subarray((start + i) * n + start, (start + i) * n + start + k), i * k);
      new Float64Array(buffer, scaleAt, rows).set(args.scale.subarray(0, rows));
      new Float64Array(buffer, zeroAt, rows).set(args.zero.subarray(0, rows));
      new Float64Array(buffer, spareAt, rows).set(args.spare.subarray(0, rows));
      new Float32Array(buffer, wAt, k * rows).set(args.columns.subarray(0, k * rows));
      exports.quantizeColumns(wAt, errAt, codesAt, uAt, scaleAt, zeroAt, spareAt, rows, k, args.low, args.high, args.shift);
      args.errors.set(new Float32Array(buffer, errAt, k * rows));
      args.codes.set(new Uint8Array(buffer, codesAt, k * rows));
    },
  };
}
