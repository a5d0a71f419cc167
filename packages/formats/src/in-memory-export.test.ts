import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quantize, type QuantizedTensor } from '@bitsmith/core';
import { compressedTensorsCheckpoint, encodeCheckpointFiles, gptqCheckpoint, readCompressedTensorsCheckpoint, readGptqCheckpoint } from './hf-checkpoint.js';
import { saveCompressedTensors, saveGptq } from './hf-checkpoint-file.js';
import { decodeSafetensorsFile } from './stored-tensor.js';
import { weight } from './random-weight.test-support.js';

// The default (browser) entry builds checkpoint folders in memory; the node entry writes the same files. Both must
// agree byte for byte, and the in-memory files must decode back to the exact codes and scales.


const quantized = new Map<string, QuantizedTensor>([
  ['model.layers.0.mlp.up_proj', quantize(weight(32, 64, 1), { format: { type: 'int', bits: 4, symmetric: true }, granularity: { type: 'group', size: 32 } })],
  ['model.layers.0.self_attn.q_proj', quantize(weight(64, 64, 2), { format: { type: 'int', bits: 4, symmetric: true }, granularity: { type: 'group', size: 32 } })],
]);
const tensors = new Map([
  ['model.embed_tokens.weight', weight(10, 64, 3)],
  ['model.layers.0.mlp.up_proj.weight', weight(32, 64, 4)],
  ['model.layers.0.self_attn.q_proj.weight', weight(64, 64, 5)],
]);
const config = { model_type: 'llama', hidden_size: 64 };
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function writtenFiles(write: (dir: string) => Promise<unknown>): Promise<Map<string, Uint8Array>> {
  const dir = await mkdtemp(join(tmpdir(), 'bitsmith-in-memory-'));
  dirs.push(dir);
  await write(dir);
  return new Map(await Promise.all((await readdir(dir)).map(async (name) => [name, new Uint8Array(await readFile(join(dir, name)))] as const)));
}

function expectSameFiles(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [name, bytes] of a) expect(Buffer.from(bytes).equals(Buffer.from(b.get(name)!)), name).toBe(true);
}

describe('checkpoint folders in memory (browser entry) and on disk (node entry)', () => {
  it('compressed-tensors: the same files, and the in-memory safetensors decodes to the exact codes and scales', async () => {
    const model = { tensors, quantized, config };
    const memory = encodeCheckpointFiles(compressedTensorsCheckpoint(model), { content: 'compressed-tensors pack-quantized' });
    expectSameFiles(memory, await writtenFiles((dir) => saveCompressedTensors(dir, model)));
    const parsed = JSON.parse(new TextDecoder().decode(memory.get('config.json')!)) as Record<string, unknown>;
    const back = readCompressedTensorsCheckpoint(decodeSafetensorsFile(memory.get('model.safetensors')!).tensors, parsed.quantization_config as Record<string, unknown>, parsed);
    for (const [name, q] of quantized) {
      expect(Array.from(back.quantized.get(name)!.codes)).toEqual(Array.from(q.codes));
      expect(Array.from(back.quantized.get(name)!.scales)).toEqual(Array.from(q.scales));
    }
    expect(Array.from(back.tensors.get('model.embed_tokens.weight')!.data)).toEqual(Array.from(tensors.get('model.embed_tokens.weight')!.data, (v) => Math.fround(v)));
  });

  it('GPTQ v2: the same three files (quantize_config.json included), decoding to the exact codes', async () => {
    const model = { tensors, quantized, config };
    const memory = encodeCheckpointFiles(gptqCheckpoint(model, { checkpointFormat: 'gptq_v2' }), { content: 'GPTQ gptq_v2' });
    expectSameFiles(memory, await writtenFiles((dir) => saveGptq(dir, model, { checkpointFormat: 'gptq_v2' })));
    expect(memory.has('quantize_config.json')).toBe(true);
    const qc = JSON.parse(new TextDecoder().decode(memory.get('quantize_config.json')!)) as Record<string, unknown>;
    const back = readGptqCheckpoint(decodeSafetensorsFile(memory.get('model.safetensors')!).tensors, qc);
    for (const [name, q] of quantized) expect(Array.from(back.quantized.get(name)!.codes)).toEqual(Array.from(q.codes));
  });
});
