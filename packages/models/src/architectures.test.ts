import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createBackend, createJsBackend, type Backend } from '@bitsmith/linalg';
import { ARCHITECTURE_FIXTURES, architectureFixtureDir, readArchitectureReference, relativeMaxError } from './architecture-fixtures.test-support.js';
import { generateGreedy } from './generate.js';
import { parseLlamaConfig } from './llama-config.js';
import { createLlamaGraph } from './llama-graph.js';
import { loadLlamaGraph, loadSafetensorsWeights } from './load-llama-node.js';

const backend = createJsBackend();
// The ort backend runs attention and the gated activation as onnxruntime graphs (float32 softmax, MLAS logistic):
// the same fixtures check it when onnxruntime-node is installed.
let ortBackend: Backend | undefined;
try {
  ortBackend = await createBackend('ort', { threads: 1 });
} catch {
  ortBackend = undefined;
}
afterAll(() => ortBackend?.dispose());
const backends: Array<[string, Backend]> = [['js', backend], ...(ortBackend ? [['ort', ortBackend] as [string, Backend]] : [])];

describe('architectures against Hugging Face transformers (tiny random-weight fixtures)', () => {
  for (const [backendName, backend] of backends) for (const name of ARCHITECTURE_FIXTURES) {
    it(`${name}: logits of every position within 1e-4 and the same 8 greedy tokens (${backendName} backend)`, async () => {
      const reference = readArchitectureReference(name);
      const graph = await loadLlamaGraph(architectureFixtureDir(name), { backend });
      for (const [p, prompt] of reference.prompts.entries()) {
        const logits = await graph.forward([prompt]);
        expect(relativeMaxError(logits.data, reference.logits[p]!), `${name} prompt ${p}`).toBeLessThan(1e-4);
      }
      // All prompts in one batch (each its own causal context) give the same logits.
      const batched = await graph.forward(reference.prompts);
      expect(relativeMaxError(batched.data, reference.logits.flat())).toBeLessThan(1e-4);
      for (const g of reference.greedy) {
        expect(await generateGreedy(graph, reference.prompts[g.prompt]!, { maxNewTokens: g.tokens.length, eosTokenId: null })).toEqual(g.tokens);
      }
    });
  }

  it('tensors() writes the checkpoint back under its own names (fused Phi-3 tensors fused again)', async () => {
    for (const name of ['phi3', 'qwen2-moe', 'gemma3-text']) {
      const dir = architectureFixtureDir(name);
      const stored = await loadSafetensorsWeights(dir);
      const graph = await loadLlamaGraph(dir, { backend });
      const written = graph.tensors();
      expect([...written.keys()].sort(), name).toEqual([...stored.keys()].sort());
      for (const [key, t] of stored) expect(Array.from(written.get(key)!.data), `${name} ${key}`).toEqual(Array.from(t.data));
    }
  });

  it('reads the older config form (top-level rope_theta, rope_scaling, rope_local_base_freq) like rope_parameters', async () => {
    for (const name of ['llama3', 'llama2-linear-bias', 'gemma3-text']) {
      const dir = architectureFixtureDir(name);
      const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      const rope = raw.rope_parameters as Record<string, Record<string, unknown> | unknown>;
      const legacy: Record<string, unknown> = { ...raw };
      delete legacy.rope_parameters;
      if ('full_attention' in rope) {
        legacy.rope_theta = (rope.full_attention as Record<string, unknown>).rope_theta;
        legacy.rope_local_base_freq = (rope.sliding_attention as Record<string, unknown>).rope_theta;
      } else {
        const { rope_theta: theta, rope_type: type, ...rest } = rope as Record<string, unknown>;
        legacy.rope_theta = theta;
        legacy.rope_scaling = type === 'default' ? null : { type, ...rest };
      }
      const modern = parseLlamaConfig(raw);
      const old = parseLlamaConfig(legacy);
      expect(old).toEqual(modern);
      const weights = await loadSafetensorsWeights(dir);
      const reference = readArchitectureReference(name);
      const graph = await createLlamaGraph(old, (n) => weights.get(n), { backend });
      const logits = await graph.forward([reference.prompts[1]!]);
      expect(relativeMaxError(logits.data, reference.logits[1]!)).toBeLessThan(1e-4);
    }
  });
});
