import type { Backend } from './backend.js';
import { copyBlock } from './block.js';
import { multiplyLowerLeft, multiplyLowerTransposedLeft, transposeBlockInto, transposeInto } from './triangular-inverse-recursive.js';
import { createRandom } from './prng.js';
import { choleskyBlock, invertLowerBlock } from './unblocked-kernels.js';

/** Blocks at most this big are factored and inverted by the scalar kernels. */
const LEAF = 128;

/** Triangular multiplies stop recursing at this size (one dense GEMM: depth-256 GEMMs run near peak, smaller ones do not). */
const TRMM_LEAF = 256;

/** Below this size the mixed-precision recursion computes in float64 only. */
const MIXED_LEAF = 512;

/**
 * Overwrites the contiguous `n x n` row-major array `a`, whose lower triangle holds a symmetric positive definite `A`,
 * with `L^{-1}` where `A = L L^T` (upper triangle zeroed), without forming `L` as a whole. Recursive on halves
 * (the recursive formulations of LAPACK's `potrf` and `trtri`, fused):
 *
 * `[A11 .; A21 A22]`: `M11 = L11^{-1}` recursively; `L21^T = M11 A21^T` (triangular multiply);
 * `S = A22 - L21 L21^T` (one GEMM of depth n/2); `M22 = L22^{-1}` of `S` recursively;
 * `M21 = -M22 L21 M11` (two triangular multiplies).
 *
 * About `5 n^3 / 6` flops, nearly all in GEMMs of depth `n/2, n/4, ...`, where the backend runs near its peak (a
 * right-looking blocked Cholesky's depth-128 updates reach about half of it); copies are `O(n^2 log n)`.
 *
 * @param failed - Called with the global index and value of the first pivot that is not positive; must throw.
 */
export function choleskyInverseLowerInPlace(n: number, a: Float64Array, backend: Backend, failed: (index: number, pivot: number) => never, offset = 0): Promise<void> {
  return choleskyInverseLower(n, a, backend, failed, offset, Infinity);
}

/**
 * {@link choleskyInverseLowerInPlace} with the off-diagonal products in float32: at every level above 512 rows, `L21`,
 * the Schur complement's product `L21 L21^T` and `M21` come from float32 GEMMs (single-precision GEMMs run about three
 * times as fast as double-precision ones through onnxruntime's MLAS), while the Schur complement `A22 - L21 L21^T` is
 * subtracted in float64 and the diagonal blocks up to 512 are factored and inverted in float64. The result carries
 * float32-level errors (about `1e-7` times the conditioning of the blocks); {@link choleskyInverseUpper} checks it with
 * a residual probe and falls back to the float64 recursion when the check fails. Internal.
 */
export function choleskyInverseLowerMixed(n: number, a: Float64Array, backend: Backend, failed: (index: number, pivot: number) => never, offset = 0): Promise<void> {
  return choleskyInverseLower(n, a, backend, failed, offset, MIXED_LEAF);
}

/** The recursion of both: levels larger than `singleAbove` form their off-diagonal products in float32. */
async function choleskyInverseLower(
  n: number,
  a: Float64Array,
  backend: Backend,
  failed: (index: number, pivot: number) => never,
  offset: number,
  singleAbove: number,
): Promise<void> {
  if (n <= LEAF) {
    const pivot = new Float64Array(1);
    const bad = choleskyBlock(a, n, 0, n, pivot);
    if (bad >= 0) failed(offset + bad, pivot[0]!);
    const x = new Float64Array(n * n);
    invertLowerBlock(a, n, 0, n, x);
    a.set(x);
    return;
  }
  const n1 = n >> 1;
  const n2 = n - n1;
  if (n > singleAbove && n1 === n2) return singleLevelInPlace(n1, a, backend, failed, offset, singleAbove);
  const m11 = new Float64Array(n1 * n1);
  const a22 = new Float64Array(n2 * n2);
  copyBlock(a, n, 0, 0, n1, n1, m11, n1, 0, 0);
  copyBlock(a, n, n1, n1, n2, n2, a22, n2, 0, 0);
  await choleskyInverseLower(n1, m11, backend, failed, offset, singleAbove);
  const m21 =
    n > singleAbove
      ? await offDiagonal(n, n1, n2, a, Float32Array.from(m11), new Float32Array(n1 * n2), a22, () => choleskyInverseLower(n2, a22, backend, failed, offset + n1, singleAbove), backend)
      : await offDiagonal(n, n1, n2, a, m11, new Float64Array(n1 * n2), a22, () => choleskyInverseLower(n2, a22, backend, failed, offset + n1, singleAbove), backend);
  for (let i = 0; i < n1; i++) {
    a.set(m11.subarray(i * n1, (i + 1) * n1), i * n);
    a.fill(0, i * n + n1, (i + 1) * n);
  }
  for (let i = 0; i < n2; i++) {
    const row = (n1 + i) * n;
    for (let j = 0; j < n1; j++) a[row + j] = -m21[i * n1 + j]!;
    a.set(a22.subarray(i * n2, (i + 1) * n2), row + n1);
  }
}

