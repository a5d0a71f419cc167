/// <reference types="@webgpu/types" />
import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import type { WebgpuBackend, WebgpuMatrix } from './webgpu-backend.js';
import { dispatchKernel, kernelPipeline, uniformWords } from './webgpu-gptq-kernels.js';

/**
 * Element-wise differences and sums of squares of resident matrices, for measuring a quantized layer's output error
 * `||X (W - Q)^T||_F / ||X W^T||_F` where its input `X` is (on the GPU) without copying products back.
 */

/** Partial sums one {@link webgpuSumOfSquares} call writes (one per workgroup); sum them in float64 on the host. */
export const SUM_OF_SQUARES_PARTIALS = 256;

const SUBTRACT_SHADER = `
struct P { length: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.length) { return; }
  a[i] = a[i] - b[i];
}
`;

const SUM_OF_SQUARES_SHADER = `
struct P { elements: u32, base: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
var<workgroup> part: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = wg.x * 256u + lid; i < p.elements; i += ${SUM_OF_SQUARES_PARTIALS * 256}u) { let v = x[i]; s += v * v; }
  part[lid] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid < w) { part[lid] += part[lid + w]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[p.base + wg.x] += part[0]; }
}
`;

const COLUMN_ABS_SHADER = `
struct P { rows: u32, columns: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> absMax: array<f32>;
@group(0) @binding(3) var<storage, read_write> absSum: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = gid.x + gid.y * nwg.x * 256u;
  if (c >= p.columns) { return; }
  var m = absMax[c];
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let v = abs(x[r * p.columns + c]);
    if (v > m) { m = v; }
    s += v;
  }
  absMax[c] = m;
  absSum[c] += s;
}
`;

/**
 * `a -= b` element by element on the GPU, queued (same number of elements, float32).
 *
 * @param backend - A `webgpu` backend.
 * @param args - `a` (overwritten) and `b` (another matrix of as many elements).
 * @throws `ShapeMismatchError` when the sizes differ; `InvalidArgumentError` when `a` is `b` or a matrix is float16.
 * @example
 * ```ts
 * webgpuSubtract(gpu, { a: reference, b: quantized }); // reference now holds W - Q
 * ```
 */
export function webgpuSubtract(backend: WebgpuBackend, args: { a: WebgpuMatrix; b: WebgpuMatrix }): void {
  const { a, b } = args;
  const length = a.rows * a.columns;
  if (b.rows * b.columns !== length) throw new ShapeMismatchError('b', [a.rows, a.columns], [b.rows, b.columns], 'as many elements as a');
  if (a === b) throw new InvalidArgumentError('b', 'must be another matrix than a');
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new InvalidArgumentError('a', 'float32 matrices only');
  if (length === 0) return;
  const groups = Math.ceil(length / 256);
  const device = backend.device;
  dispatchKernel(device, kernelPipeline(device, SUBTRACT_SHADER, 'reduce.subtract'), uniformWords([length]), [a.buffer, b.buffer], Math.min(groups, 65535), Math.ceil(groups / 65535));
}

/**
 * Queues the sum of squares of the first `elements` elements of `x` (row-major: the first `elements / columns` rows)
 * as {@link SUM_OF_SQUARES_PARTIALS} float32 partial sums added to `out`'s elements `slot * SUM_OF_SQUARES_PARTIALS`
 * onward (start from zeros; calls on one slot accumulate); read `out` back and add each slot's partials in float64 (see {@link sumPartials}). Each partial adds at most
 * `ceil(elements / 65536)` squares in float32, then a tree of 256.
 *
 * @param backend - A `webgpu` backend.
 * @param args - `x` (float32), `elements` (default all of `x`), `out` (float32, at least `(slot + 1) *
 *   SUM_OF_SQUARES_PARTIALS` elements, another matrix than `x`), `slot`.
 * @throws `InvalidArgumentError` for `elements` outside `x`, a slot outside `out`, or `out` being `x`.
 * @example
 * ```ts
 * const partials = gpu.zeros(2, SUM_OF_SQUARES_PARTIALS);
 * webgpuSumOfSquares(gpu, { x: y, out: partials, slot: 0 });
 * webgpuSumOfSquares(gpu, { x: e, out: partials, slot: 1 });
 * const [yy, ee] = sumPartials(await gpu.read(partials), 2);
 * ```
 */
