/// <reference types="@webgpu/types" />
import { AbortError, InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import { bufferUsage } from './webgpu-device.js';
import { dispatchKernel, kernelPipeline, MIN_MAX_SCALES_SHADER, readBuffer, REPACK_CODES_SHADER, TRANSPOSE_SHADER, uniformWords } from './webgpu-gptq-kernels.js';
import type { WebgpuBackend, WebgpuMatrix } from './webgpu-backend.js';

/** Most rows one workgroup of the column-solve kernel handles (one row per thread); fewer where workgroup memory is small. */
const MAX_SOLVE_ROWS = 64;
/** Most columns per lazy batch: each thread keeps its row's slice of the batch in workgroup memory (64 x 128 floats). */
export const WEBGPU_GPTQ_MAX_BLOCK = 128;

/**
 * The column-solve kernel of GPTQ's lazy batch: thread `r` owns row `r` of the weight, keeps the batch's columns
 * `[j1, i2)` of that row in workgroup memory, and for each column `i` of `[j1, j2)` quantizes it to the nearest level
 * of the codebook after the row's affine map (`v = w / s + z`, code = nearest level, `q = (level - z) * s`), writes
 * the code (a byte, four columns of a row per word) and the scaled error `e = (w - q) / U_ii`, and updates the row's later columns of the batch by
 * `w_j -= U_ij e`, and the dequantized `q` over the column's weight (so `wt` ends as `Q^T`: a quantized column is never
 * read again). Rows are independent given `U`, so no barriers are needed. W and the errors are stored transposed
 * (`column * rows + row`), so that the threads of a workgroup read and write consecutive addresses.
 */
const solveShader = (SOLVE_ROWS: number, width: number): string => `
struct P { rows: u32, n: u32, i1: u32, i2: u32, j1: u32, j2: u32, levels: u32, group: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> wt: array<f32>;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read> zero: array<f32>;
@group(0) @binding(5) var<storage, read> levels: array<f32>;
@group(0) @binding(6) var<storage, read_write> err: array<f32>;
@group(0) @binding(7) var<storage, read_write> codes: array<u32>;
var<workgroup> ws: array<f32, ${SOLVE_ROWS * width}>;

@compute @workgroup_size(${SOLVE_ROWS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wg.x * ${SOLVE_ROWS}u + lid.x;
  if (r >= p.rows) { return; }
  let l = lid.x;
  let width = p.i2 - p.j1;
  for (var j = 0u; j < width; j++) { ws[j * ${SOLVE_ROWS}u + l] = wt[(p.j1 + j) * p.rows + r]; }
  let s = scale[p.group * p.rows + r];
  let z = zero[p.group * p.rows + r];
  for (var i = p.j1; i < p.j2; i++) {
    let x = ws[(i - p.j1) * ${SOLVE_ROWS}u + l];
    var v = z;
    if (s > 0.0) { v = x / s + z; }
    var code = 0u;
    var best = abs(levels[0] - v);
    for (var c = 1u; c < p.levels; c++) {
      let d = abs(levels[c] - v);
      if (d < best) { best = d; code = c; }
    }
    let q = (levels[code] - z) * s;
    let e = (x - q) / u[i * p.n + i];
    wt[i * p.rows + r] = q;
    codes[(i / 4u) * p.rows + r] |= code << ((i % 4u) * 8u);
    err[(i - p.i1) * p.rows + r] = e;
    let ui = i * p.n;
    for (var j = i + 1u; j < p.i2; j++) {
      let o = (j - p.j1) * ${SOLVE_ROWS}u + l;
      ws[o] = ws[o] - u[ui + j] * e;
    }
  }
  for (var j = p.j2; j < p.i2; j++) { wt[j * p.rows + r] = ws[(j - p.j1) * ${SOLVE_ROWS}u + l]; }
}
`;

/**
 * A scale rule computed on the GPU (no round trip per group): min-max over the group's current weights per row.
 * Asymmetric: `lo = min(0, min)`, `hi = max(0, max)`, `scale = (hi - lo) / maxCode`, `zero = round(-lo / scale)`
 * (halves up; 0 where the scale is 0), the reference GPTQ quantizer's `sym=False`. Symmetric: `scale = 2 max(|lo|, hi)
 * / maxCode`, `zero = (maxCode + 1) / 2` (its `sym=True`). Arithmetic in float32.
 */
export interface WebgpuGptqScaleRule {
  readonly kind: 'min-max';
  /** The largest code (15 for 4 bits); `levels` is normally `0..maxCode`. */
  readonly maxCode: number;
  /** Default false. */
  readonly symmetric?: boolean;
}

/** Scale and zero point of every row for one group of columns. */
export interface WebgpuGptqGroupScales {
  /** `rows` scales (the step between levels; 0 quantizes the row to the level nearest `zero`, dequantized to 0). */
  readonly scale: Float32Array;
  /** `rows` zero points in level units (0 for symmetric formats). */
  readonly zero: Float32Array;
}

/** Arguments of {@link webgpuGptqSolve}. */
export interface WebgpuGptqArguments {
  /** Output features (rows of the weight). */
  rows: number;
  /** Input features (columns of the weight), in processing order. */
  columns: number;
  /**
   * The weight transposed, `columns x rows` (row `p` is input column `p` in processing order). Not modified. Give
   * either this or `weight`.
   */
  weightT?: Float32Array;
  /**
   * The weight, `rows x columns` row-major, columns in processing order (transposed on the GPU), from the host or
   * resident. Not modified (unless it is also `dequantized`).
   */
  weight?: Float32Array | WebgpuMatrix;
  /** A resident `rows x columns` float32 matrix that receives the dequantized weight (may be a resident `weight`). */
  dequantized?: WebgpuMatrix;
  /**
   * Upper-triangular `U` with `(H + lambda I)^-1 = U^T U` (`columns x columns`, processing order): float64 from the
   * CPU (`choleskyInverseUpper`), used in float32, or already resident (`webgpuCholeskyInverseUpper`; not released).
   */
  factor: Float64Array | WebgpuMatrix;
  /** The format's decoded levels, indexed by code (at most 256; any order; the nearest is chosen, the lowest code on ties). */
  levels: Float32Array;
  /** Columns per scale group (`columns` for one scale per row). */
  groupSize: number;
  /**
   * Scales of the group starting at processing column `start` (`width` columns), from the group's current,
   * error-updated weights `current` (`width x rows`, transposed like `weightT`): a callback (any rule, such as core's
   * `computeScales`; one round trip per group), or a {@link WebgpuGptqScaleRule} computed on the GPU.
   */
  groupScales: ((start: number, width: number, current: Float32Array) => WebgpuGptqGroupScales | Promise<WebgpuGptqGroupScales>) | WebgpuGptqScaleRule;
  /** Columns per lazy batch (at most 128). Default 128. */
  blockSize?: number;
  /** Cancellation, checked between batches. */
  signal?: AbortSignal;
}

/** Result of {@link webgpuGptqSolve}. */
export interface WebgpuGptqResult {
  /** Codes, `columns x rows` (transposed, processing order), indices into `levels`. */
  readonly codesT: Uint8Array;
  /** Scales, `groups x rows` (group `g` starts at processing column `g * groupSize`). */
  readonly scales: Float32Array;
  /** Zero points in level units, `groups x rows`. */
  readonly zeros: Float32Array;
  /**
   * Seconds: copies to the GPU (and the weight's transpose), the column loop (GPU work and group scales), of which
   * the group scales (with a callback: copying a group's columns back and the callback), and the codes' (and
   * scales') copy back.
   */
  readonly timings: { readonly upload: number; readonly solve: number; readonly scales: number; readonly download: number };
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now()) / 1000;

/**
 * GPTQ's column loop (Frantar et al., arXiv:2210.17323, Algorithm 1 with lazy batches) on the GPU. The weight, `U`
 * and the errors stay on the GPU for the whole layer: per batch of `blockSize` columns, one workgroup per 64 rows
 * runs the batch's column-by-column solve in workgroup memory, then the batch's errors update every later column in
 * one GEMM (`W[:, i2:] -= E U[i1:i2, i2:]`, float32 with the backend's tiled kernel). Each group's scales come from
 * its current weights: with a callback, the group's columns are copied back (once per group) so that the caller's
 * own scale rule (core's `computeScales`) decides them; with a {@link WebgpuGptqScaleRule} (min-max) a kernel computes
 * them and the whole layer is queued without a round trip. The codes are repacked on the GPU, so the copy back is the
 * result. `U` comes from the caller (float64 from `choleskyInverseUpper`, or resident from
 * `webgpuCholeskyInverseUpper`) and is used in float32, as the reference implementation does on CUDA.
 *
 * @param backend - A `webgpu` backend.
 * @param args - See {@link WebgpuGptqArguments}: `rows`, `columns`, `weight` or `weightT`, `factor`, `levels`,
 *   `groupSize`, `groupScales` (callback or rule), `blockSize` (128), `dequantized` (none), `signal`.
 * @throws `ShapeMismatchError` on arrays that do not match the shapes; `InvalidArgumentError` on a bad block or group size.
 * @example
 * ```ts
 * const { codesT, scales, zeros } = await webgpuGptqSolve(gpu, {
 *   rows, columns, weight, factor, levels: Float32Array.from({ length: 16 }, (_, i) => i), groupSize: 128,
 *   groupScales: { kind: 'min-max', maxCode: 15 },
 * });
 * ```
 */
export async function webgpuGptqSolve(backend: WebgpuBackend, args: WebgpuGptqArguments): Promise<WebgpuGptqResult> {
  const { rows, columns: n, factor, levels, groupSize } = args;
  const blockSize = args.blockSize ?? WEBGPU_GPTQ_MAX_BLOCK;
  if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > WEBGPU_GPTQ_MAX_BLOCK) {
    throw new InvalidArgumentError('blockSize', `got ${blockSize}; expected an integer in [1, ${WEBGPU_GPTQ_MAX_BLOCK}]`);
  }
  if (!Number.isInteger(groupSize) || groupSize < 1) throw new InvalidArgumentError('groupSize', `got ${groupSize}; expected a positive integer`);
  if ((args.weight === undefined) === (args.weightT === undefined)) throw new InvalidArgumentError('weight', 'give exactly one of weight (rows x columns) and weightT (columns x rows)');
  const given = (args.weight ?? args.weightT)!;
  const givenLength = given instanceof Float32Array ? given.length : given.rows * given.columns;
  if (givenLength !== rows * n) throw new ShapeMismatchError(args.weight ? 'weight' : 'weightT', args.weight ? [rows, n] : [n, rows], [givenLength], 'the weight');
  if (args.dequantized && (args.dequantized.rows !== rows || args.dequantized.columns !== n || args.dequantized.dtype !== 'float32')) {
    throw new ShapeMismatchError('dequantized', [rows, n], [args.dequantized.rows, args.dequantized.columns], 'a resident float32 rows x columns matrix');
  }
  const resident = !(factor instanceof Float64Array);
  if (resident ? factor.rows !== n || factor.columns !== n : factor.length !== n * n) {
    throw new ShapeMismatchError('factor', [n, n], resident ? [factor.rows, factor.columns] : [factor.length], 'the inverse Cholesky factor');
  }
  if (levels.length < 1 || levels.length > 256) throw new InvalidArgumentError('levels', `got ${levels.length} levels; expected 1 to 256 (codes are bytes)`);
  const rule = typeof args.groupScales === 'function' ? undefined : args.groupScales;
  if (rule && (rule.kind !== 'min-max' || !(rule.maxCode > 0))) throw new InvalidArgumentError('groupScales', `expected a callback or { kind: 'min-max', maxCode > 0 }; got ${JSON.stringify(rule)}`);
  const callback = typeof args.groupScales === 'function' ? args.groupScales : undefined;
  const device = backend.device;
  const usage = bufferUsage();
  const groups = Math.ceil(n / groupSize);
  const own: WebgpuMatrix[] = [];
  const keep = (m: WebgpuMatrix): WebgpuMatrix => (own.push(m), m);
  const t0 = now();
  let wt: WebgpuMatrix;
  if (args.weight) {
    const w = args.weight instanceof Float32Array ? keep(backend.upload(args.weight, rows, n)) : args.weight;
    wt = keep(backend.zeros(n, rows));
    dispatchKernel(device, kernelPipeline(device, TRANSPOSE_SHADER, 'gptq.transpose'), uniformWords([rows, n]), [w.buffer, wt.buffer], Math.ceil(n / 16), Math.ceil(rows / 16));
  } else {
    wt = keep(backend.upload(args.weightT!, n, rows));
  }
  const u = resident ? factor : keep(backend.upload(Float32Array.from(factor), n, n));
  const err = keep(backend.zeros(Math.min(blockSize, n), rows));
  const codes = keep(backend.zeros(Math.ceil(n / 4), rows)); // byte codes, four columns of a row per 32-bit word
  const levelBuffer = keep(backend.upload(levels, 1, levels.length));
  const scale = keep(backend.zeros(groups, rows));
  const zero = keep(backend.zeros(groups, rows));
  // Rows per workgroup: as many as fit the batch's columns in workgroup memory (64 on desktop GPUs, 32 at WebGPU's
  // default 16 KiB with 128 columns).
  const batch = Math.min(blockSize, n);
  let solveRows = MAX_SOLVE_ROWS;
  while (solveRows > 1 && solveRows * batch * 4 > device.limits.maxComputeWorkgroupStorageSize) solveRows >>= 1;
  const solve = kernelPipeline(device, solveShader(solveRows, batch), 'gptq.solve');
  const scalesPipeline = rule ? kernelPipeline(device, MIN_MAX_SCALES_SHADER, 'gptq.minMaxScales') : undefined;
  const params = device.createBuffer({ size: 32, usage: usage.uniform | usage.copyDst });
  const group = device.createBindGroup({
    layout: solve.getBindGroupLayout(0),
    entries: [params, wt.buffer, u.buffer, scale.buffer, zero.buffer, levelBuffer.buffer, err.buffer, codes.buffer].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const words = new Uint32Array(8);
  const hostScales = callback ? new Float32Array(groups * rows) : undefined;
  const hostZeros = callback ? new Float32Array(groups * rows) : undefined;
  try {
    await backend.finish();
    const t1 = now();
    let scalesSeconds = 0;
    for (let i1 = 0; i1 < n; i1 += blockSize) {
      if (args.signal?.aborted) throw new AbortError();
      const i2 = Math.min(i1 + blockSize, n);
      for (let j1 = i1; j1 < i2; ) {
        const j2 = Math.min(i2, (Math.floor(j1 / groupSize) + 1) * groupSize);
        const g = Math.floor(j1 / groupSize);
        if (j1 % groupSize === 0) {
          const width = Math.min(groupSize, n - j1);
          if (scalesPipeline) {
            dispatchKernel(device, scalesPipeline, uniformWords([rows, j1, width, g, { f: rule!.maxCode }, rule!.symmetric ? 1 : 0]), [wt.buffer, scale.buffer, zero.buffer], Math.ceil(rows / 64));
          } else {
            const ts = now();
            const current = await readRows(backend, wt, j1, width, rows);
            const s = await callback!(j1, width, current);
            scalesSeconds += now() - ts;
            if (s.scale.length !== rows || s.zero.length !== rows) throw new ShapeMismatchError('groupScales', [rows], [s.scale.length, s.zero.length], 'one scale and one zero point per row');
            hostScales!.set(s.scale, g * rows);
            hostZeros!.set(s.zero, g * rows);
            backend.write(scale, s.scale, g * rows);
            backend.write(zero, s.zero, g * rows);
          }
        }
        words.set([rows, n, i1, i2, j1, j2, levels.length, g]);
        device.queue.writeBuffer(params, 0, words);
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        pass.setPipeline(solve);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(Math.ceil(rows / solveRows));
        pass.end();
        device.queue.submit([encoder.finish()]);
        j1 = j2;
      }
      if (i2 < n) {
        // W^T[i2:] -= U[i1:i2, i2:]^T E (E = the batch's errors, (i2 - i1) x rows).
        backend.gemmStrided({ a: u, b: err, c: wt, m: n - i2, n: rows, k: i2 - i1, lda: n, ldb: rows, ldc: rows, aOffset: i1 * n + i2, cOffset: i2 * rows, transA: true, alpha: -1, beta: 1 });
      }
    }
    // wt now holds Q^T.
    if (args.dequantized) dispatchKernel(device, kernelPipeline(device, TRANSPOSE_SHADER, 'gptq.transpose'), uniformWords([n, rows]), [wt.buffer, args.dequantized.buffer], Math.ceil(rows / 16), Math.ceil(n / 16));
    // The codes to columns x rows bytes on the GPU, so that the copy back is the result.
    const total = n * rows;
    const packed = keep(backend.zeros(1, Math.ceil(total / 4)));
    const repackGroups = Math.ceil(packed.columns / 256);
    dispatchKernel(device, kernelPipeline(device, REPACK_CODES_SHADER, 'gptq.repackCodes'), uniformWords([rows, total, packed.columns]), [codes.buffer, packed.buffer], Math.min(repackGroups, 65535), Math.ceil(repackGroups / 65535));
    await backend.finish();
    const t2 = now();
    // Raw bytes (not through a Float32Array, whose copies need not keep NaN bit patterns).
    const [raw, scales, zeros] = await Promise.all([readBuffer(device, packed.buffer, packed.columns * 4), hostScales ?? backend.read(scale), hostZeros ?? backend.read(zero)]);
    const codesT = new Uint8Array(raw, 0, total);
    const t3 = now();
    return { codesT, scales, zeros, timings: { upload: t1 - t0, solve: t2 - t1, scales: scalesSeconds, download: t3 - t2 } };
  } finally {
    params.destroy();
    for (const m of own) backend.release(m);
  }
}

/** Reads `count` consecutive rows of a resident float32 matrix (a group's columns of the transposed weight). */
async function readRows(backend: WebgpuBackend, matrix: WebgpuMatrix, start: number, count: number, columns: number): Promise<Float32Array> {
  const device = backend.device;
  const usage = bufferUsage();
  const size = count * columns * 4;
  const staging = device.createBuffer({ size, usage: usage.mapRead | usage.copyDst });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(matrix.buffer, start * columns * 4, staging, 0, size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(0x1);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}
