// The embedding and LM head held in bf16 (keepStoredDtype) must not change a recipe's result: with a model-level
// rotation (fingerprinted before and after, it unties and rewrites embedding and head) and with GPTQ alone, the
// quantized model and its logits are bit for bit those of the float32 load, on a tied and an untied fixture.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isHeldOnly } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { llamaQuantizableModel, loadLlamaGraph } from '@bitsmith/models';
import { loadRecipe, runRecipe } from '@bitsmith/recipe';
import { defaultRegistry } from '@bitsmith/steps';
import { describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = resolve(here, '../../models/test-fixtures/architectures');
const recipes = resolve(here, '../../../examples/recipes');
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe('recipes on a model whose embedding and head stay in bf16', () => {
  for (const fixture of ['qwen2', 'llama3']) {
    for (const name of ['rotation-rtn-w4-channel', 'gptq-w4-channel']) {
      it(`${fixture} (${fixture === 'qwen2' ? 'tied' : 'untied'}), ${name}: the float32 load's weights and logits`, async () => {
        const backend = createJsBackend();
        const recipe = await loadRecipe(join(recipes, `${name}.yaml`), defaultRegistry);
        const sequences = Array.from({ length: 4 }, (_, s) => Array.from({ length: 16 }, (_, i) => (s * 7 + i * 13) % 64));
        const runs = [];
        for (const keepStoredDtype of [false, true]) {
          const graph = await loadLlamaGraph(join(fixtures, fixture), { backend, keepStoredDtype });
          await runRecipe(llamaQuantizableModel(graph), recipe, sequences, { backend });
          runs.push({ graph, logits: await graph.forward(sequences) });
        }
        const [eager, lazy] = runs as [(typeof runs)[0], (typeof runs)[0]];
        expect(lazy.graph.tiedEmbeddings).toBe(eager.graph.tiedEmbeddings);
        // Without a rotation nothing reads the tables: they are still held.
        expect(isHeldOnly(lazy.graph.embedTokens)).toBe(!name.startsWith('rotation'));
        const written = lazy.graph.tensors();
        const expected = eager.graph.tensors();
        expect([...written.keys()]).toEqual([...expected.keys()]);
        for (const [key, t] of expected) expect(bits(written.get(key)!.data), key).toEqual(bits(t.data));
        expect(bits(lazy.logits.data)).toEqual(bits(eager.logits.data));
      });
    }
  }
});
