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
}

interface Exports {
  readonly memory: { buffer: ArrayBuffer; grow(pages: number): number };
  readonly HEAP_BASE: { value: number };
  readonly TABLES: { value: number };
  softmaxRows(s: number, sums: number, group: number, rows: number, width: number, r0: number, k0: number, window: number, c64: number, cl: number): void;
  softmaxRowsBackward(s: number, dp: number, sums: number, group: number, rows: number, width: number, r0: number, k0: number, window: number, scale: number, c64: number, cl: number): void;
  siluGate(gate: number, up: number, out: number, n: number, c64: number, cl: number): void;
  swigluBackward(gate: number, up: number, dh: number, dGate: number, dUp: number, n: number, c64: number, cl: number): void;
  expValues(x: number, out: number, n: number, c64: number, cl: number): void;
}

/** `64 / ln 2` and `ln 2 / 64` as `fastExp` computes them. */
const C64 = 64 / Math.LN2;
const CL = Math.LN2 / 64;
/** Elements per pass of an element-wise kernel through the kernel's memory (one float32 slot of this many per input). */
const SILU_CHUNK = 1 << 14;
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
  const ensure = (end: number): ArrayBuffer => {
    const have = exports.memory.buffer.byteLength;
    if (end > have) exports.memory.grow(Math.ceil((end - have) / PAGE_BYTES));
    return exports.memory.buffer;
  };
  /**
   * Runs an element-wise kernel over `length` elements in chunks of {@link SILU_CHUNK}: each chunk of every input is
   * copied into its own slot of the kernel's memory, `run` gets the slots' addresses and the chunk's length, and each
   * `[slot, output]` pair copies that slot back into the output.
   */
  const streamChunks = (inputs: readonly Float32Array[], outputs: readonly (readonly [number, Float32Array])[], length: number, run: (slots: readonly number[], n: number) => void): void => {
    const slots = inputs.map((_, k) => base + 4 * SILU_CHUNK * k);
    const buffer = ensure(base + 4 * SILU_CHUNK * inputs.length + 16);
    const views = slots.map((at) => new Float32Array(buffer, at, SILU_CHUNK));
    for (let i = 0; i < length; i += SILU_CHUNK) {
      const n = Math.min(SILU_CHUNK, length - i);
      inputs.forEach((input, k) => views[k]!.set(input.subarray(i, i + n)));
      run(slots, n);
      for (const [k, output] of outputs) output.set(n === SILU_CHUNK ? views[k]! : views[k]!.subarray(0, n), i);
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
    exp(x, out) {
      if (out.length < x.length) throw new ShapeMismatchError('out', [x.length], [out.length], 'at least as many entries as x');
      const chunk = SILU_CHUNK;
      const inAt = base;
      const outAt = inAt + 8 * chunk;
      const buffer = ensure(outAt + 8 * chunk + 16);
      const a = new Float64Array(buffer, inAt, chunk);
      const b = new Float64Array(buffer, outAt, chunk);
      for (let i = 0; i < x.length; i += chunk) {
        const n = Math.min(chunk, x.length - i);
        a.set(x.subarray(i, i + n));
        exports.expValues(inAt, outAt, n, C64, CL);
        out.set(b.subarray(0, n), i);
      }
    },
  };
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
