import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { dequantize, parseFormat, quantize, type Granularity, type Matrix } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { calibrationBlocks, loadLlamaGraph } from '@bitsmith/models';
import { gptqQuantizeLayer } from './gptq-quantize-layer.js';
import { gptq } from './gptq.js';
import { naiveObjective, randomWeight } from './gptq.test-support.js';

const backend = createJsBackend();
const FIXTURES = join(fileURLToPath(import.meta.url), '..', '..', '..', 'models', 'test-fixtures', 'architectures');
const ARCHITECTURES = ['llama2-linear-bias', 'llama3', 'smollm2', 'mistral', 'qwen2', 'qwen3', 'gemma2', 'gemma3-text', 'phi3', 'qwen2-moe'];

/** 24 sequences of BOS + 23 token ids from a fixed linear congruential stream (the fixtures have no tokenizer). */
function calibrationSequences(vocab: number, seed: number): number[][] {
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
  return Array.from({ length: 24 }, () => [1, ...Array.from({ length: 23 }, () => 3 + (next() % (vocab - 3)))]);
}

describe('GPTQ on every architecture (tiny transformers checkpoints, sequential block-by-block calibration)', () => {
  const format = parseFormat('int4');
  const granularity: Granularity = { type: 'group', size: 16 };
  it.each(ARCHITECTURES)('%s: every linear of every block ends below its RTN layer error tr((W - Q) H (W - Q)^T)', async (name) => {
    const graph = await loadLlamaGraph(join(FIXTURES, name), { backend });
    const sequences = calibrationSequences(graph.config.vocabSize, 7);
    let layers = 0;
    let worst = 0;
    for await (const step of calibrationBlocks(graph, sequences, { batchSize: 8 })) {
      const hessians = new Map<string, Float64Array>();
      const counts = new Map<string, number>();
      await step.capture(async ({ name: layer, input }) => {
        const n = input.shape[1];
        let h = hessians.get(layer);
        if (!h) hessians.set(layer, (h = new Float64Array(n * n)));
        await backend.gram({ rows: input.shape[0], columns: n, x: input.data, h });
        counts.set(layer, (counts.get(layer) ?? 0) + input.shape[0]);
      });
      for (const linear of step.block.linears) {
        const hessian = hessians.get(linear.name)!;
        // Every linear, each expert included, saw every calibration token (MoE: all tokens through all experts).
        expect(counts.get(linear.name), linear.name).toBe(24 * 24);
        const weight: Matrix = linear.weight;
        const rtn = dequantize(quantize(weight, { format, granularity }));
        const result = await gptqQuantizeLayer(weight, hessian, { format, granularity, backend });
        const ratio = naiveObjective(weight, result.weight, hessian) / naiveObjective(weight, rtn, hessian);
        expect(ratio, `${name} ${linear.name}`).toBeLessThan(1);
        worst = Math.max(worst, ratio);
        linear.weight = result.weight as Matrix<'float32'>;
        layers++;
      }
    }
    expect(layers).toBe(graph.linearLayers().length);
    expect(worst).toBeGreaterThan(0);
  });
});

describe('GPTQ step: an expert that no calibration token reached', () => {
  it('is rounded to nearest (exactly the RTN result) with an rtn-fallback warning, not zeroed', async () => {
    const weight = randomWeight(8, 32, 3);
    const step = gptq({ format: 'int4', granularity: { type: 'group', size: 16 } });
    const result = await step.run({ layers: [{ name: 'model.layers.0.mlp.experts.3.up_proj', weight }], statistics: () => ({ tokens: 0, hessian: new Float64Array(32 * 32) }) });
    const rtn = dequantize(quantize(weight, { format: parseFormat('int4'), granularity: { type: 'group', size: 16 } }));
    expect(Array.from(result.layers[0]!.weight.data)).toEqual(Array.from(rtn.data));
    expect(result.layers[0]!.weight.data.some((v) => v !== 0)).toBe(true);
    expect(result.warnings).toEqual([{ step: 'gptq', layer: 'model.layers.0.mlp.experts.3.up_proj', message: expect.stringMatching(/rtn-fallback/) }]);
  });
});
