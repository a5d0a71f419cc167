import {
  clamp,
  groupStatistics,
  planQuantization,
  roundHalfEven,
  roundScale,
  UnsupportedFormatError,
  type FormatSpec,
  type Granularity,
  type GroupStatistics,
  type Matrix,
  type QuantizationPlan,
  type QuantizedTensor,
  type ScaleEncoding,
  InvalidArgumentError,
} from '@bitsmith/core';
import type { LearnableRoundingKernel, LearnableRoundingKernelFactory } from '@bitsmith/linalg';
import { registerSignStep } from './resident-sign-step.js';

/**
 * The learnable parameters of AutoRound's weight quantizer for one `[rows, columns]` matrix (arXiv:2309.05516):
 * a rounding offset per weight and a clipping factor for each group's minimum and maximum.
 */
export interface RoundingParameters {
  /** `[rows * columns]`: added before rounding, `round(w / s + v)`; AutoRound keeps it in [-0.5, 0.5]. */
  readonly offset: Float32Array;
  /** Per group: multiplies the group's minimum (clipped to <= 0). */
  readonly minScale: Float32Array;
  /** Per group: multiplies the group's maximum (clipped to >= 0). */
  readonly maxScale: Float32Array;
}

/** A uniform integer quantizer with learnable rounding, bound to one weight matrix. */
export interface LearnableRounding {
  readonly plan: QuantizationPlan;
  readonly rows: number;
  readonly columns: number;
  /**
   * Fresh parameters: offset 0 and both clipping factors 1, which reproduce round-to-nearest (core's `quantize`). With
   * `kernels`, the first call's offsets are a view of the kernel's memory (valid for the quantizer's life), which the
   * dequantization and backward read without a copy and `signSgd` steps in the kernel.
   */
  initial(): RoundingParameters;
  /** The dequantized weight `[rows, columns]` under the parameters (written into `out` when given). */
  dequantize(params: RoundingParameters, out?: Float32Array): Float32Array;
  /**
   * {@link dequantize} into memory the quantizer keeps and returns (with `kernels`, the kernel's own output, so nothing
   * is copied): valid until the next `dequantizeKept` call, and to be read, not written.
   */
  dequantizeKept(params: RoundingParameters): Float32Array;
  /**
   * The array `backward` reads the weight's gradient from when it is handed that very array (with `kernels`: the
   * kernel's own input, so a block pass can write the gradient there and nothing is copied); undefined without
   * kernels.
   */
  gradientBuffer(): Float32Array | undefined;
  /**
   * Gradients of a loss with respect to the parameters, given its gradient with respect to the dequantized weight,
   * with straight-through rounding (`d round(x) / dx = 1`; the scale's rounding to its storage encoding is also
   * passed straight through) and clamping's zero gradient outside the grid, as PyTorch differentiates AutoRound.
   * `gradInput`, when given, receives the straight-through gradient with respect to the weight the quantizer was
   * built on (`gradWeight` inside the grid, 0 where clamped; the path through the groups' min/max is left out), for
   * transforms learned in front of the quantizer (OmniQuant's equivalent transform). The returned arrays belong to
   * the quantizer and are overwritten by its next `backward` call (a training loop allocates nothing per step).
   */
  backward(params: RoundingParameters, gradWeight: ArrayLike<number>, gradInput?: Float32Array): { offset: Float32Array; minScale: Float64Array; maxScale: Float64Array };
  /** The stored form under the parameters: codes, scales and zero points of core's uniform integer format. */
  quantize(params: RoundingParameters): QuantizedTensor;
}

