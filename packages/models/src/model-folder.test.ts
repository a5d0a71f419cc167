import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createJsBackend } from '@bitsmith/linalg';
import { matrix } from '@bitsmith/core';
import { loadLlamaModel as loadFromDirectory } from './load-llama-node.js';
import { loadLlamaModel, loadSafetensorsWeights, type LlamaModel } from './load-llama.js';
import { modelFolderFromFiles, modelFolderFromUrl } from './model-folder.js';
import { readSafetensorsBlob, readSafetensorsBytes } from './safetensors-reader.js';
import { encodeSafetensors } from './safetensors-writer.js';
import { SKIP_SHARED, TINYSTORIES_DIR } from './shared-data.test-support.js';

/** The model folder's files as in-memory bytes, by name. */
function folderBytes(): Map<string, Uint8Array> {
  return new Map(readdirSync(TINYSTORIES_DIR).map((name) => [name, new Uint8Array(readFileSync(join(TINYSTORIES_DIR, name)))]));
}

/** Splits a safetensors file into two shards plus `model.safetensors.index.json`, as transformers writes them. */
function shard(files: Map<string, Uint8Array>): Map<string, Uint8Array> {
  const file = readSafetensorsBytes(files.get('model.safetensors')!);
  const names = file.names;
  const half = Math.ceil(names.length / 2);
  const parts = [names.slice(0, half), names.slice(half)];
  const out = new Map(files);
  out.delete('model.safetensors');
  const weightMap: Record<string, string> = {};
  parts.forEach((part, i) => {
    const shardName = `model-0000${i + 1}-of-00002.safetensors`;
    const raws = new Map(part.map((n) => [n, { dtype: file.entry(n).dtype, shape: file.entry(n).shape, bytes: readRaw(files.get('model.safetensors')!, file, n) }]));
    out.set(shardName, encodeSafetensors(raws));
    for (const n of part) weightMap[n] = shardName;
  });
  out.set('model.safetensors.index.json', new TextEncoder().encode(JSON.stringify({ metadata: {}, weight_map: weightMap })));
  return out;
}

function readRaw(bytes: Uint8Array, file: ReturnType<typeof readSafetensorsBytes>, name: string): Uint8Array {
  const [begin, end] = file.entry(name).dataOffsets;
  return bytes.slice(file.header.dataStart + begin, file.header.dataStart + end);
}

async function logitsOf(model: LlamaModel, ids: number[]): Promise<Float32Array> {
  return (await model.graph.forward([ids])).data as Float32Array;
}

describe('modelFolderFromFiles', () => {
  it('names files by base name, reads bytes, text and Blobs, and says which file is missing', async () => {
    const folder = modelFolderFromFiles({ 'config.json': '{"a":1}', 'dir/b.bin': new Uint8Array([1, 2, 3]).buffer, 'c.bin': new Blob([new Uint8Array([4, 5])]) }, 'dropped');
    expect(await folder.has('config.json')).toBe(true);
    expect(await folder.has('b.bin')).toBe(true);
    expect(await folder.has('nope.json')).toBe(false);
    expect(new TextDecoder().decode(await folder.readBytes('config.json'))).toBe('{"a":1}');
    expect([...(await folder.readBytes('b.bin'))]).toEqual([1, 2, 3]);
    expect([...(await folder.readBytes('c.bin'))]).toEqual([4, 5]);
    await expect(folder.readBytes('nope.json')).rejects.toThrow('dropped/nope.json: file not found');
  });

  it('reads a safetensors Blob tensor by tensor, bit-exactly, and refuses a truncated one naming it', async () => {
    const w = matrix(new Float32Array([1.5, -2, 3.25, 4e-8, 5, 6]), 2, 3);
    const bytes = encodeSafetensors({ w, b: { ...matrix(new Float32Array([7, 8]), 1, 2), storeAs: 'BF16' } });
    const file = await readSafetensorsBlob(new Blob([bytes]), 'x.safetensors');
    expect(file.names).toEqual(['b', 'w']);
    expect([...(await file.readTensor('w')).data]).toEqual([...w.data]);
    expect([...(await file.readTensor('b')).data]).toEqual([7, 8]);
    await expect(readSafetensorsBlob(new Blob([bytes.subarray(0, bytes.length - 4)]), 'cut.safetensors')).rejects.toThrow(/cut\.safetensors/);
  });
});

