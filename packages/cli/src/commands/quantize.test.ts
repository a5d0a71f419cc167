import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createJsBackend } from '@bitsmith/linalg';
import { dequantize, parseFormat, quantize } from '@bitsmith/core';
import { readGguf } from '@bitsmith/formats';
import { evaluateLanguageModel, loadLlamaGraph, loadLlamaModel, openSafetensors } from '@bitsmith/models';
import { afterAll, describe, expect, it } from 'vitest';
import { installOnlineTransforms } from '../online-transforms.js';
import { llamaCppQ4KMRecipe } from '../presets.js';
import { progressReporter, quantizeCommand } from './quantize.js';

const SHARED = process.env.BITSMITH_SHARED ? resolve(process.env.BITSMITH_SHARED) : resolve(dirname(fileURLToPath(import.meta.url)), '../../../../../shared');
const MODEL = join(SHARED, 'models', 'tinystories-656k');
const EXAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../examples/recipes');
const SKIP = !existsSync(join(MODEL, 'model.safetensors')) && process.env.CI !== 'true';
if (SKIP) console.warn(`[bitsmith] skipping quantize tests on the real model: ${MODEL} not found (in CI they run)`);

const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-quantize-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(SKIP)('bitsmith quantize on tinystories-656k', () => {
  it('writes a loadable fake-quant folder whose weights lie on the recipe grid, with config and quantization.json', async () => {
    const recipe = join(tmp, 'rtn.yaml');
    writeFileSync(recipe, 'name: rtn-w4g32\nsteps:\n  - rtn: { bits: 4, groupSize: 32 }\n');
    const out = join(tmp, 'out');
    const report = await quantizeCommand(
      { model: MODEL, recipe, calibration: join(SHARED, 'data', 'calib.txt'), out, samples: '4', seqLen: '64' },
      undefined,
      { stdout: () => undefined, stderr: () => undefined },
    );
    expect(report.layers).toHaveLength(14);
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'quantization.json']) expect(existsSync(join(out, f))).toBe(true);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config.quant_method).toBe('bitsmith');
    expect(config.quantization_config.online_transforms).toEqual([]);
    const meta = JSON.parse(readFileSync(join(out, 'quantization.json'), 'utf8'));
    expect(meta.protocol.calibration.samples).toBe(4);
    expect(meta.recipe.text).toContain('groupSize: 32');
    // Oracle: the written weights equal RTN of the original weights (RTN needs no calibration).
    const original = await loadLlamaGraph(MODEL, { backend: createJsBackend() });
    const file = await openSafetensors(join(out, 'model.safetensors'));
    const name = 'model.layers.1.mlp.down_proj';
    const written = await file.readTensor(`${name}.weight`);
    await file.close();
    const expected = dequantize(quantize(original.linear(name).weight, { format: parseFormat('int4'), granularity: { type: 'group', size: 32 } }));
    expect(Array.from(written.data)).toEqual(Array.from(expected.data));
    // The output folder loads as a model again.
    const reloaded = await loadLlamaGraph(out, { backend: createJsBackend() });
    expect(reloaded.blocks).toHaveLength(2);
  });

  it('records static activation and KV-cache quantizers in config.json, and installOnlineTransforms reinstalls the same ones', async () => {
    const recipe = join(tmp, 'w8a8.yaml');
    writeFileSync(
      recipe,
      'name: w8a8\ninputActivations: { format: int8, granularity: tensor, dynamic: false }\nkvCache: { keys: { format: int8, granularity: channel }, values: { format: int4, granularity: head }, hadamard: true }\nsteps:\n  - rtn: { bits: 8 }\n',
    );
    const out = join(tmp, 'out-w8a8');
    await quantizeCommand(
      { model: MODEL, recipe, calibration: join(SHARED, 'data', 'calib.txt'), out, samples: '4', seqLen: '64' },
      undefined,
      { stdout: () => undefined, stderr: () => undefined },
    );
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    const recorded = config.quantization_config.online_transforms as Array<{ layer: string; kind: string; scales: number[] }>;
    expect(recorded).toHaveLength(14);
    for (const t of recorded) {
      expect(t.kind).toBe('activation-quantization');
      expect(t.scales).toHaveLength(1);
      expect(t.scales[0]).toBeGreaterThan(0);
    }
    const graph = await loadLlamaGraph(out, { backend: createJsBackend() });
    expect(await installOnlineTransforms(graph, out)).toBe(14);
    for (const t of recorded) expect({ layer: t.layer, ...graph.linear(t.layer).inputTransform!.describe() }).toEqual(t);
    const caches = config.quantization_config.kv_cache as Array<{ block: number; keys: { scales: number[] }; values: unknown; hadamard: boolean }>;
    expect(caches.map((c) => c.block)).toEqual([0, 1]);
    for (const c of caches) {
      const installed = graph.blocks[c.block]!.kvCache!;
      expect(installed.hadamard).toBe(true);
      expect(installed.keys!.describe()).toEqual(c.keys);
      expect(installed.values!.describe()).toEqual(c.values);
      expect(c.keys.scales).toHaveLength(64);
    }
  });

  it('reports a bad recipe with the file, step and field', async () => {
    const recipe = join(tmp, 'bad.yaml');
    writeFileSync(recipe, 'steps:\n  - rtn: { bits: 4, groupSize: 0 }\n');
    await expect(
      quantizeCommand({ model: MODEL, recipe, calibration: join(SHARED, 'data', 'calib.txt'), out: join(tmp, 'x'), samples: '2', seqLen: '32' }, undefined, { stdout: () => undefined, stderr: () => undefined }),
    ).rejects.toThrow(/bad\.yaml: steps\[0\] \(rtn\): groupSize/);
  });

  it('runs a data-free recipe without --calibration (weights = RTN of the originals) and refuses GPTQ without it', async () => {
    const out = join(tmp, 'rtn-no-calib');
    const quiet = { stdout: () => undefined, stderr: () => undefined };
    const evalText = join(tmp, 'eval.txt');
    writeFileSync(evalText, readFileSync(join(SHARED, 'data', 'dev-heldout.txt'), 'utf8').slice(0, 2000));
    await quantizeCommand({ model: MODEL, recipe: join(EXAMPLES, 'rtn-w4g32.yaml'), out, samples: '128', seqLen: '128', eval: evalText }, undefined, quiet);
    const meta = JSON.parse(readFileSync(join(out, 'quantization.json'), 'utf8'));
    expect(meta.protocol.calibration.file).toMatch(/data-free/);
    // The bit plan of the run (every layer int4 g32) and per-layer activation statistics (one per linear, its width).
    expect(Object.keys(meta.settings)).toHaveLength(14);
    expect(new Set(Object.values(meta.settings))).toEqual(new Set(['int4 g32']));
    expect(meta.activations).toHaveLength(14);
    expect(meta.activations.find((a: { layer: string }) => a.layer === 'model.layers.1.mlp.down_proj').channelAbsMax).toHaveLength(384);
    // --eval: the numbers equal an evaluation of the written folder against the original (an independent path: disk).
    const backend = createJsBackend();
    const reloaded = await loadLlamaModel(out, { backend });
    const ids = reloaded.tokenizer.encode(readFileSync(evalText, 'utf8'));
    const check = await evaluateLanguageModel(reloaded.graph, ids, { ctx: 128, reference: await loadLlamaGraph(MODEL, { backend }), bosTokenId: 1 });
    expect(meta.evaluation.perplexity).toBeCloseTo(check.perplexity, 3);
    expect(meta.evaluation.kl).toBeCloseTo(check.kl!, 4);
    expect(meta.evaluation.top1Agreement).toBeCloseTo(check.top1Agreement!, 6);
    expect(meta.evaluation.kl).toBeGreaterThan(0);
    const original = await loadLlamaGraph(MODEL, { backend: createJsBackend() });
    const file = await openSafetensors(join(out, 'model.safetensors'));
    const name = 'model.layers.0.self_attn.v_proj';
    const written = await file.readTensor(`${name}.weight`);
    await file.close();
    const expected = dequantize(quantize(original.linear(name).weight, { format: parseFormat('int4'), granularity: { type: 'group', size: 32 } }));
    expect(Array.from(written.data)).toEqual(Array.from(expected.data));
    await expect(quantizeCommand({ model: MODEL, recipe: join(EXAMPLES, 'gptq-w4g32.yaml'), out: join(tmp, 'y'), samples: '2', seqLen: '32' }, undefined, quiet)).rejects.toThrow(
      /--calibration: recipe gptq-w4g32 needs calibration text \(step gptq/,
    );
  });

  it('presets: w8a8 needs calibration text; llama.cpp-q4_k_m writes the Q4_K_M mixture', async () => {
    const quiet = { stdout: () => undefined, stderr: () => undefined };
    await expect(quantizeCommand({ model: MODEL, preset: 'w8a8', out: join(tmp, 'z'), samples: '2', seqLen: '32' }, undefined, quiet)).rejects.toThrow(/--calibration: recipe w8a8 needs calibration text \(step smoothquant/);
    await expect(quantizeCommand({ model: MODEL, preset: 'w5', out: join(tmp, 'z'), samples: '2', seqLen: '32' }, undefined, quiet)).rejects.toThrow(/unknown preset 'w5'; known: w4a16/);
    await expect(quantizeCommand({ model: MODEL, recipe: join(EXAMPLES, 'gptq-w4g32.yaml'), out: join(tmp, 'z'), samples: '2', seqLen: '32', trainingArithmetic: 'fast' }, undefined, quiet)).rejects.toThrow(
      /--training-arithmetic: must be native or reference; got 'fast'/,
    );
    const out = join(tmp, 'q4km');
    await quantizeCommand({ model: MODEL, preset: 'llama.cpp-q4_k_m', out, samples: '2', seqLen: '32' }, undefined, quiet);
    const types = new Map((await readGguf(join(out, 'model.gguf'))).tensors.map((t) => [t.name, t.type]));
    // 2 layers: llama.cpp's use_more_bits is true for layer 1 only (1 >= 7*2/8 = 1 in C); rows of 128 and 384 do not
    // split into 256-blocks, so Q6_K falls back to Q8_0 and Q4_K to Q5_0, as llama-quantize does.
    expect(types.get('blk.1.attn_v.weight')).toBe('Q8_0');
    expect(types.get('blk.1.ffn_down.weight')).toBe('Q8_0');
    expect(types.get('blk.0.attn_v.weight')).toBe('Q5_0');
    expect(types.get('blk.0.ffn_down.weight')).toBe('Q5_0');
    expect(types.get('blk.1.attn_q.weight')).toBe('Q5_0');
    expect(types.get('blk.0.attn_norm.weight')).toBe('F32');
  });

  it('llamaCppQ4KMRecipe: GPTQ int4 g32, int6 g16 for v_proj/down_proj of the use_more_bits layers', () => {
    expect(llamaCppQ4KMRecipe(8)).toContain("re:model\\.layers\\.(0|3|6|7)\\.(self_attn\\.v_proj|mlp\\.down_proj)");
  });
});

