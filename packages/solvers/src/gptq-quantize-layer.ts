import {
  firstNonFinite,
  AbortError,
  InvalidArgumentError,
  NumericalError,
  ShapeMismatchError,
  bitsPerWeight as storageBits,
  computeScales,
  dequantize,
  elementCodec,
  groupIndexOfColumns,
  groupLayout,
  groupStatistics,
  parseFormat,
  planQuantization,
  rangeSearch,
  type FormatSpec,
  type Granularity,
  type GroupStatistics,
  type Matrix,
  type QuantizationPlan,
  type QuantizedTensor,
  type RangeSearchOptions,
  type ResidentHessian,
  type ScaleEncoding,
  type StepWarning,
} from '@bitsmith/core';
import { createGptqColumnKernel, defaultBackend, webgpuDiagonal, webgpuGptqSolve, WEBGPU_GPTQ_MAX_BLOCK, type Backend, type GptqColumnKernel, type WebgpuBackend, type WebgpuMatrix } from '@bitsmith/linalg';
import { actOrderPermutation } from './act-order.js';
import { dampedInverseFactor, dampedInverseFactorWebgpu } from './damped-inverse-factor.js';

/** Options of {@link gptqQuantizeLayer} and {@link gptq}. */
export interface GptqOptions {
  /** Any core number format, as a spec or a name for `parseFormat` (`int4`, `int3`, `int4-asym`, `nf4`, `fp4`, `mxfp4`, ...). */
  format: FormatSpec | string;
  /**
   * Which weights share a scale. Default `channel` (fixed blocks for MX/NVFP4). With `group`, each group's scale
   * (and zero point) is computed from the current, error-updated weights when GPTQ reaches the group's first column.
   */
  granularity?: Granularity;
  /** Scale storage encoding. Default `float16` (fixed for MX and NVFP4). */
  scaleEncoding?: ScaleEncoding;
  /**
   * Fraction of the mean Hessian diagonal added to the diagonal before the inverse. Default 0.01 (GPTQ's `percdamp`).
   * When the Cholesky factorization fails it is raised x10 (up to `maxDampening`) and a warning is returned.
   */
  dampening?: number;
  /** Largest dampening tried after failures. Default 10. */
  maxDampening?: number;
  /**
   * Columns per lazy batch: inside a block the columns are updated one by one; the block's accumulated error is then
   * applied to all later columns through one GEMM. Default 128. Changes speed, not the result (up to rounding).
   */
  blockSize?: number;
  /**
   * Act-order (`desc_act`): quantize columns by descending Hessian diagonal. The order is recorded as the
   * quantized tensor's `permutation`, so with group granularity groups follow it (GPTQ's `g_idx`). Default false.
   */
  actOrder?: boolean;
  /**
   * With group granularity: compute every group's scale up front from the original weights in natural column order
   * (GPTQModel's `static_groups`), so that with act-order the groups stay contiguous (no `permutation` is recorded
   * and `g_idx` is `column / size`). Default false.
   */
  staticGroups?: boolean;
  /**
   * Choose each group's clipping range by core's `rangeSearch` (MSE-optimal shrink of the group's range, as
   * GPTQModel's `mse` option) when the group's scale is computed. `true` uses rangeSearch's defaults. Default false.
   */
  rangeSearch?: boolean | Pick<RangeSearchOptions, 'steps' | 'minShrink' | 'norm'>;
  /**
   * Precision of the inverse factor `U`: `'float64'`, or `'mixed'` (default): layers wider than 2048 inputs get
   * linalg's mixed-precision recursion (float32 GEMMs for the off-diagonal products, float64 Schur complements and
   * diagonal blocks; checked by a residual probe and recomputed in float64 when it fails). Narrower layers are always
   * factored in float64. `'gpu'`: on a `webgpu` backend, `U` is formed on the GPU in float32 (linalg's
   * `webgpuCholeskyInverseUpper`, the reference implementation's CUDA arithmetic) and handed to the GPU column loop
   * without a copy back; elsewhere, and with GPTAQ's asymmetric term, as `'mixed'`.
   */
  factorPrecision?: 'float64' | 'mixed' | 'gpu';
  /** Backend for the factorization and the block updates. Default `defaultBackend()` (the fastest available). */
  backend?: Backend;
  /** Cancellation, checked between blocks of columns. */
  signal?: AbortSignal;
}

/** Options of {@link gptqQuantizeLayer}: {@link GptqOptions} and how the column loop runs. */
export interface GptqLayerOptions extends GptqOptions {
  /**
   * Where the column loop inside each block runs: `'wasm'` (linalg's WebAssembly SIMD kernel, for integer grids; other
   * formats, GPTAQ's asymmetric term and block granularity use JavaScript) or `'js'`. Both give bit-identical codes
   * and weights. Default `'wasm'`, falling back to JavaScript where WebAssembly SIMD is unavailable.
   */
  columnLoop?: 'wasm' | 'js';
  /**
   * Columns per outer block of the two-level lazy batch update (rounded down to a multiple of `blockSize`): after each
   * outer block, its errors update every later column in one GEMM of this depth. Layers with at most this many input
   * columns run the reference's single level exactly; `Infinity` always does. Default 1024.
   */
  outerBlockSize?: number;
}

/**
 * GPTAQ's asymmetric-calibration term (arXiv 2504.02692) for {@link gptqQuantizeLayer}: the layer's target is the
 * float model's output `W X_float` while the quantized layer sees the quantized model's inputs `X`.
 */
