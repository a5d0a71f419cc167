import { AbortError, InvalidArgumentError, NumericalError } from '@bitsmith/core';
import { createRandom, defaultBackend, type Backend } from '@bitsmith/linalg';

/** Options of {@link weightedKMeans}. */
export interface WeightedKMeansOptions {
  /** Number of centroids `k` (at least 1). */
  clusters: number;
  /** A non-negative weight per vector (length `n`); absent: all 1. A vector of weight 0 never attracts a centroid. */
  weights?: Float32Array | Float64Array;
  /** Seed of the k-means++ initialisation (linalg's `createRandom`). Default 0. */
  seed?: number;
  /** Initial centroids `k x d` instead of k-means++ (copied, not modified). */
  initialCentroids?: Float32Array;
  /** Largest number of Lloyd iterations. Default 100. */
  maxIterations?: number;
  /**
   * Stop when the weighted inertia falls by less than `tolerance * inertia` in one iteration (or no assignment
   * changes). Default 1e-6.
   */
  tolerance?: number;
  /**
   * Compute distances as `||x||^2 - 2 x.c + ||c||^2` through the backend's `sgemm` when `n * k * d` is at least this.
   * Default 2^20 (smaller problems use plain loops, which are exact and faster there).
   */
  gemmThreshold?: number;
  /** Backend for the distance GEMMs. Default `defaultBackend()` (only resolved when the GEMM path is taken). */
  backend?: Backend;
  /** Cancellation, checked between iterations. */
  signal?: AbortSignal;
  /** Called after every Lloyd iteration with its number (1-based) and the weighted inertia. */
  onIteration?(iteration: number, inertia: number): void;
}

/** Result of {@link weightedKMeans}. */
export interface WeightedKMeansResult {
  /** `k x d` float32, row-major. */
  readonly centroids: Float32Array;
  /** Centroid index of every vector. */
  readonly assignments: Int32Array;
  /** Weighted sum of squared distances `sum_i w_i ||x_i - c_{a(i)}||^2` (float64, computed exactly at the end). */
  readonly inertia: number;
  /** Lloyd iterations run. */
  readonly iterations: number;
  /** Whether the tolerance was met before `maxIterations`. */
  readonly converged: boolean;
  /** How many times an empty cluster was re-seeded with the worst-served vector. */
  readonly reseeded: number;
}

const ROW_CHUNK = 8192;

function checkData(data: Float32Array, dimension: number, options: WeightedKMeansOptions): number {
  if (!Number.isInteger(dimension) || dimension < 1) throw new InvalidArgumentError('dimension', `got ${dimension}; expected a positive integer`);
  if (data.length % dimension !== 0) throw new InvalidArgumentError('data', `length ${data.length} is not a multiple of the dimension ${dimension}`);
  const n = data.length / dimension;
  const k = options.clusters;
  if (!Number.isInteger(k) || k < 1) throw new InvalidArgumentError('clusters', `got ${k}; expected a positive integer`);
  if (n === 0) throw new InvalidArgumentError('data', 'needs at least one vector');
  if (options.weights && options.weights.length !== n) throw new InvalidArgumentError('weights', `has ${options.weights.length} entries; expected one per vector (${n})`);
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) throw new NumericalError(`data element ${i} is ${data[i]}`, 'k-means needs finite data');
  if (options.weights) for (const w of options.weights) if (!(w >= 0) || !Number.isFinite(w)) throw new InvalidArgumentError('weights', `got ${w}; expected finite values >= 0`);
  if (options.initialCentroids && options.initialCentroids.length !== k * dimension) {
    throw new InvalidArgumentError('initialCentroids', `has ${options.initialCentroids.length} values; expected clusters x dimension = ${k * dimension}`);
  }
  return n;
}

/**
 * Weighted k-means++ seeding (Arthur and Vassilvitskii 2007): the first centroid is drawn with probability
 * proportional to the weight, each next one proportional to `w_i * D(x_i)^2`. Deterministic for a seed.
 *
 * @param data - `n x d` float32, row-major.
 * @returns `k x d` centroids. When fewer than `k` vectors have positive weighted distance, the remaining centroids
 *   repeat existing vectors (Lloyd then leaves them empty and re-seeds them).
 * @example
 * ```ts
 * const centroids = kMeansPlusPlus(points, 2, 16, { seed: 1 });
 * ```
 */
