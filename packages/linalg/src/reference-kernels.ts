import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import { compileKernel } from './backends/wasm-load.js';
import { PAGE_BYTES, wasmApi, type WasmModule } from './backends/wasm-memory.js';
import { FAST_EXP_FRACTIONS, FAST_EXP_POWERS } from './fast-exp.js';

/** Arguments of {@link ReferenceKernels.softmaxRows}: which score rows of a block of `attentionWithSgemm` are live. */
export interface SoftmaxRowsArguments {
  /** Query heads stacked in the block (heads sharing one key/value head). */
  readonly group: number;
  /** Query rows per head in the block. */
  readonly rows: number;
  /** Scores per row (keys `k0 .. k0 + width`). */
  readonly width: number;
  /** Position of the block's first query row. */
  readonly r0: number;
  /** Position of the block's first key. */
  readonly k0: number;
  /** Sliding window (keys at distance `>= window` are masked); `Infinity` for none. */
  readonly window: number;
}

/**
 * The JavaScript reference kernels of the decoder forward in WebAssembly SIMD, bit for bit (see
 * {@link createReferenceKernels}). Each instance has its own memory; views it returns stay valid until the next
 * {@link reserve}.
 */
export interface ReferenceKernels {
  /**
   * Makes room for a score block of `scoreFloats` float32 and `rows` float64 row sums in the kernel's memory and
   * returns views of both; `softmaxRows` works on them in place. Earlier views are invalid afterwards.
   */
  reserve(scoreFloats: number, rows: number): { scores: Float32Array; sums: Float64Array };
  /**
   * As {@link reserve}, plus a block of `scoreFloats` float32 for the scores' gradients (`softmaxRowsBackward` works on
   * all three in place). Earlier views are invalid afterwards.
   */
  reserveWithGradients(scoreFloats: number, rows: number): { scores: Float32Array; sums: Float64Array; gradients: Float32Array };
  /**
   * The softmax rows of `attentionWithSgemm` on the reserved scores (the block's first `group * rows * width`
   * floats), as its JavaScript loop computes them without a soft-cap: the live entries `fastExp(s - max)` (float32),
   * masked entries 0, each row's float64 sum (of the unrounded exponentials, left to right) in `sums`.
   */
  softmaxRows(args: SoftmaxRowsArguments): void;
  /**
   * The attention backward's softmax on the reserved scores and gradients (from {@link reserveWithGradients}): each
   * row as {@link softmaxRows} computes it, then on the same row the softmax's backward as the JavaScript loop
   * `softmaxBackwardRows` of `attentionBackwardWithBatchedSgemm` computes it, bit for bit: `p = e / sum` (float64,
   * stored as float32 over the scores), `dot = sum p dP` (unrounded `p`, left to right), `dP = (stored p) (dP - dot)
   * scale`, masked gradients 0.
   */
  softmaxRowsBackward(args: SoftmaxRowsArguments & { readonly scale: number }): void;
  /** `out[i] = (x / (1 + fastExp(-x))) * up[i]` with `x = gate[i]` in float64, for `length` elements (`out` may alias either input). */
  siluGate(gate: Float32Array, up: Float32Array, out: Float32Array, length: number): void;
  /**
   * SwiGLU's backward for `length` elements: `sig = 1 / (1 + fastExp(-g))`, `dGate[i] = d * u * sig * (1 + g * (1 -
   * sig))`, `dUp[i] = d * g * sig` (`g = gate[i]`, `u = up[i]`, `d = dh[i]`, float64 inside each element, left to
   * right), bit for bit `@bitsmith/models`' `swigluBackward` loop. `dGate` may alias `gate`, `dUp` may alias `up`.
   */
  swigluBackward(gate: Float32Array, up: Float32Array, dh: Float32Array, dGate: Float32Array, dUp: Float32Array, length: number): void;
  /** `out[i] = fastExp(x[i])` for every element (float64 in and out; `out` may be `x`). */
  exp(x: Float64Array, out: Float64Array): void;
  /**
   * RMSNorm of `rows` rows of `columns` floats, bit for bit `@bitsmith/models`' `rmsNorm`: each row's float64 sum of
   * squares left to right, `out = fround(x * (sum / columns + eps)^(-1/2)) * weight` (`out` may be `x`).
   */
  rmsNorm(x: Float32Array, rows: number, columns: number, weight: Float32Array, eps: number, out: Float32Array): void;
  /** `h += x` (float32), then `out = rmsNorm(h)`, bit for bit `@bitsmith/models`' `addRmsNorm` (`out` not `h` or `x`). */
  addRmsNorm(h: Float32Array, x: Float32Array, rows: number, columns: number, weight: Float32Array, eps: number, out: Float32Array): void;
  /**
   * RMSNorm's input gradient, bit for bit `@bitsmith/models`' `rmsNormBackward` without the gain's gradient: written
   * into `dx`, or added to it with `accumulate` (`dx` not `x` or `dy`).
   */
  rmsNormBackward(x: Float32Array, rows: number, columns: number, weight: Float32Array, eps: number, dy: Float32Array, dx: Float32Array, accumulate: boolean): void;
  /**
   * Rotary position embedding in place, bit for bit `@bitsmith/models`' `applyRope` (or with `inverse` its
   * `ropeBackward`): row `t` of `data` (`heads * headDim` floats) is rotated by the angles of position `positions[t]`,
   * whose `headDim / 2` cosines and sines are row `positions[t]` of `cos` and `sin`.
   */
  rope(data: Float32Array, rows: number, heads: number, headDim: number, cos: Float32Array, sin: Float32Array, positions: ArrayLike<number>, inverse: boolean): void;
  /**
   * The squared-error seed of a block-output loss over `y.length` floats: `out[i] = 2 d / n` with `d = y[i] - target[i]`
   * (float64; computed as `d * (2 / n)` where `n` is a power of two, which is exact), and returns `sum` plus every
   * `d * d` added left to right (float64).
   */
  squaredError(y: Float32Array, target: Float32Array, out: Float32Array, n: number, sum: number): number;
  /**
   * {@link siluGate}, bit for bit, also writing each element's `fastExp(-gate[i])` (float64) into `exps` for
   * {@link swigluBackwardKept}. `out` may alias `gate` or `up`.
   */
  siluGateKeep(gate: Float32Array, up: Float32Array, out: Float32Array, exps: Float64Array, length: number): void;
  /**
   * {@link swigluBackward}, bit for bit, reading each element's `fastExp(-gate[i])` from `exps` (as {@link siluGateKeep}
   * wrote it for the same `gate`) instead of computing it again. `dGate` may alias `gate`, `dUp` may alias `up`.
   */
  swigluBackwardKept(gate: Float32Array, up: Float32Array, dh: Float32Array, exps: Float64Array, dGate: Float32Array, dUp: Float32Array, length: number): void;
  /**
   * SwiGLU's gate in float32 (`siluGateFloat32Loop` of this package, bit for bit): `sigmoids[i] = 1 / (1 +
   * exp32(-gate[i]))`, `out[i] = (gate[i] sigmoids[i]) up[i]`, four elements per vector. `out` may alias `gate` or `up`.
   */
  siluGateFloat32(gate: Float32Array, up: Float32Array, out: Float32Array, sigmoids: Float32Array, length: number): void;
  /**
   * SwiGLU's backward in float32 from the sigmoids {@link siluGateFloat32} kept (`swigluBackwardFloat32Loop`, bit for
   * bit). `dGate` may alias `gate`, `dUp` may alias `up`.
   */
  swigluBackwardFloat32(gate: Float32Array, up: Float32Array, dh: Float32Array, sigmoids: Float32Array, dGate: Float32Array, dUp: Float32Array, length: number): void;
  /** `out[i] = a[i] + b[i]` (float32) for `length` elements (`out` may be `a` or `b`). */
  add(a: Float32Array, b: Float32Array, out: Float32Array, length: number): void;
  /**
   * Makes room for `bytes` bytes of the caller's arrays in this instance's memory, after the scratch its methods use
   * ({@link ARENA_SCRATCH_BYTES}), and returns the memory's buffer and the first byte of that room (16-byte aligned).
   * Views of the buffer are the caller's to lay out; the row methods (`rmsNorm`, `addRmsNorm`, `rmsNormBackward`,
   * `rope`, `add`, `siluGateKeep`, `swigluBackwardKept`, `siluGateFloat32`, `swigluBackwardFloat32`) work on arrays that all lie there in place, with no copies
   * (arrays elsewhere are copied through the scratch as before). Growing the memory replaces its buffer: views of the
   * previous one are then empty. After the first call `reserve` and `reserveWithGradients` only take blocks that fit
   * the scratch.
   */
  arena(bytes: number): { buffer: ArrayBuffer; start: number };
}