/** Options of {@link learnableRounding}. */
export interface LearnableRoundingOptions {
  /** A uniform integer format (`{ type: 'int', bits, symmetric }`). */
  format: FormatSpec;
  /** Default: per output channel. */
  granularity?: Granularity;
  /** Default `float16`; scales are rounded to it in the forward pass, so training sees the stored grid. */
  scaleEncoding?: ScaleEncoding;
  /**
   * Start from another quantizer's solution on the same symmetric grid (GPTQ's, for AutoRound initialised by GPTQ):
   * its codes and scales. Each group's scale becomes `start.scale * clip / unclipped` (the clipping factors then
   * scale GPTQ's range rather than the group's min/max), and each rounding is measured from the start's code:
   * `q = clamp(round(w / s + b + v))` with the fixed `b = q_start - w / s_start`. With `v = 0` and both factors 1
   * the quantizer reproduces the start exactly.
   */
  start?: QuantizedTensor;
  /**
   * Runs the dequantization and its backward in WebAssembly SIMD (`@bitsmith/linalg`'s `learnableRoundingKernels()`),
   * with the same results as the JavaScript loops, about 28 bytes per weight of kernel memory held by the quantizer.
   * Default: JavaScript.
   */
  kernels?: LearnableRoundingKernelFactory;
  /**
   * The arithmetic of the per-weight loops (dequantization, its backward, the codes of `quantize`):
   * - `'reference'` (default): every operation in float64 with float32 loads and stores, each group's gradient sums
   *   added element by element in order;
   * - `'native'`: every operation in float32, as PyTorch computes AutoRound (the scale rounded to float32, `w / s + v`
   *   in float32), each run of a group summed in four float32 lanes (lane `k` adds the run's elements `4 j + k` in
   *   order; then `(l0 + l1) + (l2 + l3)`, the run's last `length % 4` elements one by one, and the run's sum added
   *   to the group's float64 sum). About three times faster in WebAssembly; the learned steps use it when the
   *   block's training passes run the native arithmetic (`BlockGradients.arithmetic`).
   *
   * The JavaScript loops and the kernels give the same bits in either arithmetic.
   */
  arithmetic?: 'reference' | 'native';
}

interface GroupScale {
  /** Scale per group (rounded to the encoding). */
  scale: Float64Array;
  /** Zero point per group (asymmetric), or the code offset 2^(b-1) (symmetric). */
  zero: Float64Array;
  /** Asymmetric: the clipped minimum `lo`; symmetric: unused. */
  lo: Float64Array;
}

/**
 * AutoRound's weight quantizer (SignRound, arXiv:2309.05516) on core's uniform integer grids, with the gradients of
 * its rounding offsets and clipping factors:
 * - asymmetric (`int4-asym`): `lo = min(w_min, 0) * minScale`, `hi = max(w_max, 0) * maxScale`, `s = (hi - lo) / (2^b - 1)`,
 *   `z = round(-lo / s)`, `q = clamp(round(w / s + v) + z, 0, 2^b - 1)`, `w' = s (q - z)`;
 * - symmetric (`int4`, core's convention): `m = max(-min(w_min, 0) * minScale, max(w_max, 0) * maxScale)`,
 *   `s = m / (2^(b-1) - 1/2)`, `q = clamp(round(w / s + v), -2^(b-1), 2^(b-1) - 1)`, `w' = s q`.
 * With `v = 0` and both factors 1 this is exactly core's round-to-nearest.
 *
 * @example
 * ```ts
 * const rounding = learnableRounding(weight, { format: parseFormat('int4'), granularity: { type: 'group', size: 128 } });
 * const p = rounding.initial();
 * const wq = rounding.dequantize(p); // = dequantize(quantize(weight, ...))
 * ```
 */