export interface AsymmetricCalibration {
  /** `D = (X_float - X)^T X`, float64 `[in, in]`, scaled like the Hessian (`X^T X`) it goes with. */
  readonly cross: Float64Array;
  /** Weight of the asymmetric correction, in [0, 1]. Default 0.25 (the paper's and reference code's choice). */
  readonly alpha?: number;
}

/** Result of {@link gptqQuantizeLayer}. */
export interface GptqLayerResult {
  /** Codes (natural column order), scales, zero points and, with act-order, the permutation. */
  readonly quantized: QuantizedTensor;
  /** The dequantized weight `[rows, columns]` (equals `dequantize(quantized)`). */
  readonly weight: Matrix;
  /** Storage bits per weight (codes, scales, zero points). */
  readonly bitsPerWeight: number;
  /** Dampening fraction actually used (above the requested one when the factorization had to be retried). */
  readonly dampening: number;
  /** Recoverable problems: raised dampening, dead input columns. */
  readonly warnings: readonly StepWarning[];
  /** Seconds spent in dampening + inverse Cholesky factor, and in the column-by-column solve. */
  readonly timings: { readonly factorization: number; readonly solve: number };
}

/** Columns updated one by one before their errors are applied to the rest of the block by GEMM. */
const INNER_BLOCK = 16;

/** Columns per outer block of the two-level lazy batch update (a multiple of the block size is used). */
const OUTER_BLOCK = 1024;

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now()) / 1000;

function checkFinite(data: ArrayLike<number>, what: string, columns: number): void {
  // core's scan (float32 and float64 arrays by their exponent bits), then the element named.
  const i = firstNonFinite(data);
  if (i < 0) return;
  throw new NumericalError(`${what} element [${Math.floor(i / columns)}, ${i % columns}] is ${data[i]!}`, `GPTQ needs a finite ${what}`);
}

/**
 * Scales of one group of consecutive (in processing order) input columns, computed by core's scale machinery on a
 * `[rows, width]` view of the current weights. Returns per-row sub-group ids through `subPlan.layout`.
 */
function columnGroupScales(
  scratch: Float32Array,
  rows: number,
  width: number,
  format: FormatSpec,
  granularity: Granularity,
  scaleEncoding: ScaleEncoding | undefined,
  search: Pick<RangeSearchOptions, 'steps' | 'minShrink' | 'norm'> | undefined,
  globalAbsMax: number,
): { plan: QuantizationPlan; scales: Float32Array; zeroPoints?: Float32Array } {
  const subGranularity: Granularity =
    granularity.type === 'block' ? { type: 'block', rows: granularity.rows, columns: width } : { type: 'group', size: width };
  const base = { format, granularity: subGranularity, ...(scaleEncoding ? { scaleEncoding } : {}) };
  const plan = planQuantization(rows, width, base);
  let stats: GroupStatistics = groupStatistics(scratch, plan.layout, width);
  let clip: Float32Array | undefined = search ? rangeSearch({ dtype: 'float32', shape: [rows, width], data: scratch }, { ...base, ...search }) : undefined;
  if (plan.codec.scaleRule === 'nvfp4') {
    // NVFP4's second-level scale is one per tensor: add a phantom group carrying the whole (original) tensor's
    // absmax so that computeScales derives the same tensor scale for every column group.
    const extend = (a: Float64Array, v: number): Float64Array => {
      const out = new Float64Array(a.length + 1);
      out.set(a);
      out[a.length] = v;
      return out;
    };
    stats = { min: extend(stats.min, -globalAbsMax), max: extend(stats.max, globalAbsMax), sumAbs: extend(stats.sumAbs, 0), count: extend(stats.count, 1) };
    if (clip) {
      const c = new Float32Array(clip.length + 1).fill(1);
      c.set(clip);
      clip = c;
    }
    const layout = { ...plan.layout, count: plan.layout.count + 1 };
    const { scales, zeroPoints } = computeScales({ ...plan, layout }, stats, clip);
    return { plan, scales, ...(zeroPoints ? { zeroPoints } : {}) };
  }
  const { scales, zeroPoints } = computeScales(plan, stats, clip);
  return { plan, scales, ...(zeroPoints ? { zeroPoints } : {}) };
}

