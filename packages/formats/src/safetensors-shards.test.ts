import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quantize, type Matrix, type QuantizedTensor } from '@bitsmith/core';
import { compressedTensorsCheckpoint, encodeCheckpointFiles } from './hf-checkpoint.js';
import { loadCompressedTensors, loadGptq, saveCompressedTensors, saveGptq } from './hf-checkpoint-file.js';
import { planSafetensorsShards, SAFETENSORS_INDEX_FILE, writeSafetensorsStream } from './safetensors-shards.js';
import { decodeSafetensorsFile, encodeSafetensorsFile, floatTensor, int32Tensor, type StoredTensor } from './stored-tensor.js';
import { weight } from './random-weight.test-support.js';


const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bitsmith-shards-'));
  dirs.push(dir);
  return dir;
}

const int4 = { format: { type: 'int' as const, bits: 4, symmetric: false }, granularity: { type: 'group' as const, size: 32 } };
const layerWeights = new Map<string, Matrix>([
  ['model.layers.0.mlp.down_proj', weight(64, 96, 1)],
  ['model.layers.0.mlp.up_proj', weight(96, 64, 2)],
  ['model.layers.0.self_attn.q_proj', weight(64, 64, 3)],
]);
const quantized = new Map<string, QuantizedTensor>([...layerWeights].map(([name, w]) => [name, quantize(w, int4)]));
const floats = new Map<string, Matrix>([
  ...[...layerWeights].map(([name, w]) => [`${name}.weight`, w] as [string, Matrix]),
  ['model.embed_tokens.weight', weight(40, 64, 4)],
  ['lm_head.weight', weight(40, 64, 5)],
  ['model.norm.weight', { dtype: 'float32', shape: [1, 64], data: new Float32Array(64).fill(1) }],
]);
const config = { model_type: 'llama', hidden_size: 64 };

describe('writeSafetensorsStream', () => {
  it('writes the bytes of encodeSafetensorsFile piece by piece, no piece larger than the header or one tensor', async () => {
    const tensors = new Map<string, StoredTensor>([
      ['b', floatTensor(weight(7, 9, 6).data, [7, 9], 'F32')],
      ['a', int32Tensor(Int32Array.of(1, -2, 3), [3])],
      ['c', floatTensor(Float32Array.from({ length: 15 }, (_, i) => i / 4 - 1), [5, 3], 'BF16')],
      ['empty', int32Tensor(new Int32Array(0), [0])],
    ]);
    const metadata = { format: 'pt', producer: 'test' };
    const expected = encodeSafetensorsFile(tensors, metadata);
    const file = new Uint8Array(expected.byteLength);
    const pieces: number[] = [];
    const size = await writeSafetensorsStream({ write: async (bytes, at) => void (file.set(bytes, at), pieces.push(bytes.byteLength)) }, tensors, metadata);
    expect(size).toBe(expected.byteLength);
    expect(Buffer.from(file).equals(Buffer.from(expected))).toBe(true);
    const header = 8 + Number(new DataView(expected.buffer).getBigUint64(0, true));
    const largest = Math.max(...[...tensors.values()].map((t) => t.bytes.byteLength));
    // One piece per non-empty tensor plus the header, none of them the whole file.
    expect(pieces).toHaveLength(4);
    expect(Math.max(...pieces)).toBe(Math.max(header, largest));
    expect(Math.max(...pieces)).toBeLessThan(expected.byteLength);
  });
});

describe('planSafetensorsShards', () => {
  it('one shard is model.safetensors with no index; a small limit splits in name order, a large tensor alone', () => {
    const tensors = new Map<string, StoredTensor>([
      ['a', int32Tensor(new Int32Array(10), [10])], // 40 bytes
      ['b', int32Tensor(new Int32Array(10), [10])],
      ['c', int32Tensor(new Int32Array(40), [40])], // 160 bytes, over the limit: alone
      ['d', int32Tensor(new Int32Array(5), [5])],
    ]);
    const one = planSafetensorsShards(tensors);
    expect(one.shards.map((s) => s.file)).toEqual(['model.safetensors']);
    expect(one.index).toBeUndefined();
    const split = planSafetensorsShards(tensors, 100);
    expect(split.shards.map((s) => [s.file, [...s.tensors.keys()]])).toEqual([
      ['model-00001-of-00003.safetensors', ['a', 'b']],
      ['model-00002-of-00003.safetensors', ['c']],
      ['model-00003-of-00003.safetensors', ['d']],
    ]);
    expect(split.index).toEqual({
      metadata: { total_size: 260 },
      weight_map: { a: 'model-00001-of-00003.safetensors', b: 'model-00001-of-00003.safetensors', c: 'model-00002-of-00003.safetensors', d: 'model-00003-of-00003.safetensors' },
    });
    expect(() => planSafetensorsShards(tensors, 0)).toThrow(/maxShardBytes/);
  });
});

