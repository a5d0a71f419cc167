import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@bitsmith/core';
import { tryCreateWebgpuBackend, type WebgpuBackend, type WebgpuMatrix } from './webgpu-backend.js';
import { webgpuDiagonal, webgpuMirrorUpper } from './webgpu-symmetric.js';

// The upper triangle mirrored onto the lower one on the GPU, against the same copy on the host; argument checks run
// everywhere. The GPU part needs a WebGPU adapter; skipped elsewhere.
const { backend: gpu, reason } = await tryCreateWebgpuBackend({ minGpuWork: 0, threads: 1 });
if (!gpu) console.warn(`[bitsmith] skipping webgpu mirror kernel: ${reason}`);

describe('webgpuMirrorUpper: arguments (no GPU needed)', () => {
  it('refuses a matrix that is not square or not float32', async () => {
    const none = {} as WebgpuBackend;
    expect(() => webgpuMirrorUpper(none, { rows: 3, columns: 4, dtype: 'float32' } as unknown as WebgpuMatrix)).toThrow(InvalidArgumentError);
    expect(() => webgpuMirrorUpper(none, { rows: 4, columns: 4, dtype: 'float16' } as unknown as WebgpuMatrix)).toThrow(/float32/);
    await expect(webgpuDiagonal(none, { rows: 3, columns: 4, dtype: 'float32' } as unknown as WebgpuMatrix)).rejects.toThrow(InvalidArgumentError);
  });
});

describe.skipIf(gpu === undefined)('webgpuMirrorUpper on the GPU', () => {
  afterAll(() => gpu?.dispose());
  it('copies m[b][a] to m[a][b] for a > b exactly and keeps the upper triangle and diagonal (n = 37, 3 tiles)', async () => {
    const n = 37;
    const data = Float32Array.from({ length: n * n }, (_, i) => (i % 11) - 5 + i / 1000);
    const m = gpu!.upload(data, n, n);
    webgpuMirrorUpper(gpu!, m);
    const got = await gpu!.read(m);
    const want = data.slice();
    for (let a = 0; a < n; a++) for (let b = 0; b < a; b++) want[a * n + b] = data[b * n + a]!;
    expect(got).toEqual(want);
    gpu!.release(m);
  });
  it('reads the diagonal exactly (n = 300, two workgroups)', async () => {
    const n = 300;
    const data = Float32Array.from({ length: n * n }, (_, i) => Math.sin(i) * 100);
    const m = gpu!.upload(data, n, n);
    const got = await webgpuDiagonal(gpu!, m);
    expect(got).toEqual(Float32Array.from({ length: n }, (_, i) => data[i * n + i]!));
    gpu!.release(m);
  });
});
