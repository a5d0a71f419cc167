import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import type { Backend } from '@bitsmith/linalg';

/** Options of {@link cayleySgd}. */
export interface CayleySgdOptions {
  /** Rows `n` of the parameter `X` (`n x p`, row-major, `X^T X = I`). */
  rows: number;
  /** Columns `p <= rows`. Default: `rows` (a square orthogonal matrix). */
  columns?: number;
  /** Base learning rate `l`. */
  learningRate: number;
  /** Momentum `beta` in [0, 1). Default 0 (SpinQuant's SGDG default). */
  momentum?: number;
  /** Steps the schedule spans (the cosine decay reaches 0 after this many). Required with `schedule: 'cosine'`. */
  iterations?: number;
  /** `constant` (default) or `cosine` decay of the learning rate to 0 over `iterations`. */
  schedule?: 'constant' | 'cosine';
  /**
   * Fixed-point iterations `s` of the Cayley retraction at least. Default 2 (Li et al.'s choice); more follow, up to
   * 50, while an iteration still changes an entry by more than `retractionTolerance`.
   */
  cayleyIterations?: number;
  /** Largest change of an entry at which the fixed-point iteration stops. Default 1e-12 (`Infinity`: exactly `s`). */
  retractionTolerance?: number;
  /** Bound `q` of the step: `alpha = min(l, 2q / (||W||_F + eps))`. Default 0.5 (Li et al.). */
  stepBound?: number;
  /** Backend whose `dgemm` forms the products. */
  backend: Backend;
}

/** An optimiser that keeps its parameter on the Stiefel manifold `{X : X^T X = I}`. */
export interface StiefelOptimizer {
  /** Steps taken so far. */
  readonly iteration: number;
  /** Learning rate of the next step (before the step bound). */
  learningRate(): number;
  /**
   * One descent step from the Euclidean gradient `dLoss/dX` (`n x p`, float64): `x` is updated in place and stays
   * (to the retraction's accuracy) orthonormal. Returns the step size `alpha` taken.
   */
  step(x: Float64Array, gradient: Float64Array): Promise<number>;
}

/**
 * Cayley SGD with momentum on the Stiefel manifold (Li, Fuxin & Todorovic, "Efficient Riemannian optimization on the
 * Stiefel manifold via the Cayley transform", arXiv:2002.01113, Algorithm 2), the optimiser SpinQuant
 * (arXiv:2405.16406) learns its rotations with. For `X` (`n x p`, `X^T X = I`) and Euclidean gradient `G`:
 * ```
 * M ← beta M - G;  W^ = M X^T - ½ X (X^T M X^T);  W = W^ - W^T (skew);  M ← W X
 * alpha = min(l_t, 2q / (||W||_F + 1e-8));  Y ← X + alpha M;  s times: Y ← X + (alpha / 2) W (X + Y);  X ← Y
 * ```
 * The fixed-point loop converges to the Cayley transform `(I - alpha/2 W)^-1 (I + alpha/2 W) X` (orthonormal when `X`
 * is); it runs at least `s` times and on until it changes no entry by more than `retractionTolerance`, so `X` stays on
 * the manifold to about that accuracy per step (with exactly `s` iterations, Li et al.'s, the error is
 * `O((alpha ||W||)^(s+1))` per step, which large steps accumulate). All products are float64 GEMMs on the backend. For
 * an exact projection afterwards, see {@link nearestOrthogonal}.
 *
 * Options (defaults): `rows`, `columns` (rows), `learningRate`, `momentum` (0), `schedule` ('constant'),
 * `iterations`, `cayleyIterations` (2), `retractionTolerance` (1e-12), `stepBound` (0.5), `backend`.
 *
 * @example
 * ```ts
 * const opt = cayleySgd({ rows: 512, learningRate: 1.5, momentum: 0.9, backend });
 * for (let i = 0; i < 100; i++) await opt.step(r, await gradientAt(r));
 * ```
 */