/**
 * GPTQ (Frantar et al., arXiv:2210.17323): quantizes one linear layer's weight column by column, each time
 * spreading the rounding error over the not-yet-quantized columns through the inverse Hessian, so that the layer
 * objective `tr((W - Q) H (W - Q)^T)` (H = X^T X of the calibration inputs) is much lower than round-to-nearest's.
 *
 * Follows the reference `fasterquant` (IST-DASLab/gptq, GPTQModel): dead columns (`H_ii = 0`) get `H_ii = 1` and
 * zero weights; `H += dampening * mean(diag H) * I`; `U = chol(H^-1)` upper; then for blocks of `blockSize`
 * columns, each column is quantized (`q = Q(w)`), its scaled error `(w - q) / U_ii` updates the block's later
 * columns, and the block's errors update all later columns in one GEMM. Works with any core format: scales come
 * from core's `planQuantization`/`groupStatistics`/`computeScales` on the current weights of each group.
 * Weights are float32 (stored transposed so a column is contiguous), the inverse factor float64.
 *
 * @param weight - `[outFeatures, inFeatures]` float32. Not modified.
 * @param hessianInput - `inFeatures x inFeatures` float64 `X^T X` (any positive scaling), or core's `ResidentHessian`
 *   (a model's GPU Hessian): on the same webgpu backend with `factorPrecision: 'gpu'`, no act-order, no GPTAQ term
 *   and no dead column it is factored where it is; otherwise it is read back. Not modified.
 * @param options - See {@link GptqOptions}: `format` (required), `granularity` (`channel`), `scaleEncoding`
 *   (`float16`), `dampening` (0.01), `maxDampening` (10), `blockSize` (128), `actOrder` (false), `staticGroups`
 *   (false), `rangeSearch` (false), `factorPrecision` (`'mixed'`), `backend` (`defaultBackend()`), `signal`, `columnLoop` (`'wasm'`), `outerBlockSize` (1024).
 * @param asymmetric - GPTAQ (arXiv 2504.02692): with the cross term `D = (X_float - X)^T X`, every column update also
 *   moves the later columns by `w_i P[i, :]`, `P = alpha triu(D U^T, 1) U` (U the upper factor of `H^-1`), so the
 *   layer fits the float model's output `W X_float` from the quantized inputs `X`. As the reference code: within a
 *   block of `blockSize` columns the pre-rounding value `w_i` is used, across blocks the rounded one.
 * @throws `NumericalError` on NaN/infinite weights or Hessian, or a Hessian no dampening up to `maxDampening` fixes;
 *   `ShapeMismatchError` when the Hessian does not match the weight; `InvalidArgumentError` on bad options.
 * @example
 * ```ts
 * const { quantized, weight: wq, warnings } = await gptqQuantizeLayer(w, hessian, {
 *   format: 'int4', granularity: { type: 'group', size: 128 }, actOrder: true,
 * });
 * ```
 */