export function learnableRounding(weight: Matrix, options: LearnableRoundingOptions): LearnableRounding {
  const { format } = options;
  if (options.arithmetic !== undefined && options.arithmetic !== 'reference' && options.arithmetic !== 'native') {
    throw new InvalidArgumentError('arithmetic', `got ${JSON.stringify(options.arithmetic)}; expected 'reference' or 'native'`);
  }
  const float32 = options.arithmetic === 'native';
  if (format.type !== 'int') throw new UnsupportedFormatError(`AutoRound's learnable rounding needs a uniform integer format (int2..int8, symmetric or -asym); got ${format.type}`);
  const [rows, columns] = weight.shape;
  const plan = planQuantization(rows, columns, { format, ...(options.granularity ? { granularity: options.granularity } : {}), scaleEncoding: options.scaleEncoding ?? 'float16' });
  const w = weight.data as Float32Array;
  const stats: GroupStatistics = groupStatistics(w, plan.layout, columns);
  const groups = plan.layout.count;
  const ids = plan.layout.ids;
  const symmetric = format.symmetric;
  const levels = 2 ** format.bits;
  const maxq = levels - 1;
  const half = levels / 2;
  const encoding = plan.scaleEncoding;
  // Per group, the factor k in s = k * clipped range / (levels - 1 or half - 1/2): 1 normally; with a start,
  // start scale * (half - 1/2) / unclipped range, so that unit clipping factors give the start's scale.
  const rangeFactor = new Float64Array(groups).fill(1);
  let base: Float32Array | undefined;
  let startScales: Float32Array | undefined;
  const ranges = new Float64Array(groups);
  if (options.start) {
    const start = options.start;
    if (!symmetric) throw new UnsupportedFormatError(`starting learnable rounding from another solution needs a symmetric grid (int2..int8); got ${format.bits}-bit asymmetric`);
    if (start.shape[0] !== rows || start.shape[1] !== columns || start.format.type !== 'int' || start.format.bits !== format.bits || !start.format.symmetric || start.scales.length !== groups || start.permutation || start.tensorScale !== undefined) {
      throw new UnsupportedFormatError(`the start solution must be on the same grid: ${rows}x${columns}, int${format.bits} symmetric, ${groups} groups, no permutation; got ${start.shape.join("x")}, ${start.format.type === "int" ? `int${start.format.bits}${start.format.symmetric ? "" : "-asym"}` : start.format.type}, ${start.scales.length} groups${start.permutation ? ', permuted' : ''}`);
    }
    base = new Float32Array(w.length);
    startScales = start.scales;
    for (let g = 0; g < groups; g++) {
      const range = Math.max(-Math.min(stats.min[g]!, 0), Math.max(stats.max[g]!, 0));
      ranges[g] = range;
      rangeFactor[g] = range > 0 ? (start.scales[g]! * (half - 0.5)) / range : 1;
    }
    for (let i = 0; i < w.length; i++) {
      const s0 = start.scales[ids[i]!]!;
      base[i] = s0 > 0 ? start.codes[i]! - half - w[i]! / s0 : 0;
    }
  }

  // The last parameters' clipping factors and their group scales: an iteration's backward asks for the scales its
  // forward computed (the factors have not moved in between), and they are read-only, so they are returned again.
  let cached: { minScale: Float32Array; maxScale: Float32Array; scales: GroupScale } | undefined;
  const sameFactors = (p: RoundingParameters): boolean => {
    if (!cached || p.minScale.length !== groups || p.maxScale.length !== groups) return false;
    const { minScale, maxScale } = cached;
    for (let g = 0; g < groups; g++) if (!Object.is(minScale[g], p.minScale[g]) || !Object.is(maxScale[g], p.maxScale[g])) return false;
    return true;
  };
  const scales = (p: RoundingParameters): GroupScale => {
    if (sameFactors(p)) return cached!.scales;
    const computed = computeScales(p);
    cached = { minScale: Float32Array.from(p.minScale), maxScale: Float32Array.from(p.maxScale), scales: computed };
    return computed;
  };
  const computeScales = (p: RoundingParameters): GroupScale => {
    const scale = new Float64Array(groups);
    const zero = new Float64Array(groups);
    const lo = new Float64Array(groups);
    for (let g = 0; g < groups; g++) {
      const mn = Math.min(stats.min[g]!, 0) * p.minScale[g]!;
      const mx = Math.max(stats.max[g]!, 0) * p.maxScale[g]!;
      if (symmetric) {
        // With a start: its scale times the clipped fraction of the range (exactly the start's scale at factors 1).
        scale[g] = startScales
          ? ranges[g]! > 0
            ? roundScale(startScales[g]! * (Math.max(-mn, mx) / ranges[g]!), encoding, 'up')
            : startScales[g]!
          : roundScale(Math.max(-mn, mx) / (half - 0.5), encoding, 'up');
        zero[g] = half;
      } else {
        const s = roundScale((mx - mn) / maxq, encoding, 'up');
        scale[g] = s;
        lo[g] = mn;
        zero[g] = s > 0 ? clamp(roundHalfEven(-mn / s), 0, maxq) : 0;
      }
    }
    return { scale, zero, lo };
  };

  /** Code of element i (0..levels-1) and whether the unclamped code was inside the grid. */
  const codeOf = (i: number, p: RoundingParameters, gs: GroupScale): number => {
    const g = ids[i]!;
    const s = gs.scale[g]!;
    if (!(s > 0)) return symmetric ? half : gs.zero[g]!;
    const r = float32 ? roundHalfEven(ratioPlusOffsets32(w[i]!, Math.fround(s), p.offset[i]!, base ? base[i]! : undefined)) : roundHalfEven(w[i]! / s + p.offset[i]! + (base ? base[i]! : 0));
    return symmetric ? clamp(r, -half, half - 1) + half : clamp(r + gs.zero[g]!, 0, maxq);
  };

  const runs = groupRuns(ids);
  const kernel = options.kernels && w instanceof Float32Array ? kernelFor(options.kernels, w, base, runs, groups) : undefined;
  const grid = { zeroPoints: !symmetric, lowest: symmetric ? -half : 0, highest: symmetric ? half - 1 : maxq, float32 };
  /**
   * The kernel's scales and offsets for the parameters (the scales copied only when they changed), and the grid of
   * its call: the first `initial()` parameters' offsets live in the kernel (nothing to copy), others are copied in.
   */
  let kernelScales: GroupScale | undefined;
  const loadKernel = (k: LearnableRoundingKernel, p: RoundingParameters, gs: GroupScale): typeof grid & { copy: boolean } => {
    if (kernelScales !== gs) {
      k.scale.set(gs.scale);
      if (!symmetric) k.zero.set(gs.zero);
      kernelScales = gs;
    }
    const copy = p.offset !== k.offset;
    if (copy) k.offsetCopy.set(p.offset);
    return { ...grid, copy };
  };
  let residentGiven = false;
  const gridState = (p: RoundingParameters, gs: GroupScale): GridState => ({
    w,
    runStart: runs.runStart,
    runGroup: runs.runGroup,
    scale: gs.scale,
    zero: symmetric ? undefined : gs.zero,
    offset: p.offset,
    base,
    lowest: grid.lowest,
    highest: grid.highest,
  });

  // dequantizeKept's array without a kernel (made on first use).
  let kept: Float32Array | undefined;

  // The gradients' arrays, made on the first backward call and reused by later ones (the kernel's, with one).
  let gradients: { offset: Float32Array; scale: Float64Array; zero: Float64Array; min: Float64Array; max: Float64Array } | undefined;

  return {
    plan,
    rows,
    columns,
    initial() {
      const scales = { minScale: new Float32Array(groups).fill(1), maxScale: new Float32Array(groups).fill(1) };
      if (!kernel || residentGiven) return { offset: new Float32Array(rows * columns), ...scales };
      // The first parameters' offsets live in the kernel's memory, where SignSGD steps them (signSgd asks first).
      residentGiven = true;
      const resident = kernel;
      resident.offset.fill(0);
      registerSignStep(resident.offset, (grads, rate, lowest, highest, float32Step) => {
        if (grads !== resident.offsetGradient) return false;
        resident.signStep(rate, lowest, highest, float32Step);
        return true;
      });
      return { offset: resident.offset, ...scales };
    },
    gradientBuffer() {
      return kernel?.gradient;
    },
    dequantizeKept(p) {
      if (kernel && p.offset.length === kernel.offset.length) {
        kernel.dequantize(loadKernel(kernel, p, scales(p)));
        return kernel.dequantized;
      }
      kept ??= new Float32Array(rows * columns);
      (float32 ? dequantizeInto32 : dequantizeInto)(gridState(p, scales(p)), kept);
      return kept;
    },
    dequantize(p, out = new Float32Array(rows * columns)) {
      const gs = scales(p);
      if (kernel && p.offset.length === kernel.offset.length && out.length === kernel.dequantized.length) {
        kernel.dequantize(loadKernel(kernel, p, gs));
        out.set(kernel.dequantized);
      } else (float32 ? dequantizeInto32 : dequantizeInto)(gridState(p, gs), out);
      return out;
    },
    backward(p, gradWeight, gradInput) {
      const gs = scales(p);
      gradients ??= kernel
        ? { offset: kernel.offsetGradient, scale: kernel.scaleGradient, zero: kernel.zeroGradient, min: new Float64Array(groups), max: new Float64Array(groups) }
        : { offset: new Float32Array(w.length), scale: new Float64Array(groups), zero: new Float64Array(groups), min: new Float64Array(groups), max: new Float64Array(groups) };
      const { offset: dOffset, scale: dScale, zero: dZero, min: dMin, max: dMax } = gradients;
      dScale.fill(0);
      dZero.fill(0);
      dMin.fill(0);
      dMax.fill(0);
      // The kernel takes float32 gradients (a float64 one would be rounded on the way in) and no input gradient.
      if (kernel && !gradInput && gradWeight instanceof Float32Array && gradWeight.length === w.length && p.offset.length === w.length) {
        const call = loadKernel(kernel, p, gs);
        if (gradWeight !== kernel.gradient) kernel.gradient.set(gradWeight);
        kernel.backward(call);
      } else (float32 ? offsetAndScaleGradients32 : offsetAndScaleGradients)(gridState(p, gs), gradWeight, dOffset, dScale, dZero, gradInput);
      for (let g = 0; g < groups; g++) {
        const s = gs.scale[g]!;
        if (!(s > 0)) continue;
        const wmin = Math.min(stats.min[g]!, 0);
        const wmax = Math.max(stats.max[g]!, 0);
        if (symmetric) {
          // s = max(-wmin * a, wmax * b) / (half - 1/2): the gradient goes to the larger side.
          const dm = (dScale[g]! * rangeFactor[g]!) / (half - 0.5);
          if (-wmin * p.minScale[g]! >= wmax * p.maxScale[g]!) dMin[g] = dm * -wmin;
          else dMax[g] = dm * wmax;
        } else {
          // z = round(-lo / s) passed straight through: dz/ds = lo / s^2, dz/dlo = -1 / s; s = (hi - lo) / maxq.
          const lo = gs.lo[g]!;
          const dsTotal = dScale[g]! + (dZero[g]! * lo) / (s * s);
          const dLo = -dZero[g]! / s - dsTotal / maxq;
          const dHi = dsTotal / maxq;
          dMin[g] = dLo * wmin;
          dMax[g] = dHi * wmax;
        }
      }
      return { offset: dOffset, minScale: dMin, maxScale: dMax };
    },
    quantize(p) {
      const gs = scales(p);
      const codes = new Uint8Array(w.length);
      for (let i = 0; i < w.length; i++) codes[i] = codeOf(i, p, gs);
      return {
        shape: [rows, columns],
        format,
        granularity: plan.granularity,
        codes,
        scales: Float32Array.from(gs.scale),
        scaleEncoding: encoding,
        ...(symmetric ? {} : { zeroPoints: Float32Array.from(gs.zero) }),
      };
    },
  };
}

