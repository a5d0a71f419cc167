import { readFileSync } from 'node:fs';
import { parseFormat, rtn, type RuntimeInputTransform } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { loadLlamaModel, llamaQuantizableModel } from '@bitsmith/models';
import { describe, expect, it } from 'vitest';
import { parseRecipe, RecipeFileError } from './recipe-file.js';
import { runRecipe } from './run-recipe.js';
import { CALIBRATION_TEXT, SKIP_SHARED, TINYSTORIES_DIR } from './shared-data.test-support.js';
import { defineStep, quantizationOptions, resolveQuantization } from '@bitsmith/core';

async function setup() {
  const backend = createJsBackend();
  const loaded = await loadLlamaModel(TINYSTORIES_DIR, { backend });
  const ids = loaded.tokenizer.encode(readFileSync(CALIBRATION_TEXT, 'utf8').slice(0, 6000), { bos: false });
  const sequences = [0, 1, 2].map((i) => [1, ...ids.slice(i * 47, (i + 1) * 47)]);
  return { backend, graph: loaded.graph, model: llamaQuantizableModel(loaded.graph), sequences };
}

/** Per-token symmetric int8 round trip written from the definition (scale absmax / 127.5, codes -128..127). */
const bruteForcePerTokenInt8: RuntimeInputTransform = {
  name: 'oracle',
  apply(input, rows, columns) {
    for (let r = 0; r < rows; r++) {
      let absmax = 0;
      for (let c = 0; c < columns; c++) absmax = Math.max(absmax, Math.abs(input[r * columns + c]!));
      if (absmax === 0) continue;
      const s = absmax / 127.5;
      for (let c = 0; c < columns; c++) input[r * columns + c] = Math.min(127, Math.max(-128, Math.round(input[r * columns + c]! / s))) * s;
    }
  },
  describe: () => ({ kind: 'oracle' }),
};

describe.skipIf(SKIP_SHARED)('input activation quantization in the runner (tinystories-656k)', () => {
  it('dynamic per-token int8: every block linear gets a quantizer (not the head), and each layer quantized input equals a brute-force per-token round trip', async () => {
    const { graph, model, sequences, backend } = await setup();
    await runRecipe(model, { stages: [{ step: rtn({ format: 'int8' }) }], inputActivations: { format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true } }, sequences, { backend });
    for (const layer of graph.linearLayers()) expect(layer.inputTransform?.describe()).toMatchObject({ kind: 'activation-quantization', format: 'int8', granularity: 'token', dynamic: true });
    expect(graph.lmHead.inputTransform).toBeUndefined();
    // Oracle: wrap each installed quantizer so that it sees the raw input, and compare what it makes of it with a
    // brute-force per-token round trip of the same input. Elements may differ only where the float32 scale moves a
    // value across a rounding boundary (one level, rarely).
    let compared = 0;
    let flipped = 0;
    for (const layer of graph.linearLayers()) {
      const installed = layer.inputTransform!;
      layer.inputTransform = {
        name: 'spy',
        async apply(input, rows, columns) {
          const expected = input.slice(0, rows * columns);
          bruteForcePerTokenInt8.apply(expected, rows, columns);
          await installed.apply(input, rows, columns);
          for (let r = 0; r < rows; r++) {
            let absmax = 0;
            for (let c = 0; c < columns; c++) absmax = Math.max(absmax, Math.abs(expected[r * columns + c]!));
            for (let c = 0; c < columns; c++) {
              const d = Math.abs(input[r * columns + c]! - expected[r * columns + c]!);
              compared++;
              if (d > 1e-5 * absmax) {
                flipped++;
                expect(d).toBeLessThanOrEqual((absmax / 127) * 1.0001);
              }
            }
          }
        },
        describe: () => installed.describe(),
      };
    }
    const probe = [sequences[0]!.slice(0, 20)];
    const quantizedLogits = await graph.forward(probe);
    expect(compared).toBeGreaterThan(20 * 128 * 7 * 2);
    expect(flipped / compared).toBeLessThan(1e-3);
    // And the activations really are quantized: without them the logits move.
    for (const layer of graph.linearLayers()) layer.inputTransform = undefined;
    const float = await graph.forward(probe);
    let moved = 0;
    let scale = 0;
    for (let i = 0; i < float.data.length; i++) {
      moved = Math.max(moved, Math.abs(float.data[i]! - quantizedLogits.data[i]!));
      scale = Math.max(scale, Math.abs(float.data[i]!));
    }
    expect(moved / scale).toBeGreaterThan(1e-3);
  });

  it('static per-tensor int8: q/k/v scales are the max |input| over every calibration token / 127.5, from the propagated (quantized) model', async () => {
    const { graph, model, sequences, backend } = await setup();
    const scheme = { format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false } as const;
    await runRecipe(model, { stages: [{ step: rtn({ format: 'int8' }) }], inputActivations: scheme }, sequences, { backend });
    // Oracle: run the quantized model on the calibration sequences and record each q_proj's raw input max, through a
    // spy placed before the installed quantizer.
    const maxima = new Map<string, number>();
    for (const layer of graph.linearLayers()) {
      const installed = layer.inputTransform!;
      layer.inputTransform = {
        name: 'spy',
        apply(input, rows, columns) {
          let m = maxima.get(layer.name) ?? 0;
          for (let i = 0; i < rows * columns; i++) m = Math.max(m, Math.abs(input[i]!));
          maxima.set(layer.name, m);
          return installed.apply(input, rows, columns);
        },
        describe: () => installed.describe(),
      };
    }
    await graph.forward(sequences);
    for (const block of graph.blocks) {
      const described = block.selfAttention.qProj.inputTransform!.describe() as { scales: number[] };
      expect(described.scales).toHaveLength(1);
      expect(described.scales[0]! / (maxima.get(block.selfAttention.qProj.name)! / 127.5)).toBeCloseTo(1, 6);
    }
  });
});

