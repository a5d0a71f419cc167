// Benchmark: weighted k-means of 1M 8-dimensional vectors to 256 centroids (distances through the backend's sgemm).
// Run after `npm run build`: node packages/codebook/bench/run.mjs [vectors] [iterations] [backend]
import { createBackend, defaultBackend, fillNormal } from '@bitsmith/linalg';
import { kMeansPlusPlus, weightedKMeans } from '@bitsmith/codebook';

const n = Number(process.argv[2] ?? 1_000_000);
const iterations = Number(process.argv[3] ?? 10);
const backend = process.argv[4] ? await createBackend(process.argv[4]) : await defaultBackend();
const d = 8;
const k = 256;
const data = fillNormal(new Float32Array(n * d), 1);
const weights = new Float64Array(n).fill(1);
const times = [];
const started = performance.now();
const initialCentroids = kMeansPlusPlus(data, d, k, { weights, seed: 0 });
const init = (performance.now() - started) / 1000;
let last = performance.now();
const result = await weightedKMeans(data, d, {
  clusters: k,
  weights,
  initialCentroids,
  maxIterations: iterations,
  tolerance: 0,
  backend,
  onIteration() {
    const now = performance.now();
    times.push(now - last);
    last = now;
  },
});
const total = (performance.now() - started) / 1000;
times.sort((a, b) => a - b);
console.log(`k-means ${n} x ${d} -> ${k} centroids, backend ${backend.name} (${backend.threads} threads)`);
console.log(`k-means++ init: ${init.toFixed(2)} s`);
console.log(`Lloyd iteration (update + assign; the first also includes the initial assignment): median ${(times[times.length >> 1] / 1000).toFixed(3)} s, min ${(times[0] / 1000).toFixed(3)} s over ${times.length}`);
console.log(`total ${total.toFixed(2)} s for ${result.iterations} iterations; inertia ${result.inertia.toExponential(4)}`);

// Same-run reference: one assignment pass (the dominant cost of an iteration) written as a plain typed-array loop,
// against the library's pass on the final centroids. Both must agree on the inertia.
const c = result.centroids;
const t1 = performance.now();
let plainInertia = 0;
for (let i = 0; i < n; i++) {
  let best = Infinity;
  for (let j = 0; j < k; j++) {
    let dist = 0;
    for (let t = 0; t < d; t++) {
      const diff = data[i * d + t] - c[j * d + t];
      dist += diff * diff;
    }
    if (dist < best) best = dist;
  }
  plainInertia += best;
}
const plain = (performance.now() - t1) / 1000;
const median = times[times.length >> 1] / 1000;
console.log(`reference, same run: one assignment pass as a plain typed-array loop ${plain.toFixed(3)} s (nearest-centroid inertia ${plainInertia.toExponential(4)})`);
console.log(`ratio plain-loop assignment / library Lloyd iteration (assignment + update): ${(plain / median).toFixed(2)}x`);
await backend.dispose?.();
process.exit(0);
