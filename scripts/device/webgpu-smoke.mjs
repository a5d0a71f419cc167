// Smoke checks of the webgpu backend's life cycle on a real adapter, one mode per process (a native crash then
// names its mode): `plain` (one backend, a GPU sgemm, exit), `dispose` (the same, disposed before exit), `twice`
// (create, dispose, create again), `nodestroy` (as twice, with GPUDevice.destroy made a no-op), `jscpu` (the CPU side
// on the js backend: no worker threads next to Dawn's).
// Usage: node webgpu-smoke.mjs MODE
import { writeSync } from 'node:fs';
import { createJsBackend, createWebgpuBackend } from '../../packages/linalg/src/index.js';

const mode = process.argv[2] ?? 'plain';
const say = (line) => writeSync(1, `[${mode}] ${line}\n`);
const n = 512;
const a = new Float32Array(n * n);
for (let i = 0; i < a.length; i++) a[i] = ((i * 7919) % 13) - 6;

async function once() {
  const gpu = await createWebgpuBackend({ minGpuWork: 0, threads: 2, ...(mode === 'jscpu' ? { cpu: createJsBackend() } : {}) });
  say(`created on ${gpu.adapter.description}`);
  const c = new Float32Array(n * n);
  await gpu.sgemm({ m: n, n, k: n, a, b: a, c });
  let ref = 0;
  for (let q = 0; q < n; q++) ref += a[q] * a[q * n];
  say(`sgemm c[0] = ${c[0]} (expected ${ref})`);
  return gpu;
}

if (mode === 'nodestroy') globalThis.GPUDevice && (globalThis.GPUDevice.prototype.destroy = () => {});
const first = await once();
if (mode === 'nodestroy' && globalThis.GPUDevice) globalThis.GPUDevice.prototype.destroy = () => {};
if (mode !== 'plain' && mode !== 'jscpu') {
  await first.dispose();
  say('disposed');
}
if (mode === 'twice' || mode === 'nodestroy') {
  const second = await once();
  await second.dispose();
  say('second disposed');
}
say('exit');
process.exit(0);
