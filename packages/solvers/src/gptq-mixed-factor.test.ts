import { describe, expect, it } from 'vitest';
import { dequantize, quantize, parseFormat } from '@bitsmith/core';
import { createBackend } from '@bitsmith/linalg';
import { gptqQuantizeLayer } from './gptq-quantize-layer.js';
import { layerObjective } from './layer-objective.js';
import { randomWeight } from './gptq.test-support.js';

// The mixed-precision factor applies above 2048 input columns only: one layer of 2112 columns on the ort backend.
const backend = await createBackend('ort').catch(() => undefined);

describe.skipIf(!backend)("GPTQ's factorPrecision above 2048 inputs (ort backend)", () => {
  it('mixed and float64 factors give the same layer objective to 1e-3, both far below round-to-nearest', async () => {
    const rows = 16;
    const n = 2112;
    const tokens = 2400;
    const x = new Float32Array(tokens * n);
    const w = randomWeight(rows, n, 5, 0.02);
    const noise = randomWeight(tokens, n, 6);
    for (let t = 0; t < tokens; t++) {
      let previous = 0;
      for (let j = 0; j < n; j++) {
        previous = noise.data[t * n + j]! + 0.6 * previous;
        x[t * n + j] = previous * (j % 97 === 0 ? 6 : 1);
      }
    }
    const hessian = new Float64Array(n * n);
    await backend!.gram({ rows: tokens, columns: n, x, h: hessian, alpha: 1, beta: 0 });
    const options = { format: 'int4', granularity: { type: 'group', size: 64 } as const, backend: backend! };
    const mixed = await gptqQuantizeLayer(w, hessian, { ...options, factorPrecision: 'mixed' });
    const exact = await gptqQuantizeLayer(w, hessian, { ...options, factorPrecision: 'float64' });
    const rtn = dequantize(quantize(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 64 } }));
    const objective = async (q: typeof w): Promise<number> => layerObjective(w, q, hessian, { backend: backend! });
    const [om, oe, or] = [await objective(mixed.weight), await objective(exact.weight), await objective(rtn)];
    expect(Math.abs(om / oe - 1)).toBeLessThan(1e-3);
    expect(om).toBeLessThan(0.8 * or);
    expect(mixed.warnings).toEqual(exact.warnings);
  });
});