export async function gptqQuantizeLayer(
  weight: Matrix,
  hessianInput: Float64Array | ResidentHessian,
  options: GptqLayerOptions,
  asymmetric?: AsymmetricCalibration,
): Promise<GptqLayerResult> {
  const [rows, n] = weight.shape;
  if (weight.data.length !== rows * n) throw new ShapeMismatchError('weight', [rows, n], [weight.data.length], 'data length');
  // A Hessian resident on this webgpu backend goes straight to the GPU factor (factorPrecision 'gpu', no act-order,
  // no GPTAQ term, no dead column); any other is read back as the float64 matrix it stands for.
  let residentHessian: { matrix: WebgpuMatrix; diagonal: Float32Array } | undefined;
  let hessian: Float64Array;
  if (hessianInput instanceof Float64Array) {
    hessian = hessianInput;
  } else {
    if (!hessianInput || typeof hessianInput.read !== 'function' || hessianInput.columns !== n) {
      throw new ShapeMismatchError('hessian', [n, n], [hessianInput?.columns ?? 0], `a float64 ${n} x ${n} matrix (or a resident one) for a weight with ${n} input columns`);
    }
    residentHessian = await residentOnBackend(hessianInput, n, options, asymmetric !== undefined);
    hessian = residentHessian ? new Float64Array(0) : await hessianInput.read();
  }
  if (!residentHessian && (!(hessian instanceof Float64Array) || hessian.length !== n * n)) {
    throw new ShapeMismatchError('hessian', [n, n], [hessian.length], `a float64 ${n} x ${n} matrix for a weight with ${n} input columns`);
  }
  const format = typeof options.format === 'string' ? parseFormat(options.format) : options.format;
  const blockSize = options.blockSize ?? 128;
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new InvalidArgumentError('blockSize', `got ${blockSize}; expected a positive integer`);
  const dampening = options.dampening ?? 0.01;
  if (!(dampening >= 0) || !Number.isFinite(dampening)) throw new InvalidArgumentError('dampening', `got ${dampening}; expected a finite number >= 0`);
  const actOrder = options.actOrder ?? false;
  const search = options.rangeSearch === true ? {} : options.rangeSearch || undefined;
  const plan = planQuantization(rows, n, {
    format,
    ...(options.granularity ? { granularity: options.granularity } : {}),
    ...(options.scaleEncoding ? { scaleEncoding: options.scaleEncoding } : {}),
  });
  const granularity = plan.granularity;
  const codec = elementCodec(format);
  checkFinite(weight.data, 'weight', n);
  if (residentHessian) {
    // A Gram matrix's non-finite entries show on its diagonal (a non-finite input, or a product that overflowed).
    const i = firstNonFinite(residentHessian.diagonal);
    if (i >= 0) throw new NumericalError(`hessian element [${i}, ${i}] is ${residentHessian.diagonal[i]!}`, 'GPTQ needs a finite hessian');
  } else checkFinite(hessian, 'hessian', n);
  const backend = options.backend ?? (await defaultBackend());
  const warnings: StepWarning[] = [];

  const t0 = now();
  // Dead inputs (never active in calibration): H_ii = 1 and the weight column set to 0, as the reference does.
  // The Hessian and the weight are copied only when a dead column changes them (the factorization works on its own
  // copy; the weight is only read, into its transposed working copy and, for up-front scales, statistics).
  let h = hessian;
  let w = weight.data instanceof Float32Array ? weight.data : Float32Array.from(weight.data);
  let deadCount = 0;
  for (let c = 0; !residentHessian && c < n; c++) {
    if (h[c * n + c] === 0) {
      if (h === hessian) h = hessian.slice();
      if (w === weight.data) w = w.slice();
      h[c * n + c] = 1;
      for (let r = 0; r < rows; r++) w[r * n + c] = 0;
      deadCount++;
    }
  }
  if (deadCount > 0) warnings.push({ step: 'gptq', message: `${deadCount} of ${n} input columns are dead (H_ii = 0); their weights were set to 0` });

  const permutation = actOrder ? actOrderPermutation(h, n) : undefined;
  let hp = h;
  if (permutation) {
    hp = new Float64Array(n * n);
    for (let a = 0; a < n; a++) {
      const src = permutation[a]! * n;
      for (let b = 0; b < n; b++) hp[a * n + b] = h[src + permutation[b]!]!;
    }
  }
  const dampingOptions = { dampening, ...(options.maxDampening !== undefined ? { maxDampening: options.maxDampening } : {}), backend };
  // With factorPrecision 'gpu' on webgpu, U stays resident for the GPU column loop (copied back only if the CPU loop runs).
  let resident: WebgpuMatrix | undefined;
  let u: Float64Array;
  let usedDampening: number;
  if (residentHessian) {
    const damped = await dampedInverseFactorWebgpu(backend as WebgpuBackend, residentHessian.matrix, n, dampingOptions, residentHessian.diagonal);
    resident = damped.factor;
    u = new Float64Array(0);
    usedDampening = damped.dampening;
    warnings.push(...damped.warnings);
  } else if (options.factorPrecision === 'gpu' && backend.name === 'webgpu' && !asymmetric) {
    const damped = await dampedInverseFactorWebgpu(backend as WebgpuBackend, hp, n, dampingOptions);
    resident = damped.factor;
    u = new Float64Array(0);
    usedDampening = damped.dampening;
    warnings.push(...damped.warnings);
  } else {
    const precision = options.factorPrecision === 'gpu' || options.factorPrecision === undefined ? 'mixed' : options.factorPrecision;
    const damped = await dampedInverseFactor(hp, n, { ...dampingOptions, precision });
    u = damped.factor;
    usedDampening = damped.dampening;
    warnings.push(...damped.warnings);
  }
  // GPTAQ: P = alpha * triu(D U^T, 1) U in processing order, D's dead columns zeroed (as the reference does).
  let p32: Float32Array | undefined;
  if (asymmetric) {
    const alpha = asymmetric.alpha ?? 0.25;
    if (!(alpha >= 0 && alpha <= 1)) throw new InvalidArgumentError('alpha', `got ${alpha}; expected a number in [0, 1]`);
    const cross = asymmetric.cross;
    if (!(cross instanceof Float64Array) || cross.length !== n * n) {
      throw new ShapeMismatchError('cross', [n, n], [cross.length], `a float64 ${n} x ${n} matrix (X_float - X)^T X for a weight with ${n} input columns`);
    }
    checkFinite(cross, 'cross term', n);
    const dp = new Float64Array(n * n);
    for (let a = 0; a < n; a++) {
      const src = (permutation ? permutation[a]! : a) * n;
      for (let b = 0; b < n; b++) {
        const cb = permutation ? permutation[b]! : b;
        dp[a * n + b] = hessian[cb * n + cb] === 0 ? 0 : cross[src + cb]!;
      }
    }
    const du = new Float64Array(n * n);
    await backend.dgemm({ m: n, n, k: n, a: dp, b: u, c: du, transB: true });
    for (let a = 0; a < n; a++) for (let b = 0; b <= a; b++) du[a * n + b] = 0;
    const pm = new Float64Array(n * n);
    await backend.dgemm({ m: n, n, k: n, a: du, b: u, c: pm, alpha });
    p32 = Float32Array.from(pm);
  }
  const t1 = now();

  // Scales either up front from the (dead-zeroed) original weights, or per column group as GPTQ reaches it.
  const grouped = granularity.type === 'group' || granularity.type === 'block';
  const dynamic = grouped && !options.staticGroups && !(granularity.type === 'block' && actOrder);
  const recordPermutation = permutation && !(granularity.type === 'group' && !dynamic) ? permutation : undefined;
  const ids = granularity.type === 'block' ? groupLayout(rows, n, granularity, recordPermutation).ids : new Int32Array(0);
  // Group of element (r, c) = r * perRow + columnGroup[c] for tensor/channel/group granularity (avoids a strided
  // lookup per element); block granularity reads the layout.
  const useIds = granularity.type === 'block';
  const perRow = granularity.type === 'group' ? n / granularity.size : granularity.type === 'channel' ? 1 : 0;
  const columnGroup = granularity.type === 'group' ? groupIndexOfColumns(n, granularity.size, recordPermutation) : new Int32Array(n);
  let scales: Float32Array;
  let zeroPoints: Float32Array | undefined;
  let tensorScale: number | undefined;
  let globalAbsMax = 0;
  if (dynamic && plan.codec.scaleRule !== 'nvfp4') {
    // Every group's scale is computed when GPTQ reaches it: nothing to compute up front.
    scales = new Float32Array(plan.layout.count);
    zeroPoints = plan.codec.scaleRule === 'minmax' ? new Float32Array(plan.layout.count) : undefined;
  } else {
    const fullStats = groupStatistics(w, plan.layout, n);
    const clip = !dynamic && search ? rangeSearch({ dtype: 'float32', shape: [rows, n], data: w }, { format, granularity, scaleEncoding: plan.scaleEncoding, ...search }) : undefined;
    const up = computeScales(plan, fullStats, clip);
    scales = up.scales;
    zeroPoints = up.zeroPoints;
    tensorScale = up.tensorScale;
    // NVFP4's tensor scale comes from the whole (original) weight, for every column group alike.
    for (let g = 0; g < fullStats.min.length; g++) globalAbsMax = Math.max(globalAbsMax, -fullStats.min[g]!, fullStats.max[g]!);
  }
  const groupWidth = granularity.type === 'group' ? granularity.size : granularity.type === 'block' ? granularity.columns : n;

  // On a webgpu backend the column loop runs on the GPU (linalg's webgpuGptqSolve) wherever every column's scale is
  // one per row for a run of consecutive processing-order columns: channel granularity, or groups that follow the
  // processing order (dynamic) or the natural order without act-order. Scales still come from core, here.
  const onGpu =
    !p32 &&
    backend.name === 'webgpu' &&
    codec.levels <= 256 &&
    (granularity.type === 'channel' || (granularity.type === 'group' && (dynamic || !permutation))) &&
    tensorScale === undefined;
  // W transposed, in processing order: row p of wt is input column permutation[p], so a column is contiguous. The GPU
  // loop in natural order transposes the weight there (the same values) and never reads wt.
  const wt = onGpu && !permutation ? new Float32Array(0) : transposedInOrder(w, rows, n, permutation);
  const codes = codec.levels > 256 ? new Uint16Array(rows * n) : new Uint8Array(rows * n);
  const table = new Float64Array(codec.levels);
  for (let c = 0; c < codec.levels; c++) table[c] = codec.decode(c);
  const zeroCode = codec.encode(0);
  const ts = tensorScale ?? 1;
  const encode = codec.encode;
  // Two levels of lazy batches: after each block of `blockSize` columns its errors update the rest of its outer block
  // of `outer` columns (GEMMs of depth blockSize); after each outer block, all its errors update every later column in
  // one GEMM of depth `outer`, where the backend's GEMM runs near its peak (depth-128 GEMMs reach about half of it).
  // Layers of at most `outer` input columns are one outer block: the reference's single level exactly. GPTAQ keeps
  // one level.
  const outerBlockSize = options.outerBlockSize ?? OUTER_BLOCK;
  if (!(outerBlockSize >= 1)) throw new InvalidArgumentError('outerBlockSize', `got ${outerBlockSize}; expected a number >= 1 (Infinity: one level)`);
  const outer = p32 || outerBlockSize >= n ? n : Math.max(blockSize, Math.floor(outerBlockSize / blockSize) * blockSize);
  const errOuter = new Float32Array(Math.min(outer, n) * rows);
  const hBlock = new Float32Array(Math.min(blockSize, n) * n);
  const hOuter = outer < n ? new Float32Array(outer * (n - outer)) : undefined;
  const hInner = new Float32Array(INNER_BLOCK * Math.min(blockSize, n));
  const scratch = dynamic ? new Float32Array(rows * groupWidth) : undefined;
  const rowScale = new Float64Array(rows);
  const rowZero = new Float64Array(rows);
  // GPTAQ: each column's value before rounding (used within the block) and after (used across blocks).
  const preBlock = p32 ? new Float32Array(Math.min(blockSize, n) * rows) : undefined;
  const roundedBlock = p32 ? new Float32Array(Math.min(blockSize, n) * rows) : undefined;
  const pInner = p32 ? new Float32Array(INNER_BLOCK * Math.min(blockSize, n)) : undefined;
  const pBlock = p32 ? new Float32Array(Math.min(blockSize, n) * n) : undefined;

  // Group or channel scales by absmax, min-max or absmean without range search: one group per row of the column
  // group, so the statistics are gathered row by row straight from the transposed weights (the same sums in the same
  // order as core's groupStatistics on a [rows, width] copy) and the scales come from core's computeScales.
  const rowwise =
    !search && !useIds && (plan.codec.scaleRule === 'absmax' || plan.codec.scaleRule === 'minmax' || plan.codec.scaleRule === 'absmean');
  const rowPlan: QuantizationPlan = { ...plan, layout: { count: rows, scaleShape: [rows, 1], ids: new Int32Array(0) } };
  const rowStats: GroupStatistics = { min: new Float64Array(rows), max: new Float64Array(rows), sumAbs: new Float64Array(rows), count: new Float64Array(rows) };
  /**
   * Row statistics of `width` consecutive processing-order columns held transposed (`source[(offset + k) * rows + r]`),
   * into `rowStats`: the same sums in the same order as core's groupStatistics on a [rows, width] copy.
   */
  const gatherRowStats = (source: Float32Array, offset: number, width: number, c: number): void => {
    const { min, max, sumAbs } = rowStats;
    min.fill(Infinity);
    max.fill(-Infinity);
    sumAbs.fill(0);
    rowStats.count.fill(width);
    for (let k = 0; k < width; k++) {
      const o = (offset + k) * rows;
      for (let r = 0; r < rows; r++) {
        const x = source[o + r]!;
        if (x < min[r]!) min[r] = x;
        if (x > max[r]!) max[r] = x;
        sumAbs[r] += Math.abs(x);
      }
    }
    for (let r = 0; r < rows; r++) {
      if (!Number.isFinite(sumAbs[r]!)) {
        throw new NumericalError(`GPTQ's updated weights of row ${r} are not finite at input column ${c}`, 'raise the dampening or check the Hessian');
      }
    }
  };

  if (onGpu) {
    const segment = granularity.type === 'group' ? groupWidth : n;
    const { codesT } = await webgpuGptqSolve(backend as WebgpuBackend, {
      rows,
      columns: n,
      ...(permutation ? { weightT: wt } : { weight: w }),
      factor: resident ?? u,
      levels: Float32Array.from(table),
      groupSize: segment,
      blockSize: Math.min(blockSize, WEBGPU_GPTQ_MAX_BLOCK),
      ...(options.signal ? { signal: options.signal } : {}),
      groupScales: (start, width, current) => {
        const c0 = permutation ? permutation[start]! : start;
        if (dynamic && rowwise) {
          // Straight from the transposed current weights, as the CPU loop's startGroup (same sums, same order).
          gatherRowStats(current, 0, width, c0);
          const sub = computeScales(rowPlan, rowStats);
          for (let r = 0; r < rows; r++) {
            const g = r * perRow + columnGroup[c0]!;
            scales[g] = sub.scales[r]!;
            if (zeroPoints) zeroPoints[g] = sub.zeroPoints![r]!;
          }
        } else if (dynamic) {
          const s = scratch!.subarray(0, rows * width);
          for (let k = 0; k < width; k++) for (let r = 0; r < rows; r++) s[r * width + k] = current[k * rows + r]!;
          const sub = columnGroupScales(s, rows, width, format, granularity, options.scaleEncoding, search, globalAbsMax);
          const subIds = sub.plan.layout.ids;
          for (let r = 0; r < rows; r++) {
            const g = r * perRow + columnGroup[c0]!;
            const sg = subIds[r * width]!;
            scales[g] = sub.scales[sg]!;
            if (zeroPoints) zeroPoints[g] = sub.zeroPoints![sg]!;
          }
        }
        const scale = new Float32Array(rows);
        const zero = new Float32Array(rows);
        for (let r = 0; r < rows; r++) {
          const g = r * perRow + columnGroup[c0]!;
          scale[r] = scales[g]!;
          zero[r] = zeroPoints ? zeroPoints[g]! : 0;
        }
        return { scale, zero };
      },
    });
    scatterTransposedCodes(codesT, codes, rows, n, permutation);
  }
  if (resident) {
    if (!onGpu) u = Float64Array.from(await (backend as WebgpuBackend).read(resident));
    (backend as WebgpuBackend).release(resident);
  }

  /** At a group's first column `i` (input column `c`): the group's scales from the current, updated weights. */
  const startGroup = (i: number, c: number): void => {
    const width = Math.min(groupWidth, n - i);
    if (rowwise) {
      gatherRowStats(wt, i, width, c);
      const sub = computeScales(rowPlan, rowStats);
      for (let r = 0; r < rows; r++) {
        const g = r * perRow + columnGroup[c]!;
        scales[g] = sub.scales[r]!;
        if (zeroPoints) zeroPoints[g] = sub.zeroPoints![r]!;
      }
      return;
    }
    const s = scratch!.subarray(0, rows * width);
    for (let k = 0; k < width; k++) {
      const o = (i + k) * rows;
      for (let r = 0; r < rows; r++) s[r * width + k] = wt[o + r]!;
    }
    const sub = columnGroupScales(s, rows, width, format, granularity, options.scaleEncoding, search, globalAbsMax);
    const subIds = sub.plan.layout.ids;
    for (let r = 0; r < rows; r++) {
      const g = useIds ? ids[r * n + c]! : r * perRow + columnGroup[c]!;
      const sg = subIds[r * width]!;
      scales[g] = sub.scales[sg]!;
      if (zeroPoints) zeroPoints[g] = sub.zeroPoints![sg]!;
    }
  };
  /** The scale and zero point of every row for input column `c` (its current group). */
  const loadRowScales = (c: number): void => {
    const cg = columnGroup[c]!;
    for (let r = 0; r < rows; r++) {
      const g = useIds ? ids[r * n + c]! : r * perRow + cg;
      rowScale[r] = scales[g]! * ts;
      rowZero[r] = zeroPoints ? zeroPoints[g]! : 0;
    }
  };

  // Integer grids run the column loop in linalg's WebAssembly SIMD kernel (bit-identical to the loop below).
  const kernel: GptqColumnKernel | undefined =
    !onGpu && !p32 && !useIds && format.type === 'int' && codec.levels <= 256 && tensorScale === undefined && options.columnLoop !== 'js'
      ? await createGptqColumnKernel().catch(() => undefined)
      : undefined;
  // The kernel's codes in processing order (row p holds input column permutation[p]), scattered into `codes` at the end.
  const codesT = kernel ? new Uint8Array(n * rows) : undefined;
  const rowSpare = kernel ? new Float64Array(rows) : undefined;
  const gridLow = codec.decode(0);
  const gridHigh = codec.decode(codec.levels - 1);

  for (let i1 = onGpu ? n : 0; i1 < n; i1 += blockSize) {
    if (options.signal?.aborted) throw new AbortError();
    const i2 = Math.min(i1 + blockSize, n);
    const count = i2 - i1;
    const o1 = Math.floor(i1 / outer) * outer;
    const o2 = Math.min(o1 + outer, n);
    const errBlock = errOuter.subarray((i1 - o1) * rows, (i2 - o1) * rows);
    // Inside the block, columns are updated one by one only within sub-blocks of INNER_BLOCK columns (cut at group
    // starts, so a group's scale always sees fully updated weights); a sub-block's errors reach the rest of the block
    // through a small GEMM. Same arithmetic as the reference's column loop, up to rounding, with 8x less scalar work.
    for (let j1 = i1; j1 < i2; ) {
      let j2 = Math.min(j1 + INNER_BLOCK, i2);
      if (dynamic) j2 = Math.min(j2, (Math.floor(j1 / groupWidth) + 1) * groupWidth);
      if (kernel) {
        // One kernel call per run of columns that share their rows' scales (static or permuted groups can change
        // group inside a sub-block; cut there).
        const c1 = permutation ? permutation[j1]! : j1;
        for (let i = j1 + 1; i < j2; i++) {
          if (columnGroup[permutation ? permutation[i]! : i] !== columnGroup[c1]) {
            j2 = i;
            break;
          }
        }
        if (dynamic && j1 % groupWidth === 0) startGroup(j1, c1);
        loadRowScales(c1);
        for (let r = 0; r < rows; r++) rowSpare![r] = zeroPoints ? rowZero[r]! : zeroCode;
        kernel.quantizeColumns({
          rows,
          count: j2 - j1,
          columns: wt.subarray(j1 * rows, j2 * rows),
          factor: u,
          size: n,
          start: j1,
          scale: rowScale,
          zero: rowZero,
          spare: rowSpare!,
          low: gridLow,
          high: gridHigh,
          shift: -gridLow,
          errors: errBlock.subarray((j1 - i1) * rows, (j2 - i1) * rows),
          codes: codesT!.subarray(j1 * rows, j2 * rows),
        });
      }
      for (let i = kernel ? j2 : j1; i < j2; i++) {
        const c = permutation ? permutation[i]! : i;
        if (dynamic && i % groupWidth === 0) startGroup(i, c);
        loadRowScales(c);
        const d = u[i * n + i]!;
        const o = i * rows;
        const e = errBlock.subarray((i - i1) * rows, (i - i1 + 1) * rows);
        // GPTAQ remembers w_i (before rounding, used within the block) and q_i (used across blocks).
        const pre = preBlock?.subarray((i - i1) * rows, (i - i1 + 1) * rows);
        const rounded = roundedBlock?.subarray((i - i1) * rows, (i - i1 + 1) * rows);
        for (let r = 0; r < rows; r++) {
          const x = wt[o + r]!;
          const s = rowScale[r]!;
          const z = rowZero[r]!;
          const code = s > 0 ? encode(x / s + z) : zeroPoints ? z : zeroCode;
          codes[r * n + c] = code;
          const q = (table[code]! - z) * s;
          e[r] = (x - q) / d;
          if (pre) {
            pre[r] = x;
            rounded![r] = q;
          }
        }
        const ui = i * n;
        if (p32) {
          // GPTAQ: later columns also move by + w_i P[i, j].
          for (let j = i + 1; j < j2; j++) {
            const hij = u[ui + j]!;
            const pij = p32[ui + j]!;
            const oj = j * rows;
            for (let r = 0; r < rows; r++) wt[oj + r] -= hij * e[r]! - pij * pre![r]!;
          }
          continue;
        }
        // Update the block's later columns: W1[:, j] -= err * U[i, j] (equation (3) of the paper, one row of U).
        for (let j = i + 1; j < j2; j++) {
          const hij = u[ui + j]!;
          if (hij === 0) continue;
          const oj = j * rows;
          for (let r = 0; r < rows; r++) wt[oj + r] -= hij * e[r]!;
        }
      }
      if (j2 < i2) {
        // wt[j2:i2] -= U[j1:j2, j2:i2]^T Err[j1:j2] (the transposed slice of U packed row-major)
        const m = i2 - j2;
        const k = j2 - j1;
        const hb = hInner.subarray(0, k * m);
        for (let a = 0; a < k; a++) {
          const src = (j1 + a) * n + j2;
          for (let b = 0; b < m; b++) hb[b * k + a] = u[src + b]!;
        }
        const err = errBlock.subarray((j1 - i1) * rows, (j2 - i1) * rows);
        await backend.sgemm({ m, n: rows, k, a: hb, b: err, c: wt.subarray(j2 * rows, i2 * rows), alpha: -1, beta: 1 });
        if (p32) {
          // + P[j1:j2, j2:i2]^T W_pre[j1:j2] (within the block: values before rounding)
          const pb = pInner!.subarray(0, k * m);
          for (let a = 0; a < k; a++) {
            const src = (j1 + a) * n + j2;
            for (let b = 0; b < m; b++) pb[b * k + a] = p32[src + b]!;
          }
          await backend.sgemm({ m, n: rows, k, a: pb, b: preBlock!.subarray((j1 - i1) * rows, (j2 - i1) * rows), c: wt.subarray(j2 * rows, i2 * rows), alpha: 1, beta: 1 });
        }
      }
      j1 = j2;
    }
    if (i2 < o2) {
      // Lazy batch update: W[:, i2:o2] -= Err1 @ U[i1:i2, i2:o2], here transposed: wt[i2:o2] -= U[i1:i2, i2:o2]^T Err1^T.
      const m = o2 - i2;
      const hb = hBlock.subarray(0, count * m);
      for (let a = 0; a < count; a++) {
        const src = (i1 + a) * n + i2;
        for (let b = 0; b < m; b++) hb[b * count + a] = u[src + b]!;
      }
      await backend.sgemm({ m, n: rows, k: count, a: hb, b: errBlock, c: wt.subarray(i2 * rows, o2 * rows), alpha: -1, beta: 1 });
      if (p32) {
        // + P[i1:i2, i2:]^T Q1 (across blocks: the rounded values, as the reference's W1 holds them after the loop)
        const pb = pBlock!.subarray(0, count * m);
        for (let a = 0; a < count; a++) {
          const src = (i1 + a) * n + i2;
          for (let b = 0; b < m; b++) pb[b * count + a] = p32[src + b]!;
        }
        await backend.sgemm({ m, n: rows, k: count, a: pb, b: roundedBlock!.subarray(0, count * rows), c: wt.subarray(i2 * rows), alpha: 1, beta: 1 });
      }
    }
    if (i2 === o2 && o2 < n) {
      // End of an outer block: wt[o2:] -= U[o1:o2, o2:]^T ErrOuter^T, one GEMM of depth o2 - o1.
      const m = n - o2;
      const k = o2 - o1;
      // U[o1:o2, o2:] in float32, row-major (k x m): contiguous copies, transposed by the GEMM.
      const hb = hOuter!.subarray(0, k * m);
      for (let a = 0; a < k; a++) hb.set(u.subarray((o1 + a) * n + o2, (o1 + a + 1) * n), a * m);
      await backend.sgemm({ m, n: rows, k, a: hb, transA: true, b: errOuter.subarray(0, k * rows), c: wt.subarray(o2 * rows), alpha: -1, beta: 1 });
    }
  }
  if (codesT) {
    scatterTransposedCodes(codesT, codes, rows, n, permutation);
  }
  const t2 = now();

  const quantized: QuantizedTensor = {
    shape: [rows, n],
    format,
    granularity,
    codes,
    scales,
    scaleEncoding: plan.scaleEncoding,
    ...(zeroPoints ? { zeroPoints } : {}),
    ...(tensorScale !== undefined ? { tensorScale } : {}),
    ...(recordPermutation ? { permutation: recordPermutation } : {}),
  };
  return {
    quantized,
    weight: dequantize(quantized),
    bitsPerWeight: storageBits(quantized),
    dampening: usedDampening,
    warnings,
    timings: { factorization: t1 - t0, solve: t2 - t1 },
  };
}