/**
 * A float32 level of {@link choleskyInverseLower} for an even `n = 2m`, with every block inside `a` itself: the same
 * operations in the same order as the allocating path (so the same bits), but the halves are compacted in place and
 * the float32 operands live in the parts of `a` that are no longer read. With `R1` the first `m` rows of `a` (`2m^2`
 * float64 slots) and `R2` the last `m`:
 *
 * - `A11` compacted to `R1[0, m^2)` (`M11` after the recursion); `T = A21^T` (float32) at `R1[m^2, 1.5 m^2)`, the float32
 *   copy of `M11` and later `M21` at `R1[1.5 m^2, 2 m^2)`;
 * - `A22` compacted to `R2[m^2, 2 m^2)` (the tail of `a`; `S`, then `M22`); the product `T^T T`, later the float32 copy
 *   of `M22`, at `R2[0, 0.5 m^2)`;
 * - the result assembled rows `m..2m` first (upwards), then rows `0..m` (downwards), so no block is overwritten before
 *   it is read.
 *
 * At n = 8192 this saves the 0.5 GiB of separate halves and float32 copies of the top level (and proportionally below).
 */
async function singleLevelInPlace(m: number, a: Float64Array, backend: Backend, failed: (index: number, pivot: number) => never, offset: number, singleAbove: number): Promise<void> {
  const n = 2 * m;
  const mm = m * m;
  const single = (start: number, length: number): Float32Array => new Float32Array(a.buffer, a.byteOffset + start * 8, length);
  // A11 -> R1[0, m^2) (rows move left: upwards is safe).
  for (let i = 1; i < m; i++) a.copyWithin(i * m, i * n, i * n + m);
  const m11 = a.subarray(0, mm);
  // T = L21^T starts as A21^T, read from R2 before anything is written there.
  const t = single(mm, mm);
  transposeBlockInto(a, n, m, 0, m, m, t);
  // A22 -> the last m^2 slots (rows move right: downwards is safe; A21 is no longer needed).
  const tail = 3 * mm;
  for (let i = m - 1; i >= 0; i--) a.copyWithin(tail + i * m, (m + i) * n + m, (m + i) * n + n);
  const a22 = a.subarray(tail, tail + mm);
  await choleskyInverseLower(m, m11, backend, failed, offset, singleAbove);
  const m11Single = single(mm + mm / 2, mm);
  m11Single.set(m11);
  await multiplyLowerLeft(m, m11Single, t, m, backend, TRMM_LEAF);
  const product = single(2 * mm, mm);
  await backend.sgemm({ m, n: m, k: m, a: t, transA: true, b: t, c: product });
  for (let i = 0; i < mm; i++) a22[i] = a22[i]! - product[i]!;
  await choleskyInverseLower(m, a22, backend, failed, offset + m, singleAbove);
  await multiplyLowerTransposedLeft(m, m11Single, t, m, backend, TRMM_LEAF);
  const m21 = m11Single; // M11's float32 copy is no longer read
  transposeInto(t, m, m, m21);
  const m22 = product; // nor is the product
  m22.set(a22);
  await multiplyLowerLeft(m, m22, m21, m, backend, TRMM_LEAF);
  // Rows m..2m: [-M21, M22]; M22's rows move left (upwards is safe), M21 lives in R1.
  for (let i = 0; i < m; i++) {
    const row = (m + i) * n;
    a.copyWithin(row + m, tail + i * m, tail + (i + 1) * m);
    for (let j = 0; j < m; j++) a[row + j] = -m21[i * m + j]!;
  }
  // Rows 0..m: [M11, 0]; M11's rows move right (downwards is safe).
  for (let i = m - 1; i >= 0; i--) {
    a.copyWithin(i * n, i * m, i * m + m);
    a.fill(0, i * n + m, (i + 1) * n);
  }
}

