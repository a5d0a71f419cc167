import { afterAll, describe, expect, it } from 'vitest';
import { createJsBackend, tryCreateWebgpuBackend, type WebgpuBackend } from '@bitsmith/linalg';
import { gptqQuantizeLayer } from './gptq-quantize-layer.js';
import { correlatedHessian, naiveObjective, randomWeight } from './gptq.test-support.js';

// GPTQ's column loop on the GPU (linalg's webgpuGptqSolve) against the CPU loop on the same layer: the same codes up
// to float32 rounding at midpoints, the same objective. Needs a WebGPU adapter; skipped with the reason elsewhere.
const { backend: gpu, reason } = await tryCreateWebgpuBackend({ minGpuWork: 0, threads: 1 });
if (!gpu) console.warn(`[bitsmith] skipping GPTQ-on-webgpu tests: ${reason}`);

describe.skipIf(gpu === undefined)('GPTQ on the webgpu backend', () => {
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

// A Hessian resident on the GPU (core's ResidentHessian, as the GPU model hands it over: X^T X not divided by the
// tokens) against the same Hessian as a float64 host array: factored where it is, with the same codes up to float32
// rounding and the same objective; where the layer cannot take it there (act-order, another precision) it is read
// back and the result is exactly the host path's.
describe.skipIf(gpu === undefined)('GPTQ on the webgpu backend with a resident Hessian', () => {
  afterAll(() => gpu?.dispose()); // the last describe of the file
  const [rows, n, tokens] = [72, 256, 512];
  const weight = randomWeight(rows, n, 41);
  const hessian = correlatedHessian(n, tokens, 42);
  const residentOf = (scale: number) => {
    const matrix = gpu!.upload(Float32Array.from(hessian, (v) => v / scale), n, n);
    let reads = 0;
    const resident = {
      columns: n,
      handle: { backend: gpu!, matrix },
      scale,
      read: async () => {
        reads++;
        return Float64Array.from(await gpu!.read(matrix), (v) => v * scale);
      },
    };
    return { matrix, resident, reads: () => reads };
  };
  it('w4 g128 with the GPU factor: factored in place (no read back), codes and objective of the host Hessian', async () => {
    const options = { format: 'int4', granularity: { type: 'group', size: 128 }, factorPrecision: 'gpu', backend: gpu! } as const;
    // The host path's Hessian is what the resident one reads back as (float32 values, scaled in float64).
    const { matrix, resident, reads } = residentOf(1 / tokens);
    const host = await resident.read();
    const fromHost = await gptqQuantizeLayer(weight, host, options);
    const fromResident = await gptqQuantizeLayer(weight, resident, options);
    expect(reads()).toBe(1);
    let same = 0;
    for (let i = 0; i < rows * n; i++) if (fromResident.quantized.codes[i] === fromHost.quantized.codes[i]) same++;
    expect(same / (rows * n)).toBeGreaterThan(0.999);
    const objectiveHost = naiveObjective(weight, fromHost.weight, hessian);
    const objectiveResident = naiveObjective(weight, fromResident.weight, hessian);
    expect(Math.abs(objectiveResident - objectiveHost) / objectiveHost).toBeLessThan(1e-3);
    expect(fromResident.dampening).toBe(fromHost.dampening);
    gpu!.release(matrix);
  });
  it('act-order: read back, exactly the host path', async () => {
    const options = { format: 'int4', granularity: { type: 'group', size: 128 }, factorPrecision: 'gpu', actOrder: true, backend: gpu! } as const;
    const { matrix, resident, reads } = residentOf(1 / tokens);
    const fromResident = await gptqQuantizeLayer(weight, resident, options);
    expect(reads()).toBe(1);
    const fromHost = await gptqQuantizeLayer(weight, await resident.read(), options);
    expect(fromResident.quantized.codes).toEqual(fromHost.quantized.codes);
    expect(fromResident.weight.data).toEqual(fromHost.weight.data);
    gpu!.release(matrix);
  });
  it('a dead column: read back (the host path zeroes it)', async () => {
    const dead = hessian.slice();
    for (let i = 0; i < n; i++) dead[i * n + 5] = dead[5 * n + i] = 0;
    const matrix = gpu!.upload(Float32Array.from(dead), n, n);
    let reads = 0;
    const resident = { columns: n, handle: { backend: gpu!, matrix }, scale: 1, read: async () => (reads++, Float64Array.from(await gpu!.read(matrix))) };
    const result = await gptqQuantizeLayer(weight, resident, { format: 'int4', granularity: { type: 'group', size: 128 }, factorPrecision: 'gpu', backend: gpu! });
    expect(reads).toBe(1);
    expect(result.warnings.some((w) => /dead/.test(w.message))).toBe(true);
    for (let r = 0; r < rows; r++) expect(result.weight.data[r * n + 5]).toBe(0);
    gpu!.release(matrix);
  });
});
