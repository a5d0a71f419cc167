import { InvalidArgumentError, type BlockHessians, type QuantizableModel, type Quantizer, type ResidentHessian } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { loadLlamaModel, llamaQuantizableModel } from '@bitsmith/models';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runRecipe } from './run-recipe.js';
import { CALIBRATION_TEXT, SKIP_SHARED, TINYSTORIES_DIR } from './shared-data.test-support.js';

// QuantizableModel.blockHessians (a GPU model computes X^T X where the activations are): the runner takes those
// Hessians for steps that need nothing else, and still observes runBlock for steps that need other statistics.
describe.skipIf(SKIP_SHARED)('runRecipe with a model that gives block Hessians', () => {
  it('hands hessian-only steps the given Hessians and observes for the others; the propagation asks for observeRows', async () => {
    const backend = createJsBackend();
    const loaded = await loadLlamaModel(TINYSTORIES_DIR, { backend });
    const ids = loaded.tokenizer.encode(readFileSync(CALIBRATION_TEXT, 'utf8').slice(0, 4000), { bos: false });
    const sequences = [0, 1].map((i) => [1, ...ids.slice(i * 31, (i + 1) * 31)]);
    const inner = llamaQuantizableModel(loaded.graph);
    const asked: { block: number; layers: string[]; resident?: boolean | undefined }[] = [];
    const observedRuns: (number | undefined)[] = [];
    const marker = new Map<string, Float64Array>();
    const model: QuantizableModel = {
      ...inner,
      runBlock: (index, hidden, observe, options) => {
        if (observe) observedRuns.push(options?.observeRows);
        return inner.runBlock(index, hidden, observe, options);
      },
      blockHessians: async (index, _hidden, layers, options): Promise<BlockHessians> => {
        asked.push({ block: index, layers: [...layers], resident: options?.resident });
        const hessians = new Map<string, Float64Array>();
        for (const name of layers) {
          const n = inner.blocks[index]!.linears.find((l) => l.name === name)!.weight.shape[1];
          const h = new Float64Array(n * n);
          for (let i = 0; i < n; i++) h[i * n + i] = index + 1;
          hessians.set(name, h);
          marker.set(name, h);
        }
        return { hessians, tokens: 62 };
      },
    };
    const seenHessian = new Map<string, Float64Array>();
    const hessianStep: Quantizer = {
      specificationVersion: 'v2',
      id: 'hessian-probe',
      kind: 'transform',
      requires: [{ kind: 'hessian' }],
      async run(context) {
        for (const l of context.layers) {
          const s = context.statistics(l.name);
          expect(s.tokens).toBe(62);
          seenHessian.set(l.name, s.hessian!);
        }
        return { layers: context.layers.map((l) => ({ ...l })), warnings: [] };
      },
    };
    let absMaxLayers = 0;
    const absMaxStep: Quantizer = {
      specificationVersion: 'v2',
      id: 'absmax-probe',
      kind: 'transform',
      requires: [{ kind: 'hessian' }, { kind: 'input-absmax' }],
      async run(context) {
        for (const l of context.layers) {
          const s = context.statistics(l.name);
          expect(s.inputAbsMax!.length).toBe(l.weight.shape[1]);
          expect(s.hessian).not.toBe(marker.get(l.name));
          absMaxLayers++;
        }
        return { layers: context.layers.map((l) => ({ ...l })), warnings: [] };
      },
    };
    await runRecipe(model, [hessianStep, absMaxStep], sequences, { backend });
    expect(asked.map((a) => a.block)).toEqual([0, 1]);
    expect(asked[0]!.layers).toHaveLength(7);
    expect(asked.map((a) => a.resident)).toEqual([false, false]); // the probe asked for host Hessians
    for (const [name, h] of seenHessian) expect(h).toBe(marker.get(name));
    expect(seenHessian.size).toBe(14);
    expect(absMaxLayers).toBe(14);
    // Per block: one observed calibration run (the absmax step) and the observed propagation with the hint.
    expect(observedRuns).toEqual([undefined, 2048, undefined, 2048]);
  });

  it('falls back to observing when the model gives no Hessians for a block', async () => {
    const backend = createJsBackend();
    const loaded = await loadLlamaModel(TINYSTORIES_DIR, { backend });
    const sequences = [[1, 5, 9, 13, 200, 17]];
    const inner = llamaQuantizableModel(loaded.graph);
    const model: QuantizableModel = { ...inner, blockHessians: async () => undefined };
    let tokens = 0;
    const step: Quantizer = {
      specificationVersion: 'v2',
      id: 'probe',
      kind: 'transform',
      requires: [{ kind: 'hessian' }],
      async run(context) {
        for (const l of context.layers) tokens = context.statistics(l.name).tokens;
        if (context.layers.length === 0) throw new InvalidArgumentError('layers', 'none');
        return { layers: context.layers.map((l) => ({ ...l })), warnings: [] };
      },
    };
    await runRecipe(model, [step], sequences, { backend });
    expect(tokens).toBe(6);
  });

  it('asks for resident Hessians only for a step that takes them, and hands them over as residentHessian', async () => {
    const backend = createJsBackend();
    const loaded = await loadLlamaModel(TINYSTORIES_DIR, { backend });
    const sequences = [[1, 5, 9, 13, 200, 17]];
    const inner = llamaQuantizableModel(loaded.graph);
    const asked: (boolean | undefined)[] = [];
    const handed = new Map<string, ResidentHessian>();
    const model: QuantizableModel = {
      ...inner,
      blockHessians: async (index, _hidden, layers, options): Promise<BlockHessians> => {
        asked.push(options?.resident);
        const resident = new Map<string, ResidentHessian>();
        for (const name of layers) {
          const n = inner.blocks[index]!.linears.find((l) => l.name === name)!.weight.shape[1];
          const r: ResidentHessian = { columns: n, handle: { name }, scale: 1 / 6, read: async () => new Float64Array(n * n) };
          resident.set(name, r);
          handed.set(name, r);
        }
        return { hessians: new Map(), tokens: 6, resident };
      },
    };
    const seen = new Map<string, ResidentHessian | undefined>();
    const step: Quantizer = {
      specificationVersion: 'v2',
      id: 'resident-probe',
      kind: 'transform',
      requires: [{ kind: 'hessian', resident: true }],
      async run(context) {
        for (const l of context.layers) {
          const s = context.statistics(l.name);
          expect(s.hessian).toBeUndefined();
          seen.set(l.name, s.residentHessian);
        }
        return { layers: context.layers.map((l) => ({ ...l })), warnings: [] };
      },
    };
    await runRecipe(model, [step], sequences, { backend });
    expect(asked).toEqual([true, true]);
    expect(seen.size).toBe(14);
    for (const [name, r] of seen) expect(r).toBe(handed.get(name));
  });
});
