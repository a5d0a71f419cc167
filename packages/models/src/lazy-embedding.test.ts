import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { heldMatrixAccess, isHeldOnly, viewFingerprint } from '@bitsmith/core';
import { createJsBackend, defaultBackend } from '@bitsmith/linalg';
import { describe, expect, it } from 'vitest';
import { architectureFixtureDir, readArchitectureReference } from './architecture-fixtures.test-support.js';
import { loadLlamaGraph } from './load-llama-node.js';
import { llamaQuantizableModel } from './quantizable-model.js';
import { SHARED_DIR } from './shared-data.test-support.js';

const backend = createJsBackend();
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe('embedding and LM head held in their stored dtype (keepStoredDtype)', () => {
  // qwen2, smollm2, gemma2: tied (gemma2 scales the embedding and soft-caps the logits); llama3, mistral: untied.
  for (const name of ['qwen2', 'smollm2', 'gemma2', 'llama3', 'mistral']) {
    it(`${name}: logits bit for bit those of the float32 load, with neither table decoded; tying by identity`, async () => {
      const dir = architectureFixtureDir(name);
      const { prompts } = readArchitectureReference(name);
      const eager = await loadLlamaGraph(dir, { backend });
      const lazy = await loadLlamaGraph(dir, { backend, keepStoredDtype: true });
      expect(isHeldOnly(lazy.embedTokens)).toBe(true);
      expect(isHeldOnly(lazy.lmHead.weight)).toBe(true);
      expect(heldMatrixAccess(lazy.embedTokens)!.streamed).toBe(true);
      expect(lazy.tiedEmbeddings).toBe(eager.tiedEmbeddings);
      expect(lazy.lmHead.weight === lazy.embedTokens).toBe(eager.tiedEmbeddings);
      // A model-level fingerprint (the runner's, before a model-level step) equals the float32 model's and decodes nothing.
      const model = llamaQuantizableModel(lazy);
      expect(viewFingerprint(model).hashes).toEqual(viewFingerprint(llamaQuantizableModel(eager)).hashes);
      expect(isHeldOnly(lazy.embedTokens) && isHeldOnly(lazy.lmHead.weight)).toBe(true);
      expect(lazy.blocks.flatMap((b) => b.linears).every((l) => isHeldOnly(l.weight))).toBe(true);
      const sequences = prompts.slice(0, 2);
      expect(bits((await lazy.forward(sequences)).data)).toEqual(bits((await eager.forward(sequences)).data));
      expect(bits((await lazy.forward(sequences, { lastTokenOnly: true })).data)).toEqual(bits((await eager.forward(sequences, { lastTokenOnly: true })).data));
      // Writing the model out decodes each table once without keeping it.
      const written = lazy.tensors();
      expect([...written.keys()]).toEqual([...eager.tensors().keys()]);
      for (const [key, t] of eager.tensors()) expect(bits(written.get(key)!.data), key).toEqual(bits(t.data));
      expect(isHeldOnly(lazy.embedTokens)).toBe(true);
      if (eager.tiedEmbeddings) {
        // Untying gives the head its own held copy (nothing decoded); the logits do not change.
        lazy.untieEmbeddings();
        expect(lazy.tiedEmbeddings).toBe(false);
        expect(isHeldOnly(lazy.lmHead.weight) && isHeldOnly(lazy.embedTokens)).toBe(true);
        expect(bits((await lazy.forward(sequences)).data)).toEqual(bits((await eager.forward(sequences)).data));
        // Changing the head no longer changes the embedding.
        lazy.lmHead.weight = { dtype: 'float32', shape: [...eager.lmHead.weight.shape] as [number, number], data: new Float32Array(eager.lmHead.weight.data.length) };
        expect(bits((await lazy.forward(sequences)).data).every((w) => w === 0 || w === 0x80000000)).toBe(true);
        expect(isHeldOnly(lazy.embedTokens)).toBe(true);
      } else {
        expect(lazy.lmHead.weight).not.toBe(lazy.embedTokens);
      }
      // Reading the tables' data makes them plain float32 matrices (tied ones one array), computing the same.
      const data = lazy.embedTokens.data;
      expect(lazy.embedTokens.data).toBe(data);
      expect(bits(data)).toEqual(bits(eager.embedTokens.data));
    });
  }

  const docs = join(SHARED_DIR, 'models', 'llama-docs-29m');
  it.skipIf(!existsSync(join(docs, 'config.json')))('llama-docs-29m (bf16, tied): embedding, first blocks and head bit for bit those of the float32 load', async () => {
    const b = await defaultBackend();
    const eager = await loadLlamaGraph(docs, { backend: b });
    const lazy = await loadLlamaGraph(docs, { backend: b, keepStoredDtype: true });
    expect(lazy.tiedEmbeddings && eager.tiedEmbeddings).toBe(true);
    const sequences = [[1, 400, 17, 8000, 5, 77, 3000, 12], [1, 2, 3, 4, 5]];
    let he = eager.embed(sequences);
    let hl = lazy.embed(sequences);
    expect(bits(hl.states.data)).toEqual(bits(he.states.data));
    for (let i = 0; i < 2; i++) {
      he = await eager.runBlock(i, he);
      hl = await lazy.runBlock(i, hl);
      expect(bits(hl.states.data)).toEqual(bits(he.states.data));
    }
    expect(bits((await lazy.head(hl)).data)).toEqual(bits((await eager.head(he)).data));
    expect(isHeldOnly(lazy.embedTokens)).toBe(true);
  });
});
