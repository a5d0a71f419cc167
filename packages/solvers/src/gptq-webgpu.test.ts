import { afterAll, describe, expect, it } from 'vitest';
import { createJsBackend, tryCreateWebgpuBackend, type WebgpuBackend } from '@bitsmith/linalg';
import { gptqQuantizeLayer } from './gptq-quantize-layer.js';
import { correlatedHessian, naiveObjective, randomWeight } from './gptq.test-support.js';

// GPTQ's column loop on the GPU (linalg's webgpuGptqSolve) against the CPU loop on the same layer: the same codes up
// to float32 rounding at midpoints, the same objective. Needs a WebGPU adapter; skipped with the reason elsewhere.
const { backend: gpu, reason } = await tryCreateWebgpuBackend({ minGpuWork: 0, threads: 1 });
if (!gpu) console.warn(`[bitsmith] skipping GPTQ-on-webgpu tests: ${reason}`);

describe.skipIf(gpu === undefined)('GPTQ on the webgpu backend', () => {
  afterAll(() => gpu?.dispose());
  const cases = [
    { name: 'int4 per channel', options: { format: 'int4' } },
    { name: 'int4-asym groups of 32, act-order', options: { format: 'int4-asym', granularity: { type: 'group', size: 32 }, actOrder: true } },
    { name: 'nf4 groups of 64, batches of 64', options: { format: 'nf4', granularity: { type: 'group', size: 64 }, blockSize: 64 } },
    // The float32 factor formed on the GPU and kept there for the GPU loop.
    { name: 'int4-asym groups of 32, act-order, factor on the GPU', options: { format: 'int4-asym', granularity: { type: 'group', size: 32 }, actOrder: true, factorPrecision: 'gpu' } },
    // Block granularity runs the CPU loop: the GPU factor comes back to the host for it.
    { name: 'int4 blocks of 8 x 32 (CPU loop), factor on the GPU', options: { format: 'int4', granularity: { type: 'block', rows: 8, columns: 32 }, factorPrecision: 'gpu' } },
  ] as const;
  for (const { name, options } of cases) {
    it(`${name}: codes and objective of the CPU loop`, async () => {
      const [rows, n] = [72, 192];
      const weight = randomWeight(rows, n, 31);
      const hessian = correlatedHessian(n, 2 * n, 32);
      const cpu = await gptqQuantizeLayer(weight, hessian, { ...options, backend: createJsBackend() });
      const onGpu = await gptqQuantizeLayer(weight, hessian, { ...options, backend: gpu! });
      let same = 0;
      for (let i = 0; i < rows * n; i++) if (onGpu.quantized.codes[i] === cpu.quantized.codes[i]) same++;
      expect(same / (rows * n)).toBeGreaterThan(0.99);
      const objectiveCpu = naiveObjective(weight, cpu.weight, hessian);
      const objectiveGpu = naiveObjective(weight, onGpu.weight, hessian);
      expect(Math.abs(objectiveGpu - objectiveCpu) / objectiveCpu).toBeLessThan(0.01);
    });
  }
});
