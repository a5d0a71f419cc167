import { dequantize, parseFormat, quantize, type StoredForm } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { architectureFixtureDir, readArchitectureReference } from './architecture-fixtures.test-support.js';
import { isWeightResident, lazyLinearLayer, releaseLinearWeight } from './lazy-weight.js';
import { loadLlamaGraph } from './load-llama-node.js';
import { llamaQuantizableModel } from './quantizable-model.js';

const backend = createJsBackend();
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe('lazily held weights', () => {
  it('a lazy layer decodes on first read, keeps the copy, drops it on release and forgets its source once assigned', () => {
    let decoded = 0;
    const layer = lazyLinearLayer('l', 'up_proj', [2, 3], () => (decoded++, Float32Array.of(1, 2, 3, 4, 5, 6)));
    expect(isWeightResident(layer)).toBe(false);
    expect(Array.from(layer.weight.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(layer.weight.shape).toEqual([2, 3]);
    expect(decoded).toBe(1);
    expect(releaseLinearWeight(layer)).toBe(true);
    expect(isWeightResident(layer)).toBe(false);
    expect(layer.weight.data[5]).toBe(6);
    expect(decoded).toBe(2);
    layer.weight = { dtype: 'float32', shape: [2, 3], data: new Float32Array(6) };
    expect(releaseLinearWeight(layer)).toBe(false); // nothing could produce the assigned weight again
    expect(layer.weight.data.every((v) => v === 0)).toBe(true);
  });

  it('a bf16 checkpoint loaded with keepStoredDtype computes bit for bit what the float32 load computes, and a finished block releases its weights', async () => {
    const dir = architectureFixtureDir('qwen2');
    const { prompts } = readArchitectureReference('qwen2');
    const eager = await loadLlamaGraph(dir, { backend });
    const lazy = await loadLlamaGraph(dir, { backend, keepStoredDtype: true });
    const layers = lazy.blocks.flatMap((b) => b.linears);
    expect(layers.every((l) => !isWeightResident(l))).toBe(true);
    // tensors() writes them without bringing them into memory.
    const written = lazy.tensors();
    for (const [name, t] of eager.tensors()) expect(bits(written.get(name)!.data), name).toEqual(bits(t.data));
    expect(layers.every((l) => !isWeightResident(l))).toBe(true);
    expect(bits((await lazy.forward([prompts[0]!])).data)).toEqual(bits((await eager.forward([prompts[0]!])).data));
    expect(layers.every((l) => isWeightResident(l))).toBe(true);

    // Block 0 quantized (RTN int4 g16 with its stored forms), untouched layers of block 1: both release.
    const model = llamaQuantizableModel(lazy);
    const stored = new Map<string, StoredForm>();
    for (const l of lazy.blocks[0]!.linears) {
      const tensor = quantize(l.weight, { format: parseFormat('int4'), granularity: { type: 'group', size: 16 } });
      l.weight = dequantize(tensor);
      stored.set(l.name, { kind: 'grid', tensor });
    }
    // One layer's weight one ulp off its stored form in its last element: not the same bits, so it stays resident.
    const off = lazy.blocks[0]!.linears.at(-1)!;
    const nudged = off.weight.data.slice();
    new Uint32Array(nudged.buffer)[nudged.length - 1]! ^= 1;
    off.weight = { ...off.weight, data: nudged };
    const quantized = new Map(lazy.blocks[0]!.linears.map((l) => [l.name, l.weight.data.slice()]));
    model.releaseBlock!(0, stored);
    model.releaseBlock!(1, new Map());
    expect(isWeightResident(off)).toBe(true);
    expect(layers.filter((l) => l !== off).every((l) => !isWeightResident(l))).toBe(true);
    for (const l of lazy.blocks[0]!.linears) expect(bits(l.weight.data), l.name).toEqual(bits(quantized.get(l.name)!));
    for (const l of lazy.blocks[1]!.linears) expect(bits(l.weight.data), l.name).toEqual(bits(eager.linear(l.name).weight.data));
  });

  it('a released block keeps its grid codes packed only: the stored form\'s unpacked codes can be collected', async () => {
    // A collector to call (the flag takes effect for functions created afterwards).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const lazy = await loadLlamaGraph(architectureFixtureDir('qwen2'), { backend, keepStoredDtype: true });
    const model = llamaQuantizableModel(lazy);
    const codes: WeakRef<object>[] = [];
    const expected = new Map<string, Float32Array>();
    const release = (): void => {
      const stored = new Map<string, StoredForm>();
      for (const l of lazy.blocks[0]!.linears) {
        const tensor = quantize(l.weight, { format: parseFormat('int4'), granularity: { type: 'group', size: 16 } });
        l.weight = dequantize(tensor);
        expected.set(l.name, l.weight.data.slice());
        codes.push(new WeakRef(tensor.codes));
        stored.set(l.name, { kind: 'grid', tensor });
      }
      model.releaseBlock!(0, stored);
    };
    release();
    expect(lazy.blocks[0]!.linears.every((l) => !isWeightResident(l))).toBe(true);
    // WeakRef targets stay alive until the current job ends: collect on a later turn.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(codes.length).toBeGreaterThan(0);
    expect(codes.filter((c) => c.deref() !== undefined).length).toBe(0);
    // The weights are still produced exactly, from the packed codes.
    for (const l of lazy.blocks[0]!.linears) expect(bits(l.weight.data), l.name).toEqual(bits(expected.get(l.name)!));
  });
});