/**
 * Bytes of scratch below a {@link ReferenceKernels.arena}: the row methods' copy slots and gathered RoPE tables (2 MiB).
 */
export const ARENA_SCRATCH_BYTES = 2 * 1024 * 1024;

interface Exports {
  readonly memory: { buffer: ArrayBuffer; grow(pages: number): number };
  readonly HEAP_BASE: { value: number };
  readonly TABLES: { value: number };
  softmaxRows(s: number, sums: number, group: number, rows: number, width: number, r0: number, k0: number, window: number, c64: number, cl: number): void;
  softmaxRowsBackward(s: number, dp: number, sums: number, group: number, rows: number, width: number, r0: number, k0: number, window: number, scale: number, c64: number, cl: number): void;
  siluGate(gate: number, up: number, out: number, n: number, c64: number, cl: number): void;
  swigluBackward(gate: number, up: number, dh: number, dGate: number, dUp: number, n: number, c64: number, cl: number): void;
  expValues(x: number, out: number, n: number, c64: number, cl: number): void;
  rmsNormRows(x: number, w: number, out: number, rows: number, columns: number, eps: number): void;
  addRmsNormRows(h: number, x: number, w: number, out: number, rows: number, columns: number, eps: number): void;
  rmsNormBackwardRows(x: number, w: number, dy: number, dx: number, rows: number, columns: number, eps: number, accumulate: number): void;
  ropeRows(data: number, cos: number, sin: number, rows: number, heads: number, headDim: number, inverse: number): void;
  squaredErrorRows(y: number, t: number, out: number, length: number, n: number, factor: number, sum: number): number;
  addValues(a: number, b: number, out: number, n: number): void;
  siluGateKeep(gate: number, up: number, out: number, e: number, n: number, c64: number, cl: number): void;
  swigluBackwardKept(gate: number, up: number, dh: number, e: number, dGate: number, dUp: number, n: number): void;
  siluGateFloat32(gate: number, up: number, out: number, sig: number, n: number): void;
  swigluBackwardFloat32(gate: number, up: number, dh: number, sig: number, dGate: number, dUp: number, n: number): void;
}

