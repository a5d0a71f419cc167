import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dequantize, type QuantizedTensor } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { llamaQuantizableModel, loadLlamaModel } from '@bitsmith/models';
import { runRecipe } from '@bitsmith/recipe';
import { gptq } from '@bitsmith/solvers';
import { loadCompressedTensors, loadGptq, saveCompressedTensors, saveGptq } from './hf-checkpoint-file.js';
import { CALIBRATION_TEXT, SKIP_SHARED, TINYSTORIES_DIR } from './hf-shared-data.test-support.js';

describe.skipIf(SKIP_SHARED)('tinystories-656k: GPTQ w4g32 act-order saved as compressed-tensors and GPTQ v1/v2', () => {
  it('reads back to exactly the fake-quant weights', async () => {
    const backend = createJsBackend();
    const loaded = await loadLlamaModel(TINYSTORIES_DIR, { backend });
    const ids = loaded.tokenizer.encode(readFileSync(CALIBRATION_TEXT, 'utf8').slice(0, 8000), { bos: false });
    const sequences = [0, 1, 2, 3].map((i) => [1, ...ids.slice(i * 63, (i + 1) * 63)]);
    const quantized = new Map<string, QuantizedTensor>();
    await runRecipe(llamaQuantizableModel(loaded.graph), [gptq({ format: 'int4', granularity: { type: 'group', size: 32 }, actOrder: true })], sequences, {
      backend,
      onQuantized: (name, q) => quantized.set(name, q),
    });
    expect(quantized.size).toBe(14);
    expect([...quantized.values()].some((q) => q.permutation !== undefined)).toBe(true);
    const fake = new Map(loaded.graph.linearLayers().map((l) => [l.name, l.weight]));
    const config = JSON.parse(await readFile(join(TINYSTORIES_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
    const dir = await mkdtemp(join(tmpdir(), 'bitsmith-tinystories-'));
    try {
      const model = { tensors: loaded.graph.tensors(), quantized, config };
      await saveCompressedTensors(join(dir, 'ct'), model);
      await saveGptq(join(dir, 'v1'), model, { checkpointFormat: 'gptq' });
      await saveGptq(join(dir, 'v2'), model, { checkpointFormat: 'gptq_v2' });
      for (const back of [await loadCompressedTensors(join(dir, 'ct')), await loadGptq(join(dir, 'v1')), await loadGptq(join(dir, 'v2'))]) {
        expect(back.quantized.size).toBe(14);
        for (const [name, weight] of fake) expect(Array.from(dequantize(back.quantized.get(name)!).data)).toEqual(Array.from(weight.data));
        // Unquantized tensors (embedding, norms) come back unchanged (stored as F32).
        expect(Array.from(back.tensors.get('model.embed_tokens.weight')!.data)).toEqual(Array.from(loaded.graph.embedTokens.data));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