/** A keys/values transform that records what the cache would hold and leaves it unchanged. */
function recorder(into: Float32Array[]): RuntimeInputTransform {
  return { name: 'recorder', apply: (input, rows, columns) => void into.push(input.slice(0, rows * columns)), describe: () => ({ kind: 'recorder' }) };
}

describe.skipIf(SKIP_SHARED)('key/value-cache quantization (tinystories-656k)', () => {
  it('the Hadamard on queries, keys and values alone leaves the model unchanged', async () => {
    const { graph, sequences } = await setup();
    const probe = [sequences[0]!.slice(0, 24)];
    const float = await graph.forward(probe);
    for (const block of graph.blocks) block.kvCache = { hadamard: true };
    const rotated = await graph.forward(probe);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < float.data.length; i++) {
      worst = Math.max(worst, Math.abs(float.data[i]! - rotated.data[i]!));
      scale = Math.max(scale, Math.abs(float.data[i]!));
    }
    expect(worst / scale).toBeLessThan(1e-5);
  });

  it('keys reach the cache after RoPE (position 0 unrotated, position 1 rotated), or before it with preRopeKeys', async () => {
    const { graph, sequences, backend } = await setup();
    const probe = [sequences[0]!.slice(0, 8)];
    const block = graph.blocks[0]!;
    // Oracle: k_proj's output, from its input (seen by the observer) times its weight.
    let keysBeforeRope: Float32Array | undefined;
    const kProj = block.selfAttention.kProj;
    const observer = async (e: { name: string; input: { data: Float32Array; shape: readonly number[] } }) => {
      if (e.name !== kProj.name) return;
      const rows = e.input.shape[0]!;
      keysBeforeRope = new Float32Array(rows * kProj.outFeatures);
      await backend.sgemm({ m: rows, n: kProj.outFeatures, k: kProj.inFeatures, a: e.input.data, b: kProj.weight.data, c: keysBeforeRope, transB: true });
    };
    const width = kProj.outFeatures;
    const after: Float32Array[] = [];
    block.kvCache = { keys: recorder(after) };
    await graph.runBlock(0, graph.embed(probe), { observer });
    const close = (a: Float32Array, b: Float32Array) => a.every((x, i) => Math.abs(x - b[i]!) <= 1e-5 * (1 + Math.abs(b[i]!)));
    expect(close(after[0]!.subarray(0, width), keysBeforeRope!.subarray(0, width))).toBe(true);
    expect(close(after[0]!.subarray(width, 2 * width), keysBeforeRope!.subarray(width, 2 * width))).toBe(false);
    const before: Float32Array[] = [];
    block.kvCache = { keys: recorder(before), preRopeKeys: true };
    await graph.runBlock(0, graph.embed(probe), { observer });
    expect(close(before[0]!, keysBeforeRope!)).toBe(true);
  });

  it('a recipe kvCache installs static per-channel key scales (max |post-RoPE key| / 127.5 over the calibration tokens) and per-head dynamic values', async () => {
    const { graph, model, sequences, backend } = await setup();
    const recipe = parseRecipe(
      'kvCache:\n  keys: { format: int8, granularity: channel }\n  values: { format: int4, granularity: head }\nsteps:\n  - rtn: { bits: 8 }\n',
      { rtn: defineStep({ description: 'rtn', options: quantizationOptions, create: (o) => rtn(resolveQuantization(o)) }) },
    );
    await runRecipe(model, recipe, sequences, { backend });
    for (const block of graph.blocks) {
      expect(block.kvCache?.values?.describe()).toMatchObject({ kind: 'activation-quantization', format: 'int4', granularity: 'g16', dynamic: true });
      const keys = block.kvCache!.keys!.describe() as { granularity: string; scales: number[] };
      expect(keys.granularity).toBe('channel');
      expect(keys.scales).toHaveLength(graph.config.numKeyValueHeads * graph.config.headDim);
    }
    // Oracle: record block 1's float post-RoPE keys over the calibration sequences with the quantized model (block 0
    // quantized as calibrated); block 1's keys depend only on block 0, which is final.
    const block = graph.blocks[1]!;
    const installed = block.kvCache!;
    const seen: Float32Array[] = [];
    block.kvCache = { keys: recorder(seen) };
    await graph.forward(sequences);
    const width = graph.config.numKeyValueHeads * graph.config.headDim;
    const scales = (installed.keys!.describe() as { scales: number[] }).scales;
    for (let c = 0; c < width; c++) {
      let absmax = 0;
      for (const k of seen) for (let r = 0; r < k.length / width; r++) absmax = Math.max(absmax, Math.abs(k[r * width + c]!));
      expect(scales[c]! / (absmax / 127.5)).toBeCloseTo(1, 5);
    }
  });
});