/**
 * `codes[r, permutation[p]] = codesT[p, r]` (identity without a permutation): the column loop's transposed codes back
 * in the layer's row-major order, 16 rows at a time (the 16 source runs stay in cache).
 */
/**
 * `W` (`rows x n`, row-major) transposed in processing order: row `p` of the result is input column `permutation[p]`
 * (or `p`), read 16 rows at a time. A small function of its own, so that the engine optimizes its loop (the layer's
 * function is too large for that).
 */
function transposedInOrder(w: Float32Array, rows: number, n: number, permutation: Int32Array | undefined): Float32Array {
  const wt = new Float32Array(n * rows);
  for (let r0 = 0; r0 < rows; r0 += 16) {
    const r1 = Math.min(rows, r0 + 16);
    for (let p = 0; p < n; p++) {
      const c = permutation ? permutation[p]! : p;
      const o = p * rows;
      for (let r = r0; r < r1; r++) wt[o + r] = w[r * n + c]!;
    }
  }
  return wt;
}

function scatterTransposedCodes(codesT: Uint8Array | Uint16Array, codes: Uint8Array | Uint16Array, rows: number, n: number, permutation: Int32Array | undefined): void {
  for (let r0 = 0; r0 < rows; r0 += 16) {
    const r1 = Math.min(rows, r0 + 16);
    for (let p = 0; p < n; p++) {
      const c = permutation ? permutation[p]! : p;
      const o = p * rows;
      for (let r = r0; r < r1; r++) codes[r * n + c] = codesT[o + r]!;
    }
  }
}