/** A kernel for the weight `w` (and start offsets `base`), its fixed arrays filled. */
function kernelFor(factory: LearnableRoundingKernelFactory, w: Float32Array, base: Float32Array | undefined, runs: { runStart: Int32Array; runGroup: Int32Array }, groups: number): LearnableRoundingKernel {
  const kernel = factory({ length: w.length, runs: runs.runGroup.length, groups, base: base !== undefined });
  kernel.weight.set(w);
  if (base) kernel.base.set(base);
  kernel.runStart.set(runs.runStart);
  kernel.runGroup.set(runs.runGroup);
  return kernel;
}

/** `1.5 * 2^52`: `(u + SHIFT) - SHIFT` is `u` rounded to an integer, ties to even, for `|u| < 2^51`. */
const SHIFT = 6755399441055744;

/**
 * Round half to even without core's care for the sign of a zero result (the callers add `+ 0` or only compare), so the
 * hot loops below take no data-dependent branch for it; `|u| >= 2^51` (a weight over a vanishing scale) goes to core.
 */
function nearestEven(u: number): number {
  return u > -2251799813685248 && u < 2251799813685248 ? u + SHIFT - SHIFT : roundHalfEven(u);
}

/** One evaluation of the learnable grid: the weight, its groups, this iteration's scales and the parameters. */
interface GridState {
  readonly w: Float32Array;
  /** The weights as runs of one group: run `r` is elements `runStart[r]` to `runStart[r + 1] - 1`, all of group `runGroup[r]`. */
  readonly runStart: Int32Array;
  readonly runGroup: Int32Array;
  readonly scale: Float64Array;
  /** Per-group zero points; absent for symmetric grids (codes centred on 0). */
  readonly zero: Float64Array | undefined;
  readonly offset: Float32Array;
  /** Fixed per-weight start offsets (`start` option), or absent. */
  readonly base: Float32Array | undefined;
  readonly lowest: number;
  readonly highest: number;
}