/** `64 / ln 2` and `ln 2 / 64` as `fastExp` computes them. */
const C64 = 64 / Math.LN2;
const CL = Math.LN2 / 64;
/** Elements per pass of an element-wise kernel through the kernel's memory (one float32 slot of this many per input). */
const SILU_CHUNK = 1 << 14;
/** Floats per slot of a row kernel's pass through the kernel's memory (at least one row). */
const ROW_CHUNK = 1 << 14;
/** A window this wide masks nothing at any length the kernel takes (int32 argument). */
const NO_WINDOW = 1 << 30;

function kernelUrls(): URL[] {
  return [new URL('./reference-kernels.wasm', import.meta.url), new URL('../wasm/reference-kernels.wasm', import.meta.url)];
}

/**
 * Creates the reference kernels: the softmax rows of `attentionWithSgemm` and the SiLU gate of `gatedActivationLoop`
 * in WebAssembly with 128-bit SIMD, every operation the JavaScript loop's (float64 lanes, float32 loads and stores,
 * no fused multiply-add, `fastExp` with its tables and `Math.round`'s ties toward +infinity, row sums in the loop's
 * order), so results are bit-identical to the JavaScript (tested against it on random, tied, extreme and NaN inputs)
 * at a fraction of its time. The calibration forward runs on them so that quantized results do not depend on
 * which backend or release computed the statistics.
 *
 * @returns A kernel instance with its own memory; rejects where WebAssembly SIMD is unavailable (callers fall back to JavaScript).
 * @example
 * ```ts
 * const kernels = await createReferenceKernels();
 * kernels.siluGate(gate, up, gate, gate.length); // gate = silu(gate) * up
 * ```
 */