export function kMeansPlusPlus(data: Float32Array, dimension: number, clusters: number, options: { weights?: Float32Array | Float64Array; seed?: number } = {}): Float32Array {
  const d = dimension;
  const n = data.length / d;
  const random = createRandom(options.seed ?? 0);
  const w = options.weights;
  const centroids = new Float32Array(clusters * d);
  const best = new Float64Array(n).fill(Infinity);
  const scores = new Float64Array(n);
  // Draws index i with probability scores[i] / total (a uniform draw when total is 0).
  const pick = (total: number): number => {
    if (!(total > 0)) return Math.min(n - 1, Math.floor(random.uniform() * n));
    let target = random.uniform() * total;
    for (let i = 0; i < n; i++) {
      target -= scores[i]!;
      if (target < 0) return i;
    }
    return n - 1;
  };
  let total = 0;
  for (let i = 0; i < n; i++) {
    scores[i] = w ? w[i]! : 1;
    total += scores[i]!;
  }
  let chosen = pick(total);
  const centroid = new Float64Array(d);
  for (let c = 0; c < clusters; c++) {
    centroids.set(data.subarray(chosen * d, chosen * d + d), c * d);
    if (c === clusters - 1) break;
    for (let a = 0; a < d; a++) centroid[a] = centroids[c * d + a]!;
    // One pass: the new centroid's distances, the running minimum, the scores and their total (summed in index
    // order, so the draw is the same as summing afterwards).
    total = 0;
    for (let i = 0, o = 0; i < n; i++, o += d) {
      let s = 0;
      for (let a = 0; a < d; a++) {
        const t = data[o + a]! - centroid[a]!;
        s += t * t;
      }
      const m = s < best[i]! ? (best[i] = s) : best[i]!;
      const score = w ? w[i]! * m : m;
      scores[i] = score;
      total += score;
    }
    chosen = pick(total);
  }
  return centroids;
}

/**
 * Nearest centroid of every vector by plain loops; writes `assignments` and `distances` (squared). Exact; used
 * for small problems and for the final inertia.
 */
function assignDirect(data: Float32Array, d: number, n: number, centroids: Float32Array, k: number, assignments: Int32Array, distances: Float64Array): void {
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let bestC = 0;
    let bestD = Infinity;
    for (let c = 0; c < k; c++) {
      const co = c * d;
      let s = 0;
      for (let a = 0; a < d; a++) {
        const t = data[o + a]! - centroids[co + a]!;
        s += t * t;
      }
      if (s < bestD) {
        bestD = s;
        bestC = c;
      }
    }
    assignments[i] = bestC;
    distances[i] = bestD;
  }
}

/**
 * Nearest centroid through GEMM: `||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2`, the `x.c` products of a chunk of rows
 * against all centroids in one `sgemm` (`X C^T`). Distances are clamped at 0 (cancellation).
 */
async function assignGemm(
  data: Float32Array,
  d: number,
  n: number,
  centroids: Float32Array,
  k: number,
  assignments: Int32Array,
  distances: Float64Array,
  norms: Float64Array,
  backend: Backend,
  products: Float32Array,
): Promise<void> {
  const cNorm = new Float64Array(k);
  for (let c = 0; c < k; c++) {
    let s = 0;
    for (let a = 0; a < d; a++) s += centroids[c * d + a]! ** 2;
    cNorm[c] = s;
  }
  for (let r0 = 0; r0 < n; r0 += ROW_CHUNK) {
    const m = Math.min(ROW_CHUNK, n - r0);
    const p = products.subarray(0, m * k);
    await backend.sgemm({ m, n: k, k: d, a: data.subarray(r0 * d, (r0 + m) * d), b: centroids, c: p, transB: true });
    for (let i = 0; i < m; i++) {
      const o = i * k;
      let bestC = 0;
      let bestD = Infinity;
      for (let c = 0; c < k; c++) {
        const s = cNorm[c]! - 2 * p[o + c]!;
        if (s < bestD) {
          bestD = s;
          bestC = c;
        }
      }
      assignments[r0 + i] = bestC;
      distances[r0 + i] = Math.max(0, bestD + norms[r0 + i]!);
    }
  }
}