export function cayleySgd(options: CayleySgdOptions): StiefelOptimizer {
  const n = options.rows;
  const p = options.columns ?? n;
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(p) || p < 1 || p > n) throw new InvalidArgumentError('rows/columns', `expected integers 1 <= columns <= rows, got ${n} x ${p}`);
  const l = options.learningRate;
  if (!(l > 0) || !Number.isFinite(l)) throw new InvalidArgumentError('learningRate', `expected a positive number, got ${l}`);
  const beta = options.momentum ?? 0;
  if (!(beta >= 0 && beta < 1)) throw new InvalidArgumentError('momentum', `expected a number in [0, 1), got ${beta}`);
  const schedule = options.schedule ?? 'constant';
  if (schedule !== 'constant' && schedule !== 'cosine') throw new InvalidArgumentError('schedule', `expected 'constant' or 'cosine', got ${String(schedule)}`);
  const iterations = options.iterations;
  if (schedule === 'cosine' && !(Number.isInteger(iterations) && iterations! >= 1)) throw new InvalidArgumentError('iterations', `a cosine schedule needs a positive integer iteration count, got ${iterations}`);
  const s = options.cayleyIterations ?? 2;
  if (!Number.isInteger(s) || s < 1) throw new InvalidArgumentError('cayleyIterations', `expected a positive integer, got ${s}`);
  const q = options.stepBound ?? 0.5;
  if (!(q > 0 && q < 1)) throw new InvalidArgumentError('stepBound', `expected a number in (0, 1) (the retraction's contraction), got ${q}`);
  const { backend } = options;
  const m = new Float64Array(n * p);
  const w = new Float64Array(n * n);
  const t1 = new Float64Array(Math.max(n * n, p * p));
  const xm = new Float64Array(p * p);
  const y = new Float64Array(n * p);
  const sum = new Float64Array(n * p);
  const previous = new Float64Array(n * p);
  const tolerance = options.retractionTolerance ?? 1e-12;
  let t = 0;
  const rate = () => (schedule === 'cosine' ? 0.5 * l * (1 + Math.cos((Math.PI * Math.min(t, iterations!)) / iterations!)) : l);
  return {
    get iteration() {
      return t;
    },
    learningRate: rate,
    async step(x, gradient) {
      if (x.length !== n * p) throw new ShapeMismatchError('x', [n, p], [x.length]);
      if (gradient.length !== n * p) throw new ShapeMismatchError('gradient', [n, p], [gradient.length]);
      for (let i = 0; i < m.length; i++) m[i] = beta * m[i]! - gradient[i]!;
      // W^ = M X^T - ½ X (X^T M) X^T, then W = W^ - W^T.
      await backend.dgemm({ m: n, n, k: p, a: m, b: x, c: w, transB: true }); // M X^T
      await backend.dgemm({ m: p, n: p, k: n, a: x, b: m, c: xm, transA: true }); // X^T M (p x p)
      await backend.dgemm({ m: n, n: p, k: p, a: x, b: xm, c: y }); // X (X^T M), n x p (y as scratch)
      await backend.dgemm({ m: n, n, k: p, a: y, b: x, c: w, transB: true, alpha: -0.5, beta: 1 }); // - ½ X X^T M X^T
      let norm = 0;
      for (let i = 0; i < n; i++) {
        for (let j = i; j < n; j++) {
          const a = w[i * n + j]! - w[j * n + i]!;
          w[i * n + j] = a;
          w[j * n + i] = -a;
          norm += i === j ? 0 : 2 * a * a;
        }
      }
      norm = Math.sqrt(norm);
      if (!Number.isFinite(norm)) throw new InvalidArgumentError('gradient', `the Cayley step's skew matrix has norm ${norm}; the gradient holds NaN or infinity`);
      await backend.dgemm({ m: n, n: p, k: n, a: w, b: x, c: m }); // M ← W X (the momentum, projected on the tangent space)
      const alpha = Math.min(rate(), (2 * q) / (norm + 1e-8));
      for (let i = 0; i < y.length; i++) y[i] = x[i]! + alpha * m[i]!;
      // The fixed point Y = X + (alpha / 2) W (X + Y) is the Cayley transform; the map contracts by alpha ||W||_2 / 2
      // <= q (the step bound), so it converges geometrically.
      for (let k = 0; k < 50; k++) {
        for (let i = 0; i < sum.length; i++) sum[i] = x[i]! + y[i]!;
        previous.set(y);
        y.set(x);
        await backend.dgemm({ m: n, n: p, k: n, a: w, b: sum, c: y, alpha: alpha / 2, beta: 1 });
        if (k + 1 < s) continue;
        let change = 0;
        for (let i = 0; i < y.length; i++) change = Math.max(change, Math.abs(y[i]! - previous[i]!));
        if (!(change > tolerance)) break;
      }
      x.set(y);
      t++;
      return alpha;
    },
  };
}

/**
 * The orthonormal matrix nearest to `x` (`n x p`, `p <= n`, float64, close to orthonormal: every singular value in
 * (0, sqrt(3))) in the Frobenius norm, its polar factor, by Newton-Schulz iterations `X ← X (3I - X^T X) / 2` in
 * place until `max |X^T X - I| <= tolerance` (quadratic convergence; at most 50 iterations).
 *
 * @returns The final `max |X^T X - I|`.
 * @example
 * ```ts
 * await nearestOrthogonal(r, 512, 512, backend); // after many approximate Cayley steps
 * ```
 */
export async function nearestOrthogonal(x: Float64Array, rows: number, columns: number, backend: Backend, tolerance = 1e-13): Promise<number> {
  const n = rows;
  const p = columns;
  if (x.length !== n * p) throw new ShapeMismatchError('x', [n, p], [x.length]);
  const g = new Float64Array(p * p);
  const y = new Float64Array(n * p);
  let error = Infinity;
  for (let it = 0; it <= 50; it++) {
    await backend.dgemm({ m: p, n: p, k: n, a: x, b: x, c: g, transA: true });
    error = 0;
    for (let i = 0; i < p; i++) {
      for (let j = 0; j < p; j++) {
        const d = Math.abs(g[i * p + j]! - (i === j ? 1 : 0));
        error = Number.isNaN(d) || Number.isNaN(error) ? NaN : Math.max(error, d);
      }
    }
    if (!Number.isFinite(error) || error <= tolerance || it === 50) break;
    // X ← 1.5 X - 0.5 X (X^T X)
    y.set(x);
    await backend.dgemm({ m: n, n: p, k: p, a: y, b: g, c: x, alpha: -0.5, beta: 1.5 });
  }
  if (!(error < 1)) throw new InvalidArgumentError('x', `is too far from orthonormal to project (max |X^T X - I| = ${error})`);
  return error;
}
