import { InvalidArgumentError } from '@bitsmith/core';
import { compileKernel } from './backends/wasm-load.js';
import { PAGE_BYTES, wasmApi, MAX_PAGES } from './backends/wasm-memory.js';

/** Sizes of one {@link LearnableRoundingKernel}: fixed when it is created (its arrays never move). */
export interface LearnableRoundingLayout {
  /** Weights of the matrix. */
  readonly length: number;
  /** Runs of one group (consecutive weights of one group id). */
  readonly runs: number;
  /** Groups (scales). */
  readonly groups: number;
  /** Whether the grid adds a fixed per-weight offset `b` (a start solution). */
  readonly base: boolean;
}

/** The grid of one call: codes are clamped to `[lowest, highest]` after the zero point is added. */
export interface LearnableRoundingGrid {
  /** Whether the groups have zero points (`zero` is read); otherwise `z = 0`. */
  readonly zeroPoints: boolean;
  /** Read the offsets from `offsetCopy` instead of `offset`. Default false. */
  readonly copy?: boolean;
  readonly lowest: number;
  readonly highest: number;
  /**
   * Every operation in float32 (four lanes; each run's group sums in four lanes, combined as `(l0 + l1) + (l2 + l3)`,
   * the run's last `length % 4` elements added one by one, and the run's float32 sum added to the group's float64
   * sum), as PyTorch computes AutoRound: the learned steps' native arithmetic. Default false: every operation in
   * float64 with float32 loads and stores, the group sums element by element.
   */
  readonly float32?: boolean;
}

/**
 * AutoRound's learnable-rounding loops in WebAssembly SIMD over arrays that live in the kernel's own memory (views,
 * valid for the kernel's life: its memory never grows after creation). The caller fills the fixed arrays once
 * (`weight`, `base`, `runStart`, `runGroup`) and the others before each call.
 */
export interface LearnableRoundingKernel {
  /** `[length]` float32: the weight. */
  readonly weight: Float32Array;
  /** `[length]` float32: the fixed offsets `b`, or empty without them. */
  readonly base: Float32Array;
  /** `[runs + 1]`: first weight of each run, then `length`. */
  readonly runStart: Int32Array;
  /** `[runs]`: the group id of each run. */
  readonly runGroup: Int32Array;
  /** `[groups]`: this call's group scales. */
  readonly scale: Float64Array;
  /** `[groups]`: this call's zero points (read with `zeroPoints`). */
  readonly zero: Float64Array;
  /** `[length]`: the rounding offsets `v` (the parameters that live in the kernel; {@link signStep} moves them). */
  readonly offset: Float32Array;
  /** `[length]`: rounding offsets copied in for a call on other parameters (`copy: true`). */
  readonly offsetCopy: Float32Array;
  /** `[length]`: {@link dequantize}'s output. */
  readonly dequantized: Float32Array;
  /** `[length]`: {@link backward}'s input, the loss gradient with respect to the dequantized weight. */
  readonly gradient: Float32Array;
  /** `[length]`: {@link backward}'s output, the gradient of the offsets. */
  readonly offsetGradient: Float32Array;
  /** `[groups]`: {@link backward} adds each group's scale gradient sum here. */
  readonly scaleGradient: Float64Array;
  /** `[groups]`: {@link backward} adds each group's zero-point gradient sum here (with `zeroPoints`). */
  readonly zeroGradient: Float64Array;
  /**
   * `dequantized[i] = s (clamp(round(w / s + v (+ b)) + z, lowest, highest) - z) + 0` with each run's group scale `s`
   * (0 for a run whose scale is not positive) and zero point `z`; rounding half to even.
   */
  dequantize(grid: LearnableRoundingGrid): void;
  /**
   * Straight-through backward of {@link dequantize}: inside the grid `dv = G s`, `ds += G (round(..) - w / s)`;
   * clamped `dv = 0`, `ds += G (q - z)`, `dz += -G s` (with zero points). Sums added element by element in order onto
   * `scaleGradient` and `zeroGradient`.
   */
  backward(grid: LearnableRoundingGrid): void;
  /**
   * One bounded SignSGD step of `offset` from `offsetGradient`: `v = min(highest, max(lowest, v - rate * ((g > 0) -
   * (g < 0))))` in float64, rounded once to float32 (a zero or NaN gradient moves nothing). With `float32`, in float32
   * with the rate and bounds rounded to float32, as `c < lowest ? lowest : c` then `c > highest ? highest : c`.
   */
  signStep(rate: number, lowest: number, highest: number, float32?: boolean): void;
}

interface Exports {
  readonly memory: { buffer: ArrayBuffer; grow(pages: number): number };
  readonly HEAP_BASE: { value: number };
  dequantize(w: number, base: number, offset: number, out: number, runStart: number, runGroup: number, runs: number, scale: number, zero: number, lowest: number, highest: number): void;
  backward(w: number, base: number, offset: number, gradient: number, dOffset: number, runStart: number, runGroup: number, runs: number, scale: number, zero: number, dScale: number, dZero: number, lowest: number, highest: number): void;
  signStep(params: number, grads: number, n: number, rate: number, lowest: number, highest: number): void;
  dequantizeFloat32(w: number, base: number, offset: number, out: number, runStart: number, runGroup: number, runs: number, scale: number, zero: number, lowest: number, highest: number): void;
  backwardFloat32(w: number, base: number, offset: number, gradient: number, dOffset: number, runStart: number, runGroup: number, runs: number, scale: number, zero: number, dScale: number, dZero: number, lowest: number, highest: number): void;
  signStepFloat32(params: number, grads: number, n: number, rate: number, lowest: number, highest: number): void;
}