/**
 * The layout's group ids as runs of equal ids (a group of 128 columns is one run per row): the hot loops below then
 * read each run's scale and zero point once instead of once per element.
 */
function groupRuns(ids: Int32Array): { runStart: Int32Array; runGroup: Int32Array } {
  let count = 0;
  for (let i = 0; i < ids.length; i++) if (i === 0 || ids[i] !== ids[i - 1]) count++;
  const runStart = new Int32Array(count + 1);
  const runGroup = new Int32Array(count);
  let r = 0;
  for (let i = 0; i < ids.length; i++) {
    if (i === 0 || ids[i] !== ids[i - 1]) {
      runStart[r] = i;
      runGroup[r] = ids[i]!;
      r++;
    }
  }
  runStart[count] = ids.length;
  return { runStart, runGroup };
}

/**
 * `out[i] = s (clamp(round(w[i] / s + b[i] + v[i]) + z, lowest, highest) - z)` per element, with its group's scale `s`
 * and zero point `z`. A zero scale gives 0. Top-level so V8 optimises it once (it runs over every weight of the block
 * in every AutoRound iteration).
 */
function dequantizeInto(grid: GridState, out: Float32Array): void {
  const { w, runStart, runGroup, scale, zero, offset, base, lowest, highest } = grid;
  for (let r = 0; r < runGroup.length; r++) {
    const g = runGroup[r]!;
    const from = runStart[r]!;
    const to = runStart[r + 1]!;
    const s = scale[g]!;
    if (!(s > 0)) {
      out.fill(0, from, to);
      continue;
    }
    const z = zero ? zero[g]! : 0;
    for (let i = from; i < to; i++) {
      const ratio = w[i]! / s;
      let c = nearestEven(base ? ratio + offset[i]! + base[i]! : ratio + offset[i]!) + z;
      c = c < lowest ? lowest : c > highest ? highest : c;
      out[i] = (c - z) * s + 0;
    }
  }
}