describe('inputActivations in recipe files', () => {
  const registry = {
    rtn: defineStep({ description: 'rtn', options: quantizationOptions, create: (o) => rtn(resolveQuantization(o)) }),
  };

  it('parses a scheme, with dynamic defaulting to true for per-token granularity', () => {
    const recipe = parseRecipe('inputActivations: { format: fp8-e4m3, granularity: token }\nsteps:\n  - rtn: { format: fp8-e4m3 }\n', registry);
    expect(recipe.inputActivations).toEqual({ format: parseFormat('fp8-e4m3'), granularity: { type: 'token' }, dynamic: true });
    const grouped = parseRecipe('inputActivations: { format: int4, groupSize: 64, dynamic: true }\nsteps:\n  - rtn: { bits: 4 }\n', registry);
    expect(grouped.inputActivations?.granularity).toEqual({ type: 'group', size: 64 });
    const stat = parseRecipe('inputActivations: { format: int8, granularity: tensor, observer: percentile, percentile: 99.9 }\nsteps:\n  - rtn: { bits: 8 }\n', registry);
    expect(stat.inputActivations).toMatchObject({ dynamic: false, observer: 'percentile', percentile: 99.9 });
  });

  it('parses a kvCache with per-head granularity and refuses a cache that quantizes nothing or a static per-token scheme', () => {
    const recipe = parseRecipe('kvCache: { keys: { format: int4, granularity: head }, values: { format: fp8-e4m3, granularity: token }, hadamard: true }\nsteps:\n  - rtn: { bits: 4 }\n', registry);
    expect(recipe.kvCache).toEqual({
      keys: { format: parseFormat('int4'), granularity: { type: 'head' }, dynamic: true },
      values: { format: parseFormat('fp8-e4m3'), granularity: { type: 'token' }, dynamic: true },
      hadamard: true,
    });
    expect(() => parseRecipe('kvCache: { hadamard: true }\nsteps:\n  - rtn: { bits: 4 }\n', registry, 'x.yaml')).toThrow(/needs keys, values or both/);
    expect(() => parseRecipe('kvCache: { keys: { format: int4, granularity: head, dynamic: false } }\nsteps:\n  - rtn: { bits: 4 }\n', registry, 'x.yaml')).toThrow(/kvCache\.keys: .*per-token scales can only be computed at run time/);
  });

  it('refuses schemes that cannot run, naming the file and the field', () => {
    const bad = [
      ['inputActivations: { format: int8, granularity: token, dynamic: false }', /inputActivations: .*per-token scales can only be computed at run time/],
      ['inputActivations: { format: int8 }', /needs granularity/],
      ['inputActivations: { format: int9, granularity: token }', /inputActivations: .*unknown format/],
      ['inputActivations: { format: int8, granularity: token, groupSize: 32 }', /either granularity or groupSize/],
    ] as const;
    for (const [line, message] of bad) {
      const text = `${line}\nsteps:\n  - rtn: { bits: 8 }\n`;
      expect(() => parseRecipe(text, registry, 'x.yaml')).toThrow(RecipeFileError);
      expect(() => parseRecipe(text, registry, 'x.yaml')).toThrow(message);
    }
  });
});