/**
 * Weighted k-means (Lloyd's algorithm) of `n` vectors of dimension `d` into `k` clusters, minimising
 * `sum_i w_i ||x_i - c_{a(i)}||^2`. Seeded by weighted k-means++ (deterministic for a `seed`, never `Math.random`),
 * then alternates assignment (nearest centroid; through the backend's `sgemm` as `||x||^2 - 2 x.c + ||c||^2` when
 * `n k d >= gemmThreshold`) and update (weighted means, float64 accumulators). An empty cluster (no vector of
 * positive weight) is re-seeded with the vector of largest weighted distance to its centroid. Stops when the
 * inertia falls by less than `tolerance` (relative) or after `maxIterations`.
 *
 * @param data - `n x d` float32, row-major. Not modified.
 * @param dimension - `d`.
 * @param options - See {@link WeightedKMeansOptions}: `clusters` (required), `weights` (all 1), `seed` (0),
 *   `initialCentroids`, `maxIterations` (100), `tolerance` (1e-6), `gemmThreshold` (2^20), `backend`, `signal`.
 * @example
 * ```ts
 * const { centroids, assignments, inertia } = await weightedKMeans(points, 8, { clusters: 256, seed: 1 });
 * ```
 */
export async function weightedKMeans(data: Float32Array, dimension: number, options: WeightedKMeansOptions): Promise<WeightedKMeansResult> {
  const n = checkData(data, dimension, options);
  const d = dimension;
  const k = options.clusters;
  const w = options.weights;
  const maxIterations = options.maxIterations ?? 100;
  const tolerance = options.tolerance ?? 1e-6;
  const useGemm = n * k * d >= (options.gemmThreshold ?? 2 ** 20) && d > 1;
  const backend = useGemm ? (options.backend ?? (await defaultBackend())) : undefined;
  const centroids = options.initialCentroids ? Float32Array.from(options.initialCentroids) : kMeansPlusPlus(data, d, k, { ...(w ? { weights: w } : {}), seed: options.seed ?? 0 });
  const assignments = new Int32Array(n);
  const previous = new Int32Array(n).fill(-1);
  const distances = new Float64Array(n);
  const norms = useGemm ? new Float64Array(n) : new Float64Array(0);
  if (useGemm) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let a = 0; a < d; a++) s += data[i * d + a]! ** 2;
      norms[i] = s;
    }
  }
  const products = useGemm ? new Float32Array(Math.min(ROW_CHUNK, n) * k) : new Float32Array(0);
  const sums = new Float64Array(k * d);
  const mass = new Float64Array(k);
  let inertia = Infinity;
  let iterations = 0;
  let converged = false;
  let reseeded = 0;
  const assign = async (): Promise<void> => {
    if (useGemm) await assignGemm(data, d, n, centroids, k, assignments, distances, norms, backend!, products);
    else assignDirect(data, d, n, centroids, k, assignments, distances);
  };
  await assign();
  while (iterations < maxIterations) {
    if (options.signal?.aborted) throw new AbortError();
    iterations++;
    // Update: weighted means.
    sums.fill(0);
    mass.fill(0);
    for (let i = 0; i < n; i++) {
      const wi = w ? w[i]! : 1;
      if (wi === 0) continue;
      const c = assignments[i]!;
      mass[c] += wi;
      const o = i * d;
      const co = c * d;
      for (let a = 0; a < d; a++) sums[co + a] += wi * data[o + a]!;
    }
    for (let c = 0; c < k; c++) {
      if (mass[c]! > 0) {
        for (let a = 0; a < d; a++) centroids[c * d + a] = sums[c * d + a]! / mass[c]!;
        continue;
      }
      // Empty cluster: re-seed with the worst-served vector (largest weighted distance), which then owns it.
      let worst = -1;
      let worstScore = 0;
      for (let i = 0; i < n; i++) {
        const s = (w ? w[i]! : 1) * distances[i]!;
        if (s > worstScore) {
          worstScore = s;
          worst = i;
        }
      }
      if (worst < 0) continue; // every vector is served exactly: nothing to gain
      centroids.set(data.subarray(worst * d, worst * d + d), c * d);
      distances[worst] = 0;
      reseeded++;
    }
    await assign();
    let next = 0;
    let changed = false;
    for (let i = 0; i < n; i++) {
      next += (w ? w[i]! : 1) * distances[i]!;
      if (assignments[i] !== previous[i]) changed = true;
    }
    previous.set(assignments);
    options.onIteration?.(iterations, next);
    const drop = inertia - next;
    inertia = next;
    if (!changed || (Number.isFinite(drop) && drop <= tolerance * next)) {
      converged = true;
      break;
    }
  }
  // Exact final inertia with the final centroids and assignments.
  let exact = 0;
  for (let i = 0; i < n; i++) {
    const o = i * d;
    const co = assignments[i]! * d;
    let s = 0;
    for (let a = 0; a < d; a++) {
      const t = data[o + a]! - centroids[co + a]!;
      s += t * t;
    }
    exact += (w ? w[i]! : 1) * s;
  }
  return { centroids, assignments, inertia: exact, iterations, converged, reseeded };
}