export function webgpuSumOfSquares(backend: WebgpuBackend, args: { x: WebgpuMatrix; elements?: number; out: WebgpuMatrix; slot: number }): void {
  const { x, out, slot } = args;
  const size = x.rows * x.columns;
  const elements = args.elements ?? size;
  if (!Number.isInteger(elements) || elements < 0 || elements > size) throw new InvalidArgumentError('elements', `got ${elements}; expected an integer from 0 to ${size}`);
  if (!Number.isInteger(slot) || slot < 0 || (slot + 1) * SUM_OF_SQUARES_PARTIALS > out.rows * out.columns) {
    throw new InvalidArgumentError('slot', `got ${slot}; out holds ${Math.floor((out.rows * out.columns) / SUM_OF_SQUARES_PARTIALS)} slots of ${SUM_OF_SQUARES_PARTIALS}`);
  }
  if (x === out) throw new InvalidArgumentError('out', 'must be another matrix than x');
  if (x.dtype !== 'float32' || out.dtype !== 'float32') throw new InvalidArgumentError('x', 'float32 matrices only');
  const device = backend.device;
  dispatchKernel(device, kernelPipeline(device, SUM_OF_SQUARES_SHADER, 'reduce.sumOfSquares'), uniformWords([elements, slot * SUM_OF_SQUARES_PARTIALS]), [x.buffer, out.buffer], SUM_OF_SQUARES_PARTIALS);
}

/**
 * Adds each slot's {@link SUM_OF_SQUARES_PARTIALS} partial sums (as {@link webgpuSumOfSquares} wrote them) in float64.
 *
 * @param partials - What `read` returned for the partials matrix.
 * @param slots - How many slots to add (default: all whole slots in `partials`).
 * @example
 * ```ts
 * const [sum] = sumPartials(await gpu.read(partials), 1);
 * ```
 */
export function sumPartials(partials: Float32Array, slots = Math.floor(partials.length / SUM_OF_SQUARES_PARTIALS)): Float64Array {
  if (slots * SUM_OF_SQUARES_PARTIALS > partials.length) throw new InvalidArgumentError('slots', `got ${slots}; partials hold ${Math.floor(partials.length / SUM_OF_SQUARES_PARTIALS)}`);
  const sums = new Float64Array(slots);
  for (let s = 0; s < slots; s++) {
    let t = 0;
    for (let i = 0; i < SUM_OF_SQUARES_PARTIALS; i++) t += partials[s * SUM_OF_SQUARES_PARTIALS + i]!;
    sums[s] = t;
  }
  return sums;
}

/**
 * Per column of the first `rows` rows of `x` (`rows x columns` of it, row-major), queues `absMax = max(absMax, max|x|)`
 * and `absSum += sum |x|` (float32, one thread per column adding its rows in order): the channel statistics of a
 * linear's input (the activation-outlier view) where the input is. Start from zeros; calls accumulate.
 *
 * @param backend - A `webgpu` backend.
 * @param args - `x`, `rows` (default all of `x`'s rows), `absMax` and `absSum` (float32, `x.columns` elements each,
 *   distinct from `x` and from each other).
 * @throws `InvalidArgumentError` for rows outside `x`, aliasing, or float16; `ShapeMismatchError` for statistics
 *   of another width.
 * @example
 * ```ts
 * const absMax = gpu.zeros(1, x.columns);
 * const absSum = gpu.zeros(1, x.columns);
 * webgpuColumnAbsStatistics(gpu, { x, rows: 2048, absMax, absSum });
 * ```
 */
export function webgpuColumnAbsStatistics(backend: WebgpuBackend, args: { x: WebgpuMatrix; rows?: number; absMax: WebgpuMatrix; absSum: WebgpuMatrix }): void {
  const { x, absMax, absSum } = args;
  const rows = args.rows ?? x.rows;
  if (!Number.isInteger(rows) || rows < 0 || rows > x.rows) throw new InvalidArgumentError('rows', `got ${rows}; expected an integer from 0 to ${x.rows}`);
  for (const [name, m] of [['absMax', absMax], ['absSum', absSum]] as const) {
    if (m.rows * m.columns !== x.columns) throw new ShapeMismatchError(name, [1, x.columns], [m.rows, m.columns], 'one value per column of x');
  }
  if (absMax === absSum || x === absMax || x === absSum) throw new InvalidArgumentError('absSum', 'x, absMax and absSum must be three matrices');
  if (x.dtype !== 'float32' || absMax.dtype !== 'float32' || absSum.dtype !== 'float32') throw new InvalidArgumentError('x', 'float32 matrices only');
  if (rows === 0 || x.columns === 0) return;
  const groups = Math.ceil(x.columns / 256);
  const device = backend.device;
  dispatchKernel(device, kernelPipeline(device, COLUMN_ABS_SHADER, 'reduce.columnAbs'), uniformWords([rows, x.columns]), [x.buffer, absMax.buffer, absSum.buffer], Math.min(groups, 65535), Math.ceil(groups / 65535));
}