describe('sharded checkpoint folders', () => {
  it('saveCompressedTensors / saveGptq with a small maxShardBytes write shards and an index that load back bit-exactly, equal to the unsharded tensors', async () => {
    const model = { tensors: floats, quantized, config };
    const whole = decodeSafetensorsFile(encodeCheckpointFiles(compressedTensorsCheckpoint(model)).get('model.safetensors')!).tensors;
    const dir = await tempDir();
    const out = join(dir, 'ct');
    const saved = await saveCompressedTensors(out, model, { maxShardBytes: 12_000 });
    const names = (await readdir(out)).sort();
    const shardFiles = names.filter((n) => n.endsWith('.safetensors'));
    expect(shardFiles.length).toBeGreaterThan(2);
    expect(names).toContain(SAFETENSORS_INDEX_FILE);
    expect(names).not.toContain('model.safetensors');
    expect(saved.files.map((f) => f.slice(out.length + 1)).sort()).toEqual(names);
    // Each shard within the limit unless it holds a single tensor; together exactly the unsharded file's tensors.
    const index = JSON.parse(await readFile(join(out, SAFETENSORS_INDEX_FILE), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    const together = new Map<string, StoredTensor>();
    for (const f of shardFiles) {
      const { tensors, metadata } = decodeSafetensorsFile(new Uint8Array(await readFile(join(out, f))), f);
      expect(metadata.format).toBe('pt');
      const bytes = [...tensors.values()].reduce((a, t) => a + t.bytes.byteLength, 0);
      if (tensors.size > 1) expect(bytes).toBeLessThanOrEqual(12_000);
      for (const [name, t] of tensors) {
        expect(index.weight_map[name]).toBe(f);
        together.set(name, t);
      }
    }
    expect([...together.keys()].sort()).toEqual([...whole.keys()].sort());
    for (const [name, t] of whole) {
      expect(together.get(name)!.dtype).toBe(t.dtype);
      expect(together.get(name)!.shape).toEqual(t.shape);
      expect(Buffer.from(together.get(name)!.bytes).equals(Buffer.from(t.bytes)), name).toBe(true);
    }
    expect(index.metadata.total_size).toBe([...whole.values()].reduce((a, t) => a + t.bytes.byteLength, 0));
    // The in-memory files are the same bytes as those on disk.
    const memory = encodeCheckpointFiles(compressedTensorsCheckpoint(model), { content: 'compressed-tensors pack-quantized', maxShardBytes: 12_000 });
    expect([...memory.keys()].sort()).toEqual(names);
    for (const [name, bytes] of memory) expect(Buffer.from(bytes).equals(await readFile(join(out, name))), name).toBe(true);
    // The readers take the shards: codes, scales and float tensors exact.
    const loaded = await loadCompressedTensors(out);
    for (const [name, q] of quantized) {
      expect(Array.from(loaded.quantized.get(name)!.codes)).toEqual(Array.from(q.codes));
      expect(Array.from(loaded.quantized.get(name)!.scales)).toEqual(Array.from(q.scales));
      expect(Array.from(loaded.quantized.get(name)!.zeroPoints!)).toEqual(Array.from(q.zeroPoints!));
    }
    for (const [name, m] of floats) if (!layerWeights.has(name.slice(0, -'.weight'.length))) expect(Array.from(loaded.tensors.get(name)!.data)).toEqual(Array.from(m.data));
    const gptqOut = join(dir, 'gptq');
    await saveGptq(gptqOut, model, { checkpointFormat: 'gptq', maxShardBytes: 12_000 });
    const g = await loadGptq(gptqOut);
    for (const [name, q] of quantized) expect(Array.from(g.quantized.get(name)!.codes)).toEqual(Array.from(q.codes));
  });

  it('a shard that holds a tensor the index places elsewhere is refused, naming the file', async () => {
    const dir = await tempDir();
    const out = join(dir, 'ct');
    await saveCompressedTensors(out, { tensors: floats, quantized, config }, { maxShardBytes: 12_000 });
    const indexPath = join(out, SAFETENSORS_INDEX_FILE);
    const index = JSON.parse(await readFile(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    // Move one tensor of a shard that holds several to another shard's entry: that shard is still read, and refused.
    const files = Object.values(index.weight_map);
    const crowded = files.find((f) => files.filter((g) => g === f).length > 1)!;
    const moved = Object.keys(index.weight_map).find((n) => index.weight_map[n] === crowded)!;
    index.weight_map[moved] = files.find((f) => f !== crowded)!;
    const { writeFile } = await import('node:fs/promises');
    await writeFile(indexPath, JSON.stringify(index));
    await expect(loadCompressedTensors(out)).rejects.toThrow(new RegExp(`${crowded}: holds tensor "${moved.replaceAll('.', '\\.')}", which the index places in model-000`));
  });
});
