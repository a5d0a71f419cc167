import type { Backend, FloatArray, FwhtArguments, GemmArguments, GramArguments } from '../backend.js';
import { attentionWithSgemm } from './attention-sgemm.js';
import { gatedActivationReference } from './gated-activation-loop.js';
import { checkAttentionArguments, checkFwhtArguments, checkGatedActivationArguments, checkGemmArguments, checkGramArguments } from './check-arguments.js';

/** Columns of `op(B)` / `C` per block: a packed `KC x NC` float64 block of `B` is 256 KiB and stays in L2. */
const NC = 256;
/** Depth (`k`) per block. */
const KC = 128;

/**
 * Scratch buffers of one backend instance, reused across calls (the js backend runs one call at a time:
 * every method finishes synchronously before its promise resolves).
 */
interface Scratch {
  /** Packed block of `op(B)`, `KC x NC`, float64. */
  b: Float64Array;
  /** `alpha * op(A)[i, p0:p1]`, float64. */
  a: Float64Array;
  /** One row segment of `C` in float64. */
  c: Float64Array;
  /** One row of an FWHT, float64, grown on demand. */
  row: Float64Array;
}

/**
 * The register-free inner kernel: `c[cOff + j] += sum_p ap[p] * bp[p * ldb + j]` for `j < len`, `p < kc`,
 * unrolled four ways over `p` so that each `c` element is loaded and stored once per four products.
 */
function accumulateRow(c: Float64Array, cOff: number, len: number, ap: Float64Array, kc: number, bp: Float64Array, bOff: number, ldb: number): void {
  let p = 0;
  for (; p + 4 <= kc; p += 4) {
    const a0 = ap[p]!;
    const a1 = ap[p + 1]!;
    const a2 = ap[p + 2]!;
    const a3 = ap[p + 3]!;
    const o0 = bOff + p * ldb;
    const o1 = o0 + ldb;
    const o2 = o1 + ldb;
    const o3 = o2 + ldb;
    for (let j = 0; j < len; j++) {
      c[cOff + j] += a0 * bp[o0 + j]! + a1 * bp[o1 + j]! + a2 * bp[o2 + j]! + a3 * bp[o3 + j]!;
    }
  }
  for (; p < kc; p++) {
    const a0 = ap[p]!;
    const o0 = bOff + p * ldb;
    for (let j = 0; j < len; j++) c[cOff + j] += a0 * bp[o0 + j]!;
  }
}

/** `C = alpha op(A) op(B) + beta C`, blocked over `n` and `k`, `op(B)` packed to float64, `i-k-j` order inside. */
function gemm<T extends FloatArray>(args: GemmArguments<T>, s: Scratch): void {
  const { m, n, k, a, b, c } = args;
  const transA = args.transA ?? false;
  const transB = args.transB ?? false;
  const alpha = args.alpha ?? 1;
  const beta = args.beta ?? 0;
  const mn = m * n;
  if (beta === 0) c.fill(0, 0, mn);
  else if (beta !== 1) for (let i = 0; i < mn; i++) c[i] *= beta;
  if (m === 0 || n === 0 || k === 0 || alpha === 0) return;
  const bp = s.b;
  const ap = s.a;
  const cr = s.c;
  for (let j0 = 0; j0 < n; j0 += NC) {
    const nc = Math.min(NC, n - j0);
    for (let p0 = 0; p0 < k; p0 += KC) {
      const kc = Math.min(KC, k - p0);
      // Pack op(B)[p0:p0+kc, j0:j0+nc] row-major with leading dimension nc.
      if (transB) {
        // B is stored n x k: op(B)[p, j] = b[j * k + p]; read rows of the stored array contiguously.
        for (let j = 0; j < nc; j++) {
          const src = (j0 + j) * k + p0;
          for (let p = 0; p < kc; p++) bp[p * nc + j] = b[src + p]!;
        }
      } else {
        for (let p = 0; p < kc; p++) {
          const src = (p0 + p) * n + j0;
          const dst = p * nc;
          for (let j = 0; j < nc; j++) bp[dst + j] = b[src + j]!;
        }
      }
      for (let i = 0; i < m; i++) {
        // alpha * op(A)[i, p0:p0+kc]
        if (transA) {
          // A is stored k x m: op(A)[i, p] = a[p * m + i].
          for (let p = 0; p < kc; p++) ap[p] = alpha * a[(p0 + p) * m + i]!;
        } else {
          const src = i * k + p0;
          for (let p = 0; p < kc; p++) ap[p] = alpha * a[src + p]!;
        }
        const cOff = i * n + j0;
        for (let j = 0; j < nc; j++) cr[j] = c[cOff + j]!;
        accumulateRow(cr, 0, nc, ap, kc, bp, 0, nc);
        for (let j = 0; j < nc; j++) c[cOff + j] = cr[j]!;
      }
    }
  }
}