/**
 * The straight-through backward of {@link dequantizeInto}: inside the grid `w' = s round(w / s + v)` gives
 * `dv = G s` and `ds += G (r - w / s)`; clamped elements give `dv = 0`, `ds += G (q - z)` and, asymmetric,
 * `dz += -G s`. Writes every element of `dOffset`; adds into `dScale` and `dZero` (element by element in order).
 */
function offsetAndScaleGradients(grid: GridState, gradWeight: ArrayLike<number>, dOffset: Float32Array, dScale: Float64Array, dZero: Float64Array, dInput?: Float32Array): void {
  if (dInput) dInput.fill(0);
  const { w, runStart, runGroup, scale, zero, offset, base, lowest, highest } = grid;
  for (let r = 0; r < runGroup.length; r++) {
    const g = runGroup[r]!;
    const from = runStart[r]!;
    const to = runStart[r + 1]!;
    const s = scale[g]!;
    if (!(s > 0)) {
      dOffset.fill(0, from, to);
      continue;
    }
    const z = zero ? zero[g]! : 0;
    // The group's sums carried in locals: the same additions in the same order as adding into the arrays.
    let ds = dScale[g]!;
    let dz = dZero[g]!;
    for (let i = from; i < to; i++) {
      const G = gradWeight[i]!;
      const ratio = w[i]! / s;
      const rounded = nearestEven(base ? ratio + offset[i]! + base[i]! : ratio + offset[i]!);
      const shifted = rounded + z;
      if (shifted >= lowest && shifted <= highest) {
        // w' = s * round(w / s + b + v) (the zero point cancels): dw'/dv = s, dw'/ds = r - w / s.
        dOffset[i] = G * s;
        ds += G * (rounded - ratio);
        if (dInput) dInput[i] = G;
      } else {
        // w' = s * (q_clamped - z): dw'/ds = q - z at fixed z, dw'/dz = -s.
        const q = (shifted < lowest ? lowest : highest) - z;
        dOffset[i] = 0;
        ds += G * q;
        if (zero) dz += -G * s;
      }
    }
    dScale[g] = ds;
    dZero[g] = dz;
  }
}

/** `w / s + v (+ b)` in float32 (each operation rounded to float32: the float64 result of one operation on float32 values rounds to the float32 result). */
function ratioPlusOffsets32(w: number, s: number, v: number, b: number | undefined): number {
  const u = Math.fround(Math.fround(w / s) + v);
  return b === undefined ? u : Math.fround(u + b);
}

