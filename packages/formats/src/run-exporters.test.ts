import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActivationSchemeRefusedError, decodeStored, dequantize, InvalidArgumentError, parseFormat, quantize, StoredFormRefusedError, STORED_KINDS, type Granularity, type Matrix, type StoredForm } from '@bitsmith/core';
import { loadLlamaModel, readTfjsModel, type LlamaGraph } from '@bitsmith/models';
import { afterAll, describe, expect, it } from 'vitest';
import { SKIP_SHARED, TINYSTORIES_DIR } from '../../models/src/shared-data.test-support.js';
import { readGguf } from './gguf-file.js';
import { ggufLlamaTensorName, permuteForGgmlRope } from './gguf-llama-export.js';
import { loadCompressedTensors, loadGptq } from './hf-checkpoint-file.js';
import { readMatMulNBits } from './onnx-file.js';
import { quantizedRun, type QuantizedRun } from './quantized-run.js';
import { RUN_EXPORTERS } from './run-exporters.js';
import { EXPORTER_STORED_KINDS } from './stored-form-export.js';

// Every exporter written from one QuantizedRun (tinystories-656k, quantized by hand as a recipe would: each linear's
// weight replaced by its decoded stored form) reads back the fake-quant weights; a kind it cannot write is refused
// before any file is written, with a named error.
const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-run-exporters-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Two "recipes": symmetric int4 in groups of 32, asymmetric int8 per channel. */
const RECIPES: Record<string, { format: string; granularity: Granularity }> = {
  'rtn-w4g32': { format: 'int4', granularity: { type: 'group', size: 32 } },
  'rtn-asym-w8': { format: 'int8-asym', granularity: { type: 'channel' } },
};

/** Quantizes every block linear of a freshly loaded graph and returns the run (the graph holds the decoded weights). */
async function runOf(recipe: string, form: (name: string, grid: StoredForm) => StoredForm = (_, g) => g): Promise<QuantizedRun> {
  const { graph } = await loadLlamaModel(TINYSTORIES_DIR);
  const { format, granularity } = RECIPES[recipe]!;
  const stored = new Map<string, StoredForm>();
  for (const layer of graph.linearLayers()) {
    const s = form(layer.name, { kind: 'grid', tensor: quantize(layer.weight, { format: parseFormat(format), granularity }) });
    layer.weight = decodeStored(s) as Matrix<'float32'>;
    stored.set(layer.name, s);
  }
  const config = { model_type: 'llama', tie_word_embeddings: graph.config.tieWordEmbeddings };
  return quantizedRun({ graph, stored, config, report: { recipe, averageBitsPerWeight: 0 }, source: TINYSTORIES_DIR });
}

function expectSame(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  expect(actual.length, what).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) if (actual[i] !== expected[i]) expect(`${what}[${i}] = ${actual[i]}`).toBe(`${what}[${i}] = ${expected[i]}`);
}

describe('RUN_EXPORTERS', () => {
  it('each exporter says which stored kinds it accepts: the kinds of EXPORTER_STORED_KINDS, a subset of the union', () => {
    for (const [name, exporter] of Object.entries(RUN_EXPORTERS)) {
      expect(exporter.name).toBe(name);
      expect(exporter.accepts).toEqual(EXPORTER_STORED_KINDS[exporter.name]);
      for (const kind of exporter.accepts) expect(STORED_KINDS).toContain(kind);
    }
  });
});

