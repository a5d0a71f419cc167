import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import { randomArray } from '../testing/fixtures.js';
import { tryCreateWebgpuBackend, type WebgpuBackend, type WebgpuMatrix } from './webgpu-backend.js';
import { sumPartials, SUM_OF_SQUARES_PARTIALS, webgpuSubtract, webgpuSumOfSquares } from './webgpu-reductions.js';

// Element-wise difference and sums of squares on the GPU against float64 sums on the host; argument checks and the
// host-side addition of partials run everywhere. The GPU part needs a WebGPU adapter; skipped elsewhere.
const { backend: gpu, reason } = await tryCreateWebgpuBackend({ minGpuWork: 0, threads: 1 });
if (!gpu) console.warn(`[bitsmith] skipping webgpu reduction kernels: ${reason}`);

describe('webgpu reductions: arguments and partial sums (no GPU needed)', () => {
  // The checks run before the device is touched: a backend without one is enough.
  const none = {} as WebgpuBackend;
  const m = (rows: number, columns: number, dtype: 'float32' | 'float16' = 'float32') => ({ rows, columns, dtype, buffer: {} }) as unknown as WebgpuMatrix;

  it('sumPartials adds each slot of 256 partials in float64', () => {
    const partials = new Float32Array(3 * SUM_OF_SQUARES_PARTIALS);
    for (let i = 0; i < partials.length; i++) partials[i] = (i % SUM_OF_SQUARES_PARTIALS) + 0.5 + Math.floor(i / SUM_OF_SQUARES_PARTIALS) * 1000;
    const sums = sumPartials(partials);
    expect([...sums]).toEqual([0, 1, 2].map((s) => (255 * 256) / 2 + 128 + s * 1000 * 256));
    expect(sumPartials(partials, 1)).toHaveLength(1);
    expect(() => sumPartials(partials, 4)).toThrow(InvalidArgumentError);
  });

  it('refuses mismatched sizes, aliasing, float16, elements outside x and slots outside out', () => {
    const a = m(4, 8);
    expect(() => webgpuSubtract(none, { a, b: m(4, 7) })).toThrow(ShapeMismatchError);
    expect(() => webgpuSubtract(none, { a, b: a })).toThrow(InvalidArgumentError);
    expect(() => webgpuSubtract(none, { a, b: m(8, 4, 'float16') })).toThrow(InvalidArgumentError);
    const out = m(2, SUM_OF_SQUARES_PARTIALS);
    expect(() => webgpuSumOfSquares(none, { x: a, elements: 33, out, slot: 0 })).toThrow(/from 0 to 32/);
    expect(() => webgpuSumOfSquares(none, { x: a, out, slot: 2 })).toThrow(/holds 2 slots/);
    expect(() => webgpuSumOfSquares(none, { x: a, out, slot: -1 })).toThrow(InvalidArgumentError);
    expect(() => webgpuSumOfSquares(none, { x: out, out, slot: 0 })).toThrow(/another matrix/);
  });
});

describe.skipIf(gpu === undefined)('webgpu reductions on the GPU', () => {
  afterAll(() => gpu?.dispose());

  it('subtract: a - b exactly (one float32 rounding, as on the host), 70,001 elements over a 2-D dispatch', async () => {
    const n = 70001;
    const a = Float32Array.from(randomArray(n, 1));
    const b = Float32Array.from(randomArray(n, 2), (v) => 0.3 * v);
    const ga = gpu!.upload(a, 1, n);
    const gb = gpu!.upload(b, 1, n);
    webgpuSubtract(gpu!, { a: ga, b: gb });
    const got = await gpu!.read(ga);
    const want = Float32Array.from(a, (v, i) => v - b[i]!);
    expect(got).toEqual(want);
    gpu!.release(ga);
    gpu!.release(gb);
  });

  it('sum of squares of a prefix and of all elements, added into slots across calls, to 1e-5 of float64', async () => {
    const [rows, columns] = [1500, 333];
    const x = Float32Array.from(randomArray(rows * columns, 3));
    const gx = gpu!.upload(x, rows, columns);
    const out = gpu!.zeros(3, SUM_OF_SQUARES_PARTIALS);
    const prefix = 700 * columns;
    webgpuSumOfSquares(gpu!, { x: gx, elements: prefix, out, slot: 0 });
    webgpuSumOfSquares(gpu!, { x: gx, out, slot: 2 });
    webgpuSumOfSquares(gpu!, { x: gx, out, slot: 2 }); // adds: twice the total
    const sums = sumPartials(await gpu!.read(out));
    let want = 0;
    let total = 0;
    for (let i = 0; i < x.length; i++) {
      const s = x[i]! * x[i]!;
      if (i < prefix) want += s;
      total += s;
    }
    expect(Math.abs(sums[0]! - want) / want).toBeLessThan(1e-5);
    expect(sums[1]).toBe(0);
    expect(Math.abs(sums[2]! - 2 * total) / (2 * total)).toBeLessThan(1e-5);
    gpu!.release(gx);
    gpu!.release(out);
  });
});