/** {@link dequantizeInto} in float32 (the `'native'` arithmetic): the scale rounded to float32, every operation in float32. */
function dequantizeInto32(grid: GridState, out: Float32Array): void {
  const { w, runStart, runGroup, scale, zero, offset, base, lowest, highest } = grid;
  for (let r = 0; r < runGroup.length; r++) {
    const g = runGroup[r]!;
    const from = runStart[r]!;
    const to = runStart[r + 1]!;
    const s = Math.fround(scale[g]!);
    if (!(s > 0)) {
      out.fill(0, from, to);
      continue;
    }
    const z = zero ? Math.fround(zero[g]!) : 0;
    for (let i = from; i < to; i++) {
      let c = Math.fround(nearestEven(ratioPlusOffsets32(w[i]!, s, offset[i]!, base ? base[i]! : undefined)) + z);
      c = c < lowest ? lowest : c;
      c = c > highest ? highest : c;
      out[i] = Math.fround(Math.fround(c - z) * s) + 0;
    }
  }
}

/**
 * {@link offsetAndScaleGradients} in float32 (the `'native'` arithmetic): every product and sum in float32, each run's
 * group sums in four lanes (lane `k` takes the run's elements `from + 4 j + k`), combined as `(l0 + l1) + (l2 + l3)`,
 * the run's last `length % 4` elements added one by one, and the run's sum added to the group's float64 sum.
 */
function offsetAndScaleGradients32(grid: GridState, gradWeight: ArrayLike<number>, dOffset: Float32Array, dScale: Float64Array, dZero: Float64Array, dInput?: Float32Array): void {
  if (dInput) dInput.fill(0);
  const { w, runStart, runGroup, scale, zero, offset, base, lowest, highest } = grid;
  const f = Math.fround;
  // Per run: the four lanes' sums, then the run's last `length % 4` terms, added after the lanes are combined.
  const ds = new Float64Array(4);
  const dz = new Float64Array(4);
  const tail = new Float64Array(3);
  const tailZero = new Float64Array(3);
  const combined = (lanes: Float64Array): number => f(f(lanes[0]! + lanes[1]!) + f(lanes[2]! + lanes[3]!));
  for (let r = 0; r < runGroup.length; r++) {
    const g = runGroup[r]!;
    const from = runStart[r]!;
    const to = runStart[r + 1]!;
    const s = f(scale[g]!);
    if (!(s > 0)) {
      dOffset.fill(0, from, to);
      continue;
    }
    const z = zero ? f(zero[g]!) : 0;
    const qLow = f(lowest - z);
    const qHigh = f(highest - z);
    ds.fill(0);
    dz.fill(0);
    const lanesEnd = from + ((to - from) & ~3);
    for (let i = from; i < to; i++) {
      const G = f(gradWeight[i]!);
      const ratio = f(w[i]! / s);
      const rounded = nearestEven(base ? f(f(ratio + offset[i]!) + base[i]!) : f(ratio + offset[i]!));
      const shifted = f(rounded + z);
      const inside = shifted >= lowest && shifted <= highest;
      const term = f(G * (inside ? f(rounded - ratio) : shifted < lowest ? qLow : qHigh));
      const gs = f(G * s);
      dOffset[i] = inside ? gs : 0;
      if (dInput) dInput[i] = inside ? G : 0;
      // Inside the grid the zero point's term is 0 (subtracting it leaves every value as it was, -0 included).
      if (i < lanesEnd) {
        const k = (i - from) & 3;
        ds[k] = f(ds[k]! + term);
        if (zero) dz[k] = f(dz[k]! - (inside ? 0 : gs));
      } else {
        tail[i - lanesEnd] = term;
        tailZero[i - lanesEnd] = inside ? 0 : gs;
      }
    }
    let sum = combined(ds);
    let sumZero = combined(dz);
    for (let j = 0; j < to - lanesEnd; j++) {
      sum = f(sum + tail[j]!);
      sumZero = f(sumZero - tailZero[j]!);
    }
    dScale[g] = dScale[g]! + sum;
    if (zero) dZero[g] = dZero[g]! + sumZero;
  }
}
