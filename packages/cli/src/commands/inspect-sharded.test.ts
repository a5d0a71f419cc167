import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quantize, type Matrix } from '@bitsmith/core';
import { saveCompressedTensors } from '@bitsmith/formats';
import { inspectModel } from './inspect.js';

// `bitsmith inspect` on a checkpoint folder written in shards (model.safetensors.index.json) reports what it reports on
// the same checkpoint in one file.

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function weight(rows: number, columns: number, seed: number): Matrix {
  return { dtype: 'float32', shape: [rows, columns], data: Float32Array.from({ length: rows * columns }, (_, i) => Math.sin(seed * 7.3 + i * 0.37)) };
}

describe('inspect on a sharded checkpoint folder', () => {
  it('lists the same tensors, scheme and bits as the single-file folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bitsmith-inspect-shards-'));
    dirs.push(dir);
    const layers = ['model.layers.0.mlp.down_proj', 'model.layers.0.mlp.up_proj', 'model.layers.0.self_attn.q_proj'];
    const tensors = new Map<string, Matrix>([
      ['model.embed_tokens.weight', weight(40, 64, 1)],
      ['lm_head.weight', weight(40, 64, 2)],
      ...layers.map((name, i) => [`${name}.weight`, weight(64, 64, 3 + i)] as [string, Matrix]),
    ]);
    const int4 = { format: { type: 'int' as const, bits: 4, symmetric: true }, granularity: { type: 'group' as const, size: 32 } };
    const quantized = new Map(layers.map((name) => [name, quantize(tensors.get(`${name}.weight`)!, int4)]));
    const model = { tensors, quantized, config: { model_type: 'llama', hidden_size: 64 } };
    await saveCompressedTensors(join(dir, 'one'), model);
    await saveCompressedTensors(join(dir, 'shards'), model, { maxShardBytes: 12_000 });
    const one = await inspectModel(join(dir, 'one'));
    const sharded = await inspectModel(join(dir, 'shards'));
    expect(sharded.format).toBe('compressed-tensors');
    expect(sharded.path).toMatch(/model\.safetensors\.index\.json$/);
    expect(sharded.quantized.map((q) => q.name).sort()).toEqual(layers);
    expect({ ...sharded, path: '' }).toEqual({ ...one, path: '' });
  });
});
