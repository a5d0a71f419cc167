import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from './backend.js';
import { createJsBackend } from './backends/js-backend.js';
import { createOrtBackend } from './backends/ort-backend.js';
import { sgemmBatched } from './sgemm-batched.js';

const backends: Backend[] = [createJsBackend()];
try {
  backends.push(await createOrtBackend({ threads: 2 }));
} catch (error) {
  console.warn(`sgemmBatched on ort skipped: ${(error as Error).message}`);
}
afterAll(async () => {
  for (const b of backends) await b.dispose();
});

function filled(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2147483648), s / 2147483648 - 0.5));
}

describe('sgemmBatched', () => {
  for (const backend of backends) {
    // The oracle: each product alone through the backend's sgemm (the batched call must give the same bits).
    it(`gives each product the bits of a single sgemm, all transposes and a scale (${backend.name})`, async () => {
      for (const [batch, m, n, k] of [[1, 5, 7, 3], [3, 16, 9, 33], [4, 130, 70, 64]] as const) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            const a = filled(batch * m * k, m + k);
            const b = filled(batch * n * k, n + 3 * k);
            const alpha = transB ? 0.125 : 1;
            const got = new Float32Array(batch * m * n).fill(NaN);
            await sgemmBatched(backend, { batch, m, n, k, a, b, c: got, transA, transB, alpha });
            for (let e = 0; e < batch; e++) {
              const one = new Float32Array(m * n);
              await backend.sgemm({ m, n, k, a: a.subarray(e * m * k, (e + 1) * m * k), b: b.subarray(e * n * k, (e + 1) * n * k), c: one, transA, transB, alpha });
              expect(Array.from(got.subarray(e * m * n, (e + 1) * m * n)), `${batch}x${m}x${n}x${k} ${transA} ${transB} #${e}`).toEqual(Array.from(one));
            }
          }
        }
      }
    });
  }

  it('refuses operands too short for the batch', async () => {
    await expect(sgemmBatched(backends[0]!, { batch: 2, m: 2, n: 2, k: 2, a: new Float32Array(7), b: new Float32Array(8), c: new Float32Array(8) })).rejects.toThrow(/sgemmBatched.a/);
  });
});