describe.skipIf(SKIP_SHARED)('every exporter from one QuantizedRun (tinystories-656k)', () => {
  for (const recipe of Object.keys(RECIPES)) {
    it(`${recipe}: compressed-tensors, gptq, gptq-v2, onnx and gguf read back the fake-quant weights`, async () => {
      const run = await runOf(recipe);
      const graph = run.graph as LlamaGraph;
      const layers = graph.linearLayers();
      const asymmetric = recipe.includes('asym');
      for (const name of ['compressed-tensors', 'gptq', 'gptq-v2'] as const) {
        const out = join(tmp, `${recipe}-${name}`);
        await RUN_EXPORTERS[name].save(out, run);
        expect(existsSync(join(out, 'tokenizer.json')), 'tokenizer copied from the run source').toBe(true);
        const loaded = name === 'compressed-tensors' ? await loadCompressedTensors(out) : await loadGptq(out);
        for (const l of layers) expectSame(`${name} ${l.name}`, dequantize(loaded.quantized.get(l.name)!).data, l.weight.data);
      }
      const onnx = join(tmp, `${recipe}-onnx`);
      const saved = await RUN_EXPORTERS.onnx.save(onnx, run);
      expect(saved.defaultDtype).toBe(asymmetric ? 'q8' : 'q4');
      const file = readdirSync(join(onnx, 'onnx')).find((f) => /^model_(q4|quantized)\.onnx$/.test(f))!;
      const read = await readMatMulNBits(join(onnx, 'onnx', file));
      for (const l of layers) expectSame(`onnx ${l.name}`, dequantize(read.get(l.name)!).data, l.weight.data);
      // GGUF F32 holds the decoded weights exactly (q/k rows permuted for GGML's RoPE).
      const gguf = join(tmp, `${recipe}-gguf`);
      await RUN_EXPORTERS.gguf.save(gguf, run, { type: 'F32' });
      const file2 = await readGguf(join(gguf, 'model.gguf'));
      const { numAttentionHeads, numKeyValueHeads, headDim } = graph.config;
      for (const l of layers) {
        const name = ggufLlamaTensorName(`${l.name}.weight`)!;
        const heads = /\.attn_q\./.test(name) ? numAttentionHeads : /\.attn_k\./.test(name) ? numKeyValueHeads : 0;
        const expected = heads ? permuteForGgmlRope(l.weight.data, heads, headDim, l.weight.shape[1]) : l.weight.data;
        expectSame(`gguf ${l.name}`, file2.tensorValues(name), expected);
      }
    });
  }

  it('tfjs refuses grid layers before writing; a float run is written and decodes within half a step of each weight', async () => {
    const run = await runOf('rtn-w4g32');
    const refused = join(tmp, 'tfjs-refused');
    const error = await RUN_EXPORTERS.tfjs.save(refused, run).catch((e: unknown) => e);
    expect(StoredFormRefusedError.isInstance(error), String(error)).toBe(true);
    expect((error as StoredFormRefusedError).exporter).toBe('tfjs');
    expect(existsSync(refused)).toBe(false);
    const { graph } = await loadLlamaModel(TINYSTORIES_DIR);
    const float = quantizedRun({ graph, stored: new Map(), config: {}, report: { recipe: 'none', averageBitsPerWeight: 32 } });
    const out = join(tmp, 'tfjs-float');
    const saved = await RUN_EXPORTERS.tfjs.save(out, float, { rangeSearch: false });
    const back = await readTfjsModel(join(out, 'model.json'));
    const tensors = graph.tensors();
    expect(back.weights.length).toBe(tensors.size);
    for (const w of back.weights) {
      const original = tensors.get(w.name)!.data;
      const step = saved.quantized.get(w.name)!.scale;
      const data = w.data as Float32Array;
      let worst = 0;
      for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(data[i]! - original[i]!));
      expect(worst, w.name).toBeLessThanOrEqual(step / 2 + 1e-6 * Math.max(1, step));
    }
  });

  it('a kind an exporter cannot write is refused by check() and save() with StoredFormRefusedError, nothing written', async () => {
    // A low-rank branch on one layer: only onnx takes it.
    const target = 'model.layers.1.mlp.down_proj';
    const run = await runOf('rtn-w4g32', (name, grid) => {
      if (name !== target || grid.kind !== 'grid') return grid;
      const [rows, columns] = grid.tensor.shape;
      const a: Matrix = { dtype: 'float32', shape: [rows, 2], data: Float32Array.from({ length: rows * 2 }, (_, i) => ((i % 7) - 3) / 64) };
      const b: Matrix = { dtype: 'float32', shape: [2, columns], data: Float32Array.from({ length: 2 * columns }, (_, i) => ((i % 5) - 2) / 64) };
      return { kind: 'low-rank', base: grid, a, b, factorBits: 16 };
    });
    for (const exporter of Object.values(RUN_EXPORTERS)) {
      const out = join(tmp, `low-rank-${exporter.name}`);
      if (exporter.accepts.includes('low-rank')) {
        expect(() => exporter.check(run)).not.toThrow();
        continue;
      }
      let checked: unknown;
      try {
        exporter.check(run, { type: 'F32' } as never);
      } catch (e) {
        checked = e;
      }
      expect(StoredFormRefusedError.isInstance(checked), `${exporter.name}: ${String(checked)}`).toBe(true);
      // tfjs takes float layers only: it refuses the first grid already.
      const refusedLayer = exporter.accepts.includes('grid') ? target : 'model.layers.0.self_attn.q_proj';
      expect((checked as StoredFormRefusedError).layer).toBe(refusedLayer);
      expect((checked as Error).message).toMatch(new RegExp(`^${exporter.name} cannot write layer '${refusedLayer}' stored as (low-rank\\(grid\\)|grid)`));
      const saved = await exporter.save(out, run, { type: 'F32' } as never).catch((e: unknown) => e);
      expect(StoredFormRefusedError.isInstance(saved), `${exporter.name}: ${String(saved)}`).toBe(true);
      expect(existsSync(out), `${exporter.name} wrote nothing`).toBe(false);
    }
  });

  it('run-time transforms: weights-only formats refuse them with ActivationSchemeRefusedError; a run with no grid is refused by the checkpoint formats', async () => {
    const run = await runOf('rtn-w4g32');
    const layer = (run.graph as LlamaGraph).linearLayers()[0]!;
    layer.inputTransform = { name: 'hadamard', apply: () => undefined, describe: () => ({ kind: 'hadamard', size: layer.weight.shape[1] }) };
    const rotated = quantizedRun({ ...run, config: run.config });
    expect(rotated.transforms).toEqual([{ layer: layer.name, description: { kind: 'hadamard', size: layer.weight.shape[1] } }]);
    for (const name of ['compressed-tensors', 'gptq', 'gguf', 'tfjs'] as const) {
      const error = (() => {
        try {
          RUN_EXPORTERS[name].check(name === 'tfjs' ? { ...rotated, stored: new Map() } : rotated);
          return undefined;
        } catch (e) {
          return e;
        }
      })();
      expect(ActivationSchemeRefusedError.isInstance(error), `${name}: ${String(error)}`).toBe(true);
      expect((error as ActivationSchemeRefusedError).field).toBe('onlineTransforms');
    }
    const empty = { ...run, stored: new Map<string, StoredForm>() };
    expect(() => RUN_EXPORTERS.gptq.check(empty)).toThrow(InvalidArgumentError);
  });
});