describe('modelFolderFromUrl', () => {
  it('refuses a relative base outside a page, naming it', () => {
    expect(() => modelFolderFromUrl('models/tiny')).toThrow('models/tiny/: not a URL');
  });
});

describe.skipIf(SKIP_SHARED)('tinystories-656k from files, shards and URLs equals the directory load', () => {
  const prompt = [1, 80, 147, 201, 282, 57];
  let fromDirectory: Float32Array;
  let reference: { promptIds: number[]; logitsAtPromptPositions: number[][] };
  beforeAll(async () => {
    fromDirectory = await logitsOf(await loadFromDirectory(TINYSTORIES_DIR, { backend: createJsBackend() }), prompt);
    reference = JSON.parse(readFileSync(join(TINYSTORIES_DIR, 'reference.json'), 'utf8'));
  });

  it('the directory load matches PyTorch (reference.json) on the prompt', () => {
    const ids = reference.promptIds;
    expect(ids).toEqual(prompt);
    const vocab = reference.logitsAtPromptPositions[0]!.length;
    let maxDiff = 0;
    reference.logitsAtPromptPositions.forEach((row, p) => row.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(fromDirectory[p * vocab + j]! - v)))));
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it('loads the same model from dropped File objects (read lazily through Blob.slice)', async () => {
    const files = [...folderBytes()].map(([name, bytes]) => new File([bytes], name));
    const model = await loadLlamaModel(modelFolderFromFiles(files, 'dropped'), { backend: createJsBackend() });
    expect(model.dir).toBe('dropped');
    expect(model.tokenizer.encode('Once upon a time', { bos: true })).toEqual(prompt);
    expect(await logitsOf(model, prompt)).toEqual(fromDirectory);
  });

  it('loads sharded weights (two shards + model.safetensors.index.json) to the same tensors', async () => {
    const sharded = shard(folderBytes());
    const folder = modelFolderFromFiles(sharded);
    const weights = await loadSafetensorsWeights(folder);
    const whole = await loadSafetensorsWeights(modelFolderFromFiles(folderBytes()));
    expect([...weights.keys()].sort()).toEqual([...whole.keys()].sort());
    const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    for (const [name, t] of whole) expect(bytes(weights.get(name)!.data).equals(bytes(t.data)), name).toBe(true);
    const model = await loadLlamaModel(folder, { backend: createJsBackend() });
    expect(await logitsOf(model, prompt)).toEqual(fromDirectory);
  });

  it('loads from a URL through fetch, each file fetched once, with 404 as file not found', async () => {
    const files = folderBytes();
    const requested: string[] = [];
    const fakeFetch = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = String(input);
      requested.push(`${init?.method ?? 'GET'} ${url}`);
      const bytes = files.get(url.replace('https://models.example/tiny/', ''));
      return bytes ? new Response(init?.method === 'HEAD' ? null : bytes, { status: 200 }) : new Response('not found', { status: 404, statusText: 'Not Found' });
    }) as typeof fetch;
    const folder = modelFolderFromUrl('https://models.example/tiny', { fetch: fakeFetch });
    const model = await loadLlamaModel(folder, { backend: createJsBackend() });
    expect(await logitsOf(model, prompt)).toEqual(fromDirectory);
    expect(requested.filter((r) => r === 'GET https://models.example/tiny/model.safetensors')).toHaveLength(1);
    await expect(folder.readBytes('missing.json')).rejects.toThrow('https://models.example/tiny/missing.json: file not found');
  });
});
