// Block weights kept on disk (loadLlamaGraph's keepStoredDtype with weightsOnDisk, the default): the loaded model holds
// no block weight, reads each from its file when decoded, computes bit for bit what the in-memory load computes, and
// refuses a file that changed since it was loaded.
import { cpSync, mkdtempSync, renameSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJsBackend } from '@bitsmith/linalg';
import { afterAll, describe, expect, it } from 'vitest';
import { architectureFixtureDir, readArchitectureReference } from './architecture-fixtures.test-support.js';
import { isWeightResident } from './lazy-weight.js';
import { loadLlamaGraph } from './load-llama-node.js';
import { ModelFileError } from './model-file-error.js';
import { openSafetensors } from './safetensors-open.js';

const backend = createJsBackend();
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-weights-on-disk-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A private copy of a bf16 fixture, which the test may move or touch. */
function copyFixture(name: string, into: string): string {
  const dir = join(tmp, into);
  cpSync(architectureFixtureDir(name), dir, { recursive: true });
  return dir;
}

describe('block weights kept on disk', () => {
  it('reads each block weight from the file when used: same logits as the in-memory load, and a moved file fails the first decode', async () => {
    const dir = copyFixture('llama3', 'moved');
    const { prompts } = readArchitectureReference('llama3');
    const inMemory = await loadLlamaGraph(dir, { backend, keepStoredDtype: true, weightsOnDisk: false });
    const onDisk = await loadLlamaGraph(dir, { backend, keepStoredDtype: true });
    const reference = await loadLlamaGraph(dir, { backend });
    // The embedding (held in memory) still works once the file is gone; a block weight does not.
    renameSync(join(dir, 'model.safetensors'), join(dir, 'gone.safetensors'));
    expect(() => onDisk.blocks[0]!.linears[0]!.weight.data).toThrow(ModelFileError);
    expect(() => onDisk.blocks[0]!.linears[0]!.weight.data).toThrow(/cannot open again/);
    const logitsInMemory = (await inMemory.forward([prompts[0]!])).data;
    expect(bits(logitsInMemory)).toEqual(bits((await reference.forward([prompts[0]!])).data));
    renameSync(join(dir, 'gone.safetensors'), join(dir, 'model.safetensors'));
    const layers = onDisk.blocks.flatMap((b) => b.linears);
    expect(layers.every((l) => !isWeightResident(l))).toBe(true);
    expect(bits((await onDisk.forward([prompts[0]!])).data)).toEqual(bits(logitsInMemory));
    expect(layers.every((l) => isWeightResident(l))).toBe(true);
  });

  it("Phi-3's fused qkv_proj and gate_up_proj stay on disk too: each part decodes its own rows, same logits bit for bit, written back fused", async () => {
    const dir = copyFixture('phi3', 'fused');
    const { prompts } = readArchitectureReference('phi3');
    const onDisk = await loadLlamaGraph(dir, { backend, keepStoredDtype: true });
    const eager = await loadLlamaGraph(dir, { backend });
    const layers = onDisk.blocks.flatMap((b) => b.linears);
    expect(layers.map((l) => l.name.split('.').pop())).toContain('q_proj');
    expect(layers.every((l) => !isWeightResident(l))).toBe(true);
    // Each part equals the eager load's split of the fused tensor.
    for (const [b, block] of onDisk.blocks.entries()) {
      for (const [i, layer] of block.linears.entries()) expect(bits(layer.weight.data), layer.name).toEqual(bits(eager.blocks[b]!.linears[i]!.weight.data));
    }
    const fresh = await loadLlamaGraph(dir, { backend, keepStoredDtype: true });
    const written = fresh.tensors();
    const fusedName = 'model.layers.0.self_attn.qkv_proj.weight';
    expect(bits(written.get(fusedName)!.data)).toEqual(bits(eager.tensors().get(fusedName)!.data));
    // Writing the fused tensors decoded the parts without keeping them in float32.
    expect(fresh.blocks.flatMap((b) => b.linears).every((l) => !isWeightResident(l))).toBe(true);
    expect(bits((await onDisk.forward([prompts[0]!])).data)).toEqual(bits((await eager.forward([prompts[0]!])).data));
  });

  it("a mixture of experts' expert and shared-expert projections stay on disk until used (Qwen2-MoE)", async () => {
    const dir = copyFixture('qwen2-moe', 'experts');
    const graph = await loadLlamaGraph(dir, { backend, keepStoredDtype: true });
    const experts = graph.blocks.flatMap((b) => (b.moe ? b.moe.experts.flatMap((e) => [e.gateProj, e.upProj, e.downProj]) : []));
    expect(experts.length).toBeGreaterThan(0);
    expect([...graph.blocks.flatMap((b) => b.linears)].every((l) => !isWeightResident(l))).toBe(true);
    const { prompts } = readArchitectureReference('qwen2-moe');
    const eager = await loadLlamaGraph(dir, { backend });
    expect(bits((await graph.forward([prompts[0]!])).data)).toEqual(bits((await eager.forward([prompts[0]!])).data));
  });

  it('refuses a file changed on disk since it was loaded', async () => {
    const dir = copyFixture('qwen2', 'touched');
    const graph = await loadLlamaGraph(dir, { backend, keepStoredDtype: true });
    const file = join(dir, 'model.safetensors');
    utimesSync(file, new Date(), new Date(Date.now() + 60_000));
    expect(() => graph.blocks[1]!.linears[2]!.weight.data).toThrow(/changed on disk since the model was loaded/);
  });

  it('a detached reader reads a tensor after close, and refuses ranges outside the tensor', async () => {
    const file = await openSafetensors(join(architectureFixtureDir('qwen2'), 'model.safetensors'));
    const name = file.names.find((n) => n.endsWith('down_proj.weight'))!;
    const raw = await file.readRaw(name);
    const read = file.detachedReader(name)!;
    await file.close();
    expect(Array.from(read(0, raw.bytes.byteLength))).toEqual(Array.from(raw.bytes));
    expect(Array.from(read(6, 10))).toEqual(Array.from(raw.bytes.subarray(6, 10)));
    expect(() => read(0, raw.bytes.byteLength + 2)).toThrow(ModelFileError);
  });
});