export async function createReferenceKernels(): Promise<ReferenceKernels> {
  return referenceKernelsOf(await referenceKernelsModule());
}

/** The compiled `reference-kernels.wasm` (compiled once per process), e.g. to post to a worker thread. Internal. */
export function referenceKernelsModule(): Promise<WasmModule> {
  return compileKernel('reference-kernels.wasm', kernelUrls());
}

/**
 * A new {@link ReferenceKernels} instance, with its own memory, of an already compiled `reference-kernels.wasm` (from
 * {@link referenceKernelsModule}, possibly in another thread): synchronous, no file access. Internal.
 */
export function referenceKernelsOf(module: WasmModule): ReferenceKernels {
  const exports = new wasmApi.Instance(module, {}).exports as unknown as Exports;
  const tables = exports.TABLES.value;
  const base = exports.HEAP_BASE.value;
  new Float64Array(exports.memory.buffer, tables, FAST_EXP_FRACTIONS.length).set(FAST_EXP_FRACTIONS);
  new Float64Array(exports.memory.buffer, tables + 8 * FAST_EXP_FRACTIONS.length, FAST_EXP_POWERS.length).set(FAST_EXP_POWERS);
  // With an arena, the first byte after the scratch; the row methods' arrays past it are worked on in place.
  let arenaStart = 0;
  const grow = (end: number): ArrayBuffer => {
    const have = exports.memory.buffer.byteLength;
    if (end > have) exports.memory.grow(Math.ceil((end - have) / PAGE_BYTES));
    return exports.memory.buffer;
  };
  /** The memory with room for scratch up to byte `end` (never into an arena: a larger call is refused). */
  const ensure = (end: number): ArrayBuffer => {
    if (arenaStart !== 0 && end > arenaStart) {
      throw new InvalidArgumentError('scratch', `this call needs ${end - base} bytes of scratch and the instance keeps ${arenaStart - base} below its arena; use an instance without one`);
    }
    return grow(end);
  };
  /**
   * Runs an element-wise kernel over `length` elements in chunks of {@link SILU_CHUNK}: each chunk of every input is
   * copied into its own slot of the kernel's memory (float32 or float64, as the input), `scratch` adds slots that are
   * not copied in (for what the kernel writes), `run` gets the slots' addresses and the chunk's length, and each
   * `[slot, output]` pair copies that slot back into the output.
   */
  const streamChunks = (
    inputs: readonly (Float32Array | Float64Array)[],
    outputs: readonly (readonly [number, Float32Array | Float64Array])[],
    length: number,
    run: (slots: readonly number[], n: number) => void,
    scratch: readonly ('float32' | 'float64')[] = [],
  ): void => {
    const wide = [...inputs.map((a) => a instanceof Float64Array), ...scratch.map((kind) => kind === 'float64')];
    const slots: number[] = [];
    let end = base;
    for (const w of wide) {
      slots.push(end);
      end += (w ? 8 : 4) * SILU_CHUNK;
    }
    const buffer = ensure(end + 16);
    const views = slots.map((at, k) => (wide[k] ? new Float64Array(buffer, at, SILU_CHUNK) : new Float32Array(buffer, at, SILU_CHUNK)));
    for (let i = 0; i < length; i += SILU_CHUNK) {
      const n = Math.min(SILU_CHUNK, length - i);
      inputs.forEach((input, k) => views[k]!.set(input.subarray(i, i + n)));
      run(slots, n);
      for (const [k, output] of outputs) output.set(n === SILU_CHUNK ? views[k]! : views[k]!.subarray(0, n), i);
    }
  };
  /** Whether every array lies in the arena (then the methods pass their addresses, with no copies). */
  const inArena = (...arrays: ReadonlyArray<Float32Array | Float64Array>): boolean => {
    if (arenaStart === 0) return false;
    const buffer = exports.memory.buffer;
    for (const a of arrays) if (a.buffer !== buffer || a.byteOffset < arenaStart || a.byteOffset % 4 !== 0) return false;
    return true;
  };
  /** Copies `weight`'s first `columns` floats to `base` (the row kernels' gain slot). */
  const gainAtBase = (weight: Float32Array, columns: number): void => {
    new Float32Array(ensure(base + 4 * columns + 16), base, columns).set(weight.subarray(0, columns));
  };
  /** A float32 view of `length` floats at byte `at` of the kernel's memory (as it is now). */
  const rowView = (at: number, length: number): Float32Array => new Float32Array(exports.memory.buffer, at, length);
  /**
   * Runs a row kernel over `rows` rows of `columns` floats in chunks of whole rows (about {@link ROW_CHUNK} floats):
   * each chunk of every input is copied into its own slot after the gain slot at `base` (see `gainAtBase`), and
   * `run` gets the slots' addresses, the chunk's first row and its row count (it copies its results out itself).
   */
  const rowChunks = (rows: number, columns: number, inputs: readonly Float32Array[], run: (slots: readonly number[], r0: number, n: number) => void): void => {
    const per = Math.max(1, Math.floor(ROW_CHUNK / Math.max(1, columns)));
    const slots = inputs.map((_, k) => align(base + 4 * columns) + k * align(4 * per * columns));
    const buffer = ensure(slots[slots.length - 1]! + 4 * per * columns + 16);
    const views = slots.map((at) => new Float32Array(buffer, at, per * columns));
    for (let r0 = 0; r0 < rows; r0 += per) {
      const n = Math.min(per, rows - r0);
      inputs.forEach((input, k) => views[k]!.set(input.subarray(r0 * columns, (r0 + n) * columns)));
      run(slots, r0, n);
    }
  };
  let scoresAt = base;
  let sumsAt = base;
  let gradientsAt = base;
  const windowOf = (window: number): number => (Number.isFinite(window) ? Math.min(window, NO_WINDOW) : NO_WINDOW);
  return {
    reserve(scoreFloats, rows) {
      sumsAt = base;
      scoresAt = base + 8 * Math.max(1, rows);
      gradientsAt = scoresAt;
      const buffer = ensure(scoresAt + 4 * scoreFloats + 16);
      return { scores: new Float32Array(buffer, scoresAt, scoreFloats), sums: new Float64Array(buffer, sumsAt, rows) };
    },
    reserveWithGradients(scoreFloats, rows) {
      sumsAt = base;
      scoresAt = base + 8 * Math.max(1, rows);
      gradientsAt = scoresAt + 4 * scoreFloats + 16;
      const buffer = ensure(gradientsAt + 4 * scoreFloats + 16);
      return { scores: new Float32Array(buffer, scoresAt, scoreFloats), sums: new Float64Array(buffer, sumsAt, rows), gradients: new Float32Array(buffer, gradientsAt, scoreFloats) };
    },
    softmaxRows({ group, rows, width, r0, k0, window }) {
      exports.softmaxRows(scoresAt, sumsAt, group, rows, width, r0, k0, windowOf(window), C64, CL);
    },
    softmaxRowsBackward({ group, rows, width, r0, k0, window, scale }) {
      if (gradientsAt === scoresAt) throw new InvalidArgumentError('softmaxRowsBackward', 'needs the gradients block: reserve it with reserveWithGradients first');
      exports.softmaxRowsBackward(scoresAt, gradientsAt, sumsAt, group, rows, width, r0, k0, windowOf(window), scale, C64, CL);
    },
    siluGate(gate, up, out, length) {
      // The kernel writes silu(gate) * up over gate's copy.
      streamChunks([gate, up], [[0, out]], length, ([g, u], n) => exports.siluGate(g!, u!, g!, n, C64, CL));
    },
    swigluBackward(gate, up, dh, dGate, dUp, length) {
      for (const [name, a] of [['gate', gate], ['up', up], ['dh', dh], ['dGate', dGate], ['dUp', dUp]] as const) {
        if (a.length < length) throw new ShapeMismatchError(name, [length], [a.length], 'at least `length` entries');
      }
      // The kernel writes dGate over gate's copy and dUp over up's.
      streamChunks([gate, up, dh], [[0, dGate], [1, dUp]], length, ([g, u, d], n) => exports.swigluBackward(g!, u!, d!, g!, u!, n, C64, CL));
    },
    rmsNorm(x, rows, columns, weight, eps, out) {
      checkRows({ x, out }, rows, columns, weight);
      gainAtBase(weight, columns);
      if (inArena(x, out)) {
        exports.rmsNormRows(x.byteOffset, base, out.byteOffset, rows, columns, eps);
        return;
      }
      rowChunks(rows, columns, [x], ([slot], r0, n) => {
        exports.rmsNormRows(slot!, base, slot!, n, columns, eps);
        out.set(rowView(slot!, n * columns), r0 * columns);
      });
    },
    addRmsNorm(h, x, rows, columns, weight, eps, out) {
      checkRows({ h, x, out }, rows, columns, weight);
      gainAtBase(weight, columns);
      if (inArena(h, x, out)) {
        exports.addRmsNormRows(h.byteOffset, x.byteOffset, base, out.byteOffset, rows, columns, eps);
        return;
      }
      rowChunks(rows, columns, [h, x], ([hs, xs], r0, n) => {
        exports.addRmsNormRows(hs!, xs!, base, xs!, n, columns, eps);
        h.set(rowView(hs!, n * columns), r0 * columns);
        out.set(rowView(xs!, n * columns), r0 * columns);
      });
    },
    rmsNormBackward(x, rows, columns, weight, eps, dy, dx, accumulate) {
      checkRows({ x, dy, dx }, rows, columns, weight);
      gainAtBase(weight, columns);
      if (inArena(x, dy, dx)) {
        exports.rmsNormBackwardRows(x.byteOffset, base, dy.byteOffset, dx.byteOffset, rows, columns, eps, accumulate ? 1 : 0);
        return;
      }
      rowChunks(rows, columns, accumulate ? [x, dy, dx] : [x, dy], (slots, r0, n) => {
        const to = accumulate ? slots[2]! : slots[1]!;
        exports.rmsNormBackwardRows(slots[0]!, base, slots[1]!, to, n, columns, eps, accumulate ? 1 : 0);
        dx.set(rowView(to, n * columns), r0 * columns);
      });
    },
    rope(data, rows, heads, headDim, cos, sin, positions, inverse) {
      const half = headDim / 2;
      const width = heads * headDim;
      if (!Number.isInteger(half) || half < 1) throw new InvalidArgumentError('headDim', `got ${headDim}; expected a positive even number`);
      if (data.length < rows * width) throw new ShapeMismatchError('data', [rows, width], [data.length], 'row-major [rows, heads * headDim]');
      if (positions.length < rows) throw new ShapeMismatchError('positions', [rows], [positions.length], 'one position per row');
      const tablePositions = Math.min(cos.length, sin.length) / half;
      /** Rows `r0 .. r0 + n - 1`'s cos/sin rows, gathered by position into `c` and `s` (runs of positions at once). */
      const gather = (c: Float32Array, s: Float32Array, r0: number, n: number): void => {
        for (let t = 0; t < n; ) {
          const p = positions[r0 + t]!;
          let run = 1;
          while (t + run < n && positions[r0 + t + run] === p + run) run++;
          if (!(Number.isInteger(p) && p >= 0 && p + run <= tablePositions)) {
            // The run's first position outside the table.
            const bad = Number.isInteger(p) && p >= 0 ? Math.max(p, tablePositions) : p;
            throw new RangeError(`position ${bad} is beyond the RoPE table (${tablePositions} positions)`);
          }
          c.set(cos.subarray(p * half, (p + run) * half), t * half);
          s.set(sin.subarray(p * half, (p + run) * half), t * half);
          t += run;
        }
      };
      if (inArena(data) && 8 * rows * half + 32 <= ARENA_SCRATCH_BYTES) {
        const cosAt = base;
        const sinAt = align(cosAt + 4 * rows * half);
        const buffer = exports.memory.buffer;
        gather(new Float32Array(buffer, cosAt, rows * half), new Float32Array(buffer, sinAt, rows * half), 0, rows);
        exports.ropeRows(data.byteOffset, cosAt, sinAt, rows, heads, headDim, inverse ? 1 : 0);
        return;
      }
      // Each chunk's rows with their cos/sin rows gathered by position into two more slots.
      const per = Math.max(1, Math.floor(ROW_CHUNK / width));
      const dataAt = base;
      const cosAt = align(dataAt + 4 * per * width);
      const sinAt = align(cosAt + 4 * per * half);
      const buffer = ensure(sinAt + 4 * per * half + 16);
      const slot = new Float32Array(buffer, dataAt, per * width);
      const c = new Float32Array(buffer, cosAt, per * half);
      const s = new Float32Array(buffer, sinAt, per * half);
      for (let r0 = 0; r0 < rows; r0 += per) {
        const n = Math.min(per, rows - r0);
        gather(c, s, r0, n);
        slot.set(data.subarray(r0 * width, (r0 + n) * width));
        exports.ropeRows(dataAt, cosAt, sinAt, n, heads, headDim, inverse ? 1 : 0);
        data.set(n === per ? slot : slot.subarray(0, n * width), r0 * width);
      }
    },
    squaredError(y, target, out, n, sum) {
      const length = y.length;
      if (target.length < length || out.length < length) throw new ShapeMismatchError('target/out', [length], [Math.min(target.length, out.length)], 'as many entries as y');
      // The same product by 2 / n as the JavaScript loop where n is a power of two (exact); else the division.
      const factor = (n & (n - 1)) === 0 && n > 0 && n <= 2 ** 30 ? 2 / n : 0;
      streamChunks([y, target], [[0, out]], length, ([ys, ts], m) => {
        sum = exports.squaredErrorRows(ys!, ts!, ys!, m, n, factor, sum);
      });
      return sum;
    },
    siluGateKeep(gate, up, out, exps, length) {
      for (const [name, a] of [['gate', gate], ['up', up], ['out', out], ['exps', exps]] as const) {
        if (a.length < length) throw new ShapeMismatchError(name, [length], [a.length], 'at least `length` entries');
      }
      if (inArena(gate, up, out, exps)) {
        exports.siluGateKeep(gate.byteOffset, up.byteOffset, out.byteOffset, exps.byteOffset, length, C64, CL);
        return;
      }
      // Slots: gate (the output is written over it), up, and the float64 exponentials (written by the kernel).
      streamChunks([gate, up], [[0, out], [2, exps]], length, ([g, u, e], n) => exports.siluGateKeep(g!, u!, g!, e!, n, C64, CL), ['float64']);
    },
    swigluBackwardKept(gate, up, dh, exps, dGate, dUp, length) {
      for (const [name, a] of [['gate', gate], ['up', up], ['dh', dh], ['exps', exps], ['dGate', dGate], ['dUp', dUp]] as const) {
        if (a.length < length) throw new ShapeMismatchError(name, [length], [a.length], 'at least `length` entries');
      }
      if (inArena(gate, up, dh, exps, dGate, dUp)) {
        exports.swigluBackwardKept(gate.byteOffset, up.byteOffset, dh.byteOffset, exps.byteOffset, dGate.byteOffset, dUp.byteOffset, length);
        return;
      }
      // Slots: gate (dGate written over it), up (dUp over it), dh, and the float64 exponentials.
      streamChunks([gate, up, dh, exps], [[0, dGate], [1, dUp]], length, ([g, u, d, e], n) => exports.swigluBackwardKept(g!, u!, d!, e!, g!, u!, n));
    },
    siluGateFloat32(gate, up, out, sigmoids, length) {
      for (const [name, a] of [['gate', gate], ['up', up], ['out', out], ['sigmoids', sigmoids]] as const) {
        if (a.length < length) throw new ShapeMismatchError(name, [length], [a.length], 'at least `length` entries');
      }
      if (inArena(gate, up, out, sigmoids)) {
        exports.siluGateFloat32(gate.byteOffset, up.byteOffset, out.byteOffset, sigmoids.byteOffset, length);
        return;
      }
      // Slots: gate (the output is written over it), up, and the sigmoids (written by the kernel).
      streamChunks([gate, up], [[0, out], [2, sigmoids]], length, ([g, u, s], n) => exports.siluGateFloat32(g!, u!, g!, s!, n), ['float32']);
    },
    swigluBackwardFloat32(gate, up, dh, sigmoids, dGate, dUp, length) {
      for (const [name, a] of [['gate', gate], ['up', up], ['dh', dh], ['sigmoids', sigmoids], ['dGate', dGate], ['dUp', dUp]] as const) {
        if (a.length < length) throw new ShapeMismatchError(name, [length], [a.length], 'at least `length` entries');
      }
      if (inArena(gate, up, dh, sigmoids, dGate, dUp)) {
        exports.swigluBackwardFloat32(gate.byteOffset, up.byteOffset, dh.byteOffset, sigmoids.byteOffset, dGate.byteOffset, dUp.byteOffset, length);
        return;
      }
      // Slots: gate (dGate written over it), up (dUp over it), dh, and the sigmoids.
      streamChunks([gate, up, dh, sigmoids], [[0, dGate], [1, dUp]], length, ([g, u, d, s], n) => exports.swigluBackwardFloat32(g!, u!, d!, s!, g!, u!, n));
    },
    add(a, b, out, length) {
      for (const [name, array] of [['a', a], ['b', b], ['out', out]] as const) {
        if (array.length < length) throw new ShapeMismatchError(name, [length], [array.length], 'at least `length` entries');
      }
      if (inArena(a, b, out)) {
        exports.addValues(a.byteOffset, b.byteOffset, out.byteOffset, length);
        return;
      }
      streamChunks([a, b], [[0, out]], length, ([as, bs], n) => exports.addValues(as!, bs!, as!, n));
    },
    arena(bytes) {
      if (!(Number.isInteger(bytes) && bytes >= 0)) throw new InvalidArgumentError('bytes', `got ${bytes}; expected a whole number of bytes`);
      arenaStart = align(base + ARENA_SCRATCH_BYTES);
      return { buffer: grow(arenaStart + bytes + 16), start: arenaStart };
    },
    exp(x, out) {
      if (out.length < x.length) throw new ShapeMismatchError('out', [x.length], [out.length], 'at least as many entries as x');
      streamChunks([x], [[0, out]], x.length, ([xs], n) => exports.expValues(xs!, xs!, n, C64, CL));
    },
  };
}

