import { describe, expect, it } from 'vitest';
import { ortOutputReleaser } from './ort-output-release.js';
import { buildGemmModel, ONNX_FLOAT, type Onnx } from './ort-graph.js';
import { seededRandom } from './backend-oracle.js';

interface OrtLike {
  InferenceSession: { create(model: Uint8Array, options: object): Promise<{ run(feeds: object, fetches: object): Promise<Record<string, { data: unknown }>>; release(): Promise<void> }> };
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => { data: unknown };
}

async function loadOrt(): Promise<{ ort: OrtLike; onnx: Onnx } | undefined> {
  try {
    const specifier = 'onnxruntime-node';
    const module = (await import(specifier)) as Record<string, unknown>;
    const ort = (module.InferenceSession ? module : module.default) as OrtLike;
    const proto = (await import('onnx-proto')) as unknown as { onnx?: Onnx; default?: { onnx?: Onnx } };
    const onnx = proto.onnx ?? proto.default?.onnx;
    return onnx ? { ort, onnx } : undefined;
  } catch {
    return undefined;
  }
}

const runtime = await loadOrt();

describe('ortOutputReleaser', () => {
  it('detaches an output array that is not one of the fetches, and counts it', async () => {
    const release = await ortOutputReleaser();
    const copy = new Float32Array(1024).fill(3);
    const mine = new Float32Array(1024);
    expect(release({ Y: { data: copy } }, { Y: { data: mine } })).toBe(1);
    expect(copy.buffer.byteLength).toBe(0);
    expect(copy.length).toBe(0);
    expect(mine.length).toBe(1024);
  });

  it('never touches an array on a buffer of the fetches (a binding that returns the caller array)', async () => {
    const release = await ortOutputReleaser();
    const mine = new Float32Array(64).fill(2);
    const view = mine.subarray(8, 16);
    expect(release({ Y: { data: view }, Z: { data: mine } }, { Y: { data: mine } })).toBe(0);
    expect(mine.length).toBe(64);
    expect(mine[10]).toBe(2);
  });

  it('leaves shared and WebAssembly memory and non-array data alone', async () => {
    const release = await ortOutputReleaser();
    const shared = new Float32Array(new SharedArrayBuffer(64));
    const memory = new (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly.Memory({ initial: 1 });
    const inWasm = new Float32Array(memory.buffer, 0, 16);
    expect(release({ A: { data: shared }, B: { data: inWasm }, C: { data: 'text' }, D: { data: [1, 2] } }, {})).toBe(0);
    expect(shared.length).toBe(16);
    expect(inWasm.length).toBe(16);
    expect(memory.buffer.byteLength).toBe(65536);
  });

  it.skipIf(!runtime)("frees onnxruntime-node's copy of a preallocated output, leaving the caller's array with the same bits", async () => {
    const { ort, onnx } = runtime!;
    const session = await ort.InferenceSession.create(buildGemmModel(onnx, { elemType: ONNX_FLOAT, transA: false, transB: true, alpha: 1, beta: 0 }), {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      logSeverityLevel: 3,
    });
    try {
      const release = await ortOutputReleaser();
      const random = seededRandom(7);
      const [m, n, k] = [96, 80, 64];
      const a = Float32Array.from({ length: m * k }, () => random() - 0.5);
      const b = Float32Array.from({ length: n * k }, () => random() - 0.5);
      const plain = new Float32Array(m * n);
      const released = new Float32Array(m * n);
      const feeds = { A: new ort.Tensor('float32', a, [m, k]), B: new ort.Tensor('float32', b, [n, k]) };
      const plainResults = await session.run(feeds, { Y: new ort.Tensor('float32', plain, [m, n]) });
      const fetches = { Y: new ort.Tensor('float32', released, [m, n]) };
      const results = await session.run(feeds, fetches);
      const copy = results.Y!.data as Float32Array;
      const isCopy = copy.buffer !== released.buffer;
      expect(release(results, fetches)).toBe(isCopy ? 1 : 0);
      if (isCopy) expect(copy.length).toBe(0);
      // The caller's array keeps the product, bit for bit the same as a run whose copy was not freed.
      expect(Buffer.from(released.buffer).equals(Buffer.from(plain.buffer))).toBe(true);
      expect((plainResults.Y!.data as Float32Array).length).toBe(m * n);
      let dot = 0;
      for (let t = 0; t < k; t++) dot += a[t]! * b[t]!;
      expect(released[0]).toBeCloseTo(dot, 5);
    } finally {
      await session.release();
    }
  });
});