describe('bitsmith quantize: fused checkpoint tensors', () => {
  it('refuses --save gptq on Phi-3 (fused qkv_proj, gate_up_proj) before any work, naming the reason', async () => {
    const phi3 = resolve(dirname(fileURLToPath(import.meta.url)), '../../../models/test-fixtures/architectures/phi3');
    const recipe = join(tmp, 'gptq-fused.yaml');
    writeFileSync(recipe, 'name: gptq\nsteps:\n  - gptq: { bits: 4, groupSize: 16 }\n');
    const calibration = join(tmp, 'calibration.txt');
    writeFileSync(calibration, 'Some calibration text.');
    await expect(quantizeCommand({ model: phi3, recipe, calibration, samples: '8', seqLen: '16', save: 'gptq', out: join(tmp, 'phi3-gptq') })).rejects.toThrow(/phi3 stores self_attn\.qkv_proj and mlp\.gate_up_proj fused/);
    expect(existsSync(join(tmp, 'phi3-gptq'))).toBe(false);
  });
});

describe('bitsmith quantize progress', () => {
  it('prints about ten lines per model-level step that reports its iterations, with the elapsed time and the ETA', () => {
    const lines: string[] = [];
    const reporter = progressReporter(false, (text) => lines.push(text));
    for (let done = 1; done <= 100; done++) {
      reporter.onProgress({ type: 'model-step-progress', step: 'learned-rotation', done, total: 100, message: `batch loss ${done}`, elapsedSeconds: done, etaSeconds: 100 - done });
    }
    expect(lines).toHaveLength(10);
    expect(lines[0]).toMatch(/^ {2}learned-rotation 10\/100 batch loss 10; .*ETA/);
    expect(lines.at(-1)).toMatch(/learned-rotation 100\/100 batch loss 100/);
  });
});
