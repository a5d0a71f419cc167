// Benchmark of the truncated SVD that every low-rank step uses: randomized SVD (Halko et al., arXiv:0909.4061) of a
// 4096 x 4096 float32 matrix at rank 64, on each available backend.
// Usage (after `npx turbo run build --filter=@bitsmith/lowrank...`):
//   npm run bench -w @bitsmith/lowrank -- [--backend ort,wasm,js] [--size 4096] [--rank 64] [--power 2]
import { createBackend, fillNormal } from '@bitsmith/linalg';
import { truncatedSvd } from '../dist/index.js';

const argv = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};
const size = Number(flag('size', 4096));
const rank = Number(flag('rank', 64));
const power = Number(flag('power', 2));
const backends = flag('backend', 'ort,wasm,js').split(',');
const times = {};
// A matrix with a decaying spectrum: rank-128 signal plus noise.
const signal = 128;
const left = fillNormal(new Float64Array(size * signal), 1);
const right = fillNormal(new Float64Array(signal * size), 2);
const a = fillNormal(new Float64Array(size * size), 3);
for (let i = 0; i < a.length; i++) a[i] *= 0.01;
for (let i = 0; i < size; i++)
  for (let k = 0; k < signal; k++) {
    const l = left[i * signal + k] / (1 + k);
    const row = i * size;
    const ro = k * size;
    for (let j = 0; j < size; j++) a[row + j] += l * right[ro + j];
  }
for (const name of backends) {
  const backend = await createBackend(name);
  const t0 = performance.now();
  const { s } = await truncatedSvd(a, size, size, rank, { method: 'randomized', powerIterations: power, backend });
  const ms = performance.now() - t0;
  times[name] = ms;
  console.log(`randomized SVD ${size}x${size} rank ${rank} (oversampling 10, ${power} power iterations), backend ${name}: ${ms.toFixed(0)} ms; s[0] ${s[0].toFixed(2)}, s[${rank - 1}] ${s[rank - 1].toFixed(3)}`);
  await backend.dispose?.();
}
// Same-run reference: the js backend (plain typed-array loops) when it ran.
if (times.js) for (const [name, ms] of Object.entries(times)) if (name !== 'js') console.log(`speed-up of ${name} over js in this run: ${(times.js / ms).toFixed(1)}x`);