/** `H = beta H + alpha X^T X`: the upper triangle blocked like {@link gemm}, then mirrored to the lower. */
function gram(args: GramArguments, s: Scratch): void {
  const { rows, columns: n, x, h } = args;
  const alpha = args.alpha ?? 1;
  const beta = args.beta ?? 1;
  const nn = n * n;
  if (beta === 0) h.fill(0, 0, nn);
  else if (beta !== 1) for (let i = 0; i < nn; i++) h[i] *= beta;
  if (n === 0) return;
  if (rows > 0 && alpha !== 0) {
    const bp = s.b;
    const ap = s.a;
    for (let j0 = 0; j0 < n; j0 += NC) {
      const nc = Math.min(NC, n - j0);
      for (let p0 = 0; p0 < rows; p0 += KC) {
        const kc = Math.min(KC, rows - p0);
        for (let p = 0; p < kc; p++) {
          const src = (p0 + p) * n + j0;
          const dst = p * nc;
          for (let j = 0; j < nc; j++) bp[dst + j] = x[src + j]!;
        }
        const iEnd = Math.min(n, j0 + nc);
        for (let i = 0; i < iEnd; i++) {
          for (let p = 0; p < kc; p++) ap[p] = alpha * x[(p0 + p) * n + i]!;
          // Only columns j >= i (upper triangle).
          const jStart = Math.max(0, i - j0);
          accumulateRow(h, i * n + j0 + jStart, nc - jStart, ap, kc, bp, jStart, nc);
        }
      }
    }
  }
  for (let i = 1; i < n; i++) for (let j = 0; j < i; j++) h[i * n + j] = h[j * n + i]!;
}

/** Radix-2 Walsh-Hadamard butterflies of each row, in float64, Sylvester (natural) order. */
function fwht<T extends FloatArray>(args: FwhtArguments<T>, s: Scratch): Float64Array {
  const { rows, n, data } = args;
  const scale = (args.normalize ?? true) ? 1 / Math.sqrt(n) : 1;
  let t = s.row;
  if (t.length < n) t = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const off = r * n;
    for (let j = 0; j < n; j++) t[j] = data[off + j]!;
    for (let h = 1; h < n; h <<= 1) {
      for (let i = 0; i < n; i += h << 1) {
        for (let j = i; j < i + h; j++) {
          const u = t[j]!;
          const v = t[j + h]!;
          t[j] = u + v;
          t[j + h] = u - v;
        }
      }
    }
    for (let j = 0; j < n; j++) data[off + j] = t[j]! * scale;
  }
  return t;
}

/**
 * Creates the `js` backend: plain TypeScript on typed arrays, single-threaded, the reference every other
 * backend is tested against. Available everywhere JavaScript runs. GEMM packs `op(B)` into float64 blocks
 * (`128 x 256`) and accumulates rows of `C` in float64 in `i-k-j` order, so transposed operands cost no full copy
 * and float32 GEMM accumulates in float64.
 *
 * @returns A {@link Backend} with `name: 'js'` and `threads: 1`.
 * @example
 * ```ts
 * const backend = createJsBackend();
 * const c = new Float64Array(4);
 * await backend.dgemm({ m: 2, n: 2, k: 2, a: Float64Array.of(1, 2, 3, 4), b: Float64Array.of(1, 0, 0, 1), c });
 * ```
 */
export function createJsBackend(): Backend {
  const scratch: Scratch = {
    b: new Float64Array(KC * NC),
    a: new Float64Array(KC),
    c: new Float64Array(NC),
    row: new Float64Array(0),
  };
  let disposed = false;
  const live = (op: string): void => {
    if (disposed) throw new Error(`js backend: ${op} called after dispose()`);
  };
  return {
    name: 'js',
    threads: 1,
    async sgemm(args) {
      live('sgemm');
      checkGemmArguments('sgemm', args);
      gemm(args, scratch);
    },
    async dgemm(args) {
      live('dgemm');
      checkGemmArguments('dgemm', args);
      gemm(args, scratch);
    },
    async gram(args) {
      live('gram');
      checkGramArguments(args);
      gram(args, scratch);
    },
    async fwht(args) {
      live('fwht');
      checkFwhtArguments(args);
      scratch.row = fwht(args, scratch);
    },
    async attention(args) {
      live('attention');
      checkAttentionArguments(args);
      await attentionWithSgemm(async (g) => gemm(g, scratch), args);
    },
    async gatedActivation(args) {
      live('gatedActivation');
      checkGatedActivationArguments(args);
      await gatedActivationReference(args);
    },
    async dispose() {
      disposed = true;
    },
  };
}