function kernelUrls(): URL[] {
  return [new URL('./learnable-rounding.wasm', import.meta.url), new URL('../wasm/learnable-rounding.wasm', import.meta.url)];
}

/** Creates a {@link LearnableRoundingKernel} for one matrix (synchronous: the module is already compiled). */
export type LearnableRoundingKernelFactory = (layout: LearnableRoundingLayout) => LearnableRoundingKernel;

const align = (n: number): number => Math.ceil(n / 16) * 16;

/**
 * The factory of {@link LearnableRoundingKernel}s (the module compiled once per process), or `undefined` where
 * WebAssembly SIMD or the built file is unavailable; callers then run their JavaScript loops, which compute the same
 * bits (AutoRound's `learnableRounding` is tested against them). A kernel holds about `28 * length` bytes.
 *
 * @example
 * ```ts
 * const factory = await learnableRoundingKernels();
 * const kernel = factory?.({ length: w.length, runs, groups, base: false });
 * ```
 */
export async function learnableRoundingKernels(): Promise<LearnableRoundingKernelFactory | undefined> {
  let module: object;
  try {
    module = await compileKernel('learnable-rounding.wasm', kernelUrls());
  } catch {
    return undefined;
  }
  return (layout) => {
    const { length, runs, groups } = layout;
    for (const [name, n] of [['length', length], ['runs', runs], ['groups', groups]] as const) {
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(name, `got ${n}; expected a non-negative integer`);
    }
    const exports = new wasmApi.Instance(module, {}).exports as unknown as Exports;
    // Layout: float64 arrays, then int32, then float32, each 16-byte aligned.
    let at = align(exports.HEAP_BASE.value);
    const take = (bytes: number): number => {
      const here = at;
      at = align(at + bytes);
      return here;
    };
    const scaleAt = take(8 * groups);
    const zeroAt = take(8 * groups);
    const dScaleAt = take(8 * groups);
    const dZeroAt = take(8 * groups);
    const runStartAt = take(4 * (runs + 1));
    const runGroupAt = take(4 * runs);
    const weightAt = take(4 * length);
    const baseAt = layout.base ? take(4 * length) : 0;
    const offsetAt = take(4 * length);
    const copyAt = take(4 * length);
    const outAt = take(4 * length);
    const gradientAt = take(4 * length);
    const dOffsetAt = take(4 * length);
    const have = exports.memory.buffer.byteLength;
    const pages = Math.ceil((at + 16 - have) / PAGE_BYTES);
    if (have / PAGE_BYTES + pages > MAX_PAGES) throw new InvalidArgumentError('length', `${length} weights need ${at} bytes of kernel memory; a WebAssembly memory holds at most 4 GiB`);
    if (pages > 0) exports.memory.grow(pages);
    const buffer = exports.memory.buffer;
    const f64 = (p: number) => new Float64Array(buffer, p, groups);
    const f32 = (p: number) => new Float32Array(buffer, p, length);
    const kernel: LearnableRoundingKernel = {
      weight: f32(weightAt),
      base: layout.base ? f32(baseAt) : new Float32Array(0),
      runStart: new Int32Array(buffer, runStartAt, runs + 1),
      runGroup: new Int32Array(buffer, runGroupAt, runs),
      scale: f64(scaleAt),
      zero: f64(zeroAt),
      offset: f32(offsetAt),
      offsetCopy: f32(copyAt),
      dequantized: f32(outAt),
      gradient: f32(gradientAt),
      offsetGradient: f32(dOffsetAt),
      scaleGradient: f64(dScaleAt),
      zeroGradient: f64(dZeroAt),
      dequantize({ zeroPoints, lowest, highest, copy, float32 }) {
        (float32 ? exports.dequantizeFloat32 : exports.dequantize)(weightAt, baseAt, copy ? copyAt : offsetAt, outAt, runStartAt, runGroupAt, runs, scaleAt, zeroPoints ? zeroAt : 0, lowest, highest);
      },
      backward({ zeroPoints, lowest, highest, copy, float32 }) {
        (float32 ? exports.backwardFloat32 : exports.backward)(weightAt, baseAt, copy ? copyAt : offsetAt, gradientAt, dOffsetAt, runStartAt, runGroupAt, runs, scaleAt, zeroPoints ? zeroAt : 0, dScaleAt, dZeroAt, lowest, highest);
      },
      signStep(rate, lowest, highest, float32 = false) {
        (float32 ? exports.signStepFloat32 : exports.signStep)(offsetAt, dOffsetAt, length, rate, lowest, highest);
      },
    };
    return kernel;
  };
}