/** `bytes` rounded up to a multiple of 16 (vector alignment). */
function align(bytes: number): number {
  return Math.ceil(bytes / 16) * 16;
}

/** Throws unless every array holds `rows x columns` floats and the weight `columns`. */
function checkRows(arrays: Record<string, Float32Array>, rows: number, columns: number, weight: Float32Array): void {
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(columns) || columns < 1) throw new InvalidArgumentError('rows/columns', `got ${rows} x ${columns}; expected whole numbers, columns at least 1`);
  for (const [name, a] of Object.entries(arrays)) {
    if (a.length < rows * columns) throw new ShapeMismatchError(name, [rows, columns], [a.length], 'row-major [rows, columns]');
  }
  if (weight.length < columns) throw new ShapeMismatchError('weight', [columns], [weight.length], 'one gain per column');
}

/**
 * A new {@link ReferenceKernels} instance, or `undefined` where WebAssembly SIMD (or the built kernel file) is not
 * available, in which case the callers run their JavaScript loops (same results, slower).
 *
 * @example
 * ```ts
 * const kernels = await tryReferenceKernels();
 * if (kernels) kernels.siluGate(gate, up, gate, gate.length); else gatedActivationLoop({ gate, up, out: gate, activation: 'silu' });
 * ```
 */
export async function tryReferenceKernels(): Promise<ReferenceKernels | undefined> {
  if (unavailable) return undefined;
  try {
    return await createReferenceKernels();
  } catch {
    unavailable = true;
    return undefined;
  }
}

/** Set once creating the kernels failed, so later calls go straight to JavaScript. */
let unavailable = false;