/**
 * The resident matrix and its diagonal when `hessian` lives on the backend GPTQ runs on (linalg's webgpu: a handle
 * `{ backend, matrix }`) and the layer can take it there: `factorPrecision: 'gpu'`, no act-order, no GPTAQ term, and no
 * dead column (those change the Hessian on the host). `undefined` otherwise.
 */
async function residentOnBackend(
  hessian: ResidentHessian,
  n: number,
  options: GptqLayerOptions,
  asymmetric: boolean,
): Promise<{ matrix: WebgpuMatrix; diagonal: Float32Array } | undefined> {
  const handle = hessian.handle as { backend?: unknown; matrix?: WebgpuMatrix } | undefined;
  const backend = options.backend ?? (await defaultBackend());
  if (asymmetric || options.actOrder || options.factorPrecision !== 'gpu' || backend.name !== 'webgpu') return undefined;
  if (!handle || handle.backend !== backend || !handle.matrix || handle.matrix.rows !== n || handle.matrix.columns !== n || handle.matrix.dtype !== 'float32') return undefined;
  const diagonal = await webgpuDiagonal(backend as WebgpuBackend, handle.matrix);
  for (let i = 0; i < n; i++) if (diagonal[i] === 0) return undefined;
  return { matrix: handle.matrix, diagonal };
}