/**
 * One level's products in the precision of `m11` and `t` (float64, or float32 copies): `T = L21^T = M11 A21^T`,
 * `S = A22 - T^T T` into `a22` (subtracted in float64), `M22` of `S` by `invertS`, then `M22 L21 M11` (that is `-M21`).
 */
async function offDiagonal<T extends Float32Array | Float64Array>(
  n: number,
  n1: number,
  n2: number,
  a: Float64Array,
  m11: T,
  t: T,
  a22: Float64Array,
  invertS: () => Promise<void>,
  backend: Backend,
): Promise<T> {
  // T = L21^T = M11 A21^T (lower-left triangular multiply on A21^T, transposed straight out of `a`).
  transposeBlockInto(a, n, n1, 0, n2, n1, t);
  await multiplyLowerLeft(n1, m11, t, n2, backend, TRMM_LEAF);
  // S = A22 - L21 L21^T = A22 - T^T T (both triangles; the recursion reads the lower one).
  if (t instanceof Float64Array) {
    await backend.dgemm({ m: n2, n: n2, k: n1, a: t, transA: true, b: t, c: a22, alpha: -1, beta: 1 });
  } else {
    const product = new Float32Array(n2 * n2);
    await backend.sgemm({ m: n2, n: n2, k: n1, a: t, transA: true, b: t, c: product });
    for (let i = 0; i < a22.length; i++) a22[i] = a22[i]! - product[i]!;
  }
  await invertS();
  // M21 = -M22 (L21 M11): (L21 M11)^T = M11^T T (the GEMMs read M11 transposed), then M22 from the left.
  await multiplyLowerTransposedLeft(n1, m11, t, n2, backend, TRMM_LEAF);
  const m21 = (t instanceof Float64Array ? new Float64Array(n2 * n1) : new Float32Array(n2 * n1)) as T;
  transposeInto(t, n1, n2, m21);
  const m22 = (t instanceof Float64Array ? a22 : Float32Array.from(a22)) as T;
  await multiplyLowerLeft(n2, m22, m21, n1, backend, TRMM_LEAF);
  return m21;
}

/**
 * Relative residual `||U H U^T v - v|| / ||v||` of a candidate upper factor `U` of `H^{-1} = U^T U` (row-major; `H` is
 * `h + shift I`) for one seeded Gaussian probe `v`: three matrix-vector products on the backend's float64 GEMM, `O(n^2)`. Internal.
 */
export async function inverseFactorResidual(n: number, u: Float64Array, h: Float64Array, backend: Backend, shift = 0, seed = 1): Promise<number> {
  const random = createRandom(seed);
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = random.normal();
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  const z = new Float64Array(n);
  await backend.dgemm({ m: n, n: 1, k: n, a: u, transA: true, b: v, c: x }); // x = U^T v
  await backend.dgemm({ m: n, n: 1, k: n, a: h, b: x, c: y }); // y = (H + shift I) x
  if (shift !== 0) for (let i = 0; i < n; i++) y[i] += shift * x[i]!;
  await backend.dgemm({ m: n, n: 1, k: n, a: u, b: y, c: z }); // z = U y
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (z[i]! - v[i]!) ** 2;
    den += v[i]! ** 2;
  }
  return Math.sqrt(num / den);
}
