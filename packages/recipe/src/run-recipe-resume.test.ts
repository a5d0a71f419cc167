// Resumable runs: a run stopped after block 0 (AbortSignal) and resumed from its checkpoint ends bit-identical to an
// uninterrupted run, in weights, stored forms, report and the order in which layers are handed to onStored.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortError, dequantize, parseFormat, quantize, type Quantizer, type StoredForm } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { loadLlamaModel, llamaQuantizableModel } from '@bitsmith/models';
import { afterAll, describe, expect, it } from 'vitest';
import { directoryCheckpointStore } from './checkpoint-store-node.js';
import { runRecipe } from './run-recipe.js';
import { CheckpointMismatchError, memoryCheckpointStore, type RunCheckpointStore } from './run-checkpoint.js';
import { CALIBRATION_TEXT, SKIP_SHARED, TINYSTORIES_DIR } from './shared-data.test-support.js';

const FORMAT = parseFormat('int3');
const GROUPS = { type: 'group', size: 32 } as const;

/**
 * A data-dependent quantize step for the test: per layer, the clip ratio (1, 0.9, 0.8, 0.7) whose error
 * sum E_rc^2 H_cc under the diagonal of the layer's input Hessian H is smallest. Its result depends on the propagated activations, so a
 * resume that restored them wrongly would give other codes.
 */
const hessianClip: Quantizer = {
  specificationVersion: 'v2',
  id: 'hessian-clip',
  kind: 'quantize',
  requires: [{ kind: 'hessian' }],
  async run(context) {
    const layers = context.layers.map((layer) => {
      const h = context.statistics(layer.name).hessian!;
      const [rows, columns] = layer.weight.shape;
      let best: { error: number; stored: StoredForm; weight: ReturnType<typeof dequantize> } | undefined;
      for (const clip of [1, 0.9, 0.8, 0.7]) {
        const tensor = quantize(layer.weight, { format: FORMAT, granularity: GROUPS, clip });
        const q = dequantize(tensor);
        let error = 0;
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < columns; c++) {
            const e = layer.weight.data[r * columns + c]! - q.data[r * columns + c]!;
            error += e * e * h[c * columns + c]!;
          }
        }
        if (!best || error < best.error) best = { error, stored: { kind: 'grid', tensor }, weight: q };
      }
      return { ...layer, weight: best!.weight, stored: best!.stored };
    });
    return { layers, warnings: [] };
  },
};

const tmp = mkdtempSync(join(tmpdir(), 'bitsmith-resume-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function setup() {
  const backend = createJsBackend();
  const loaded = await loadLlamaModel(TINYSTORIES_DIR, { backend });
  const ids = loaded.tokenizer.encode(readFileSync(CALIBRATION_TEXT, 'utf8').slice(0, 6000), { bos: false });
  const sequences = [0, 1, 2, 3].map((i) => [1, ...ids.slice(i * 31, (i + 1) * 31)]);
  return { backend, graph: loaded.graph, model: llamaQuantizableModel(loaded.graph), sequences };
}

/** Runs the recipe on a freshly loaded model; everything that must not depend on the interruption. */
async function run(options: { store?: RunCheckpointStore; resume?: boolean; stopAfterBlock?: number; fingerprint?: Record<string, string>; sequences?: number[][] } = {}) {
  const { backend, graph, model, sequences } = await setup();
  const controller = new AbortController();
  const stored: [string, StoredForm][] = [];
  const events: string[] = [];
  const report = await runRecipe(model, [hessianClip], options.sequences ?? sequences, {
    backend,
    signal: controller.signal,
    onStored: (name, form) => stored.push([name, form]),
    onProgress: (e) => {
      events.push(e.type);
      if (e.type === 'block-done' && e.block === options.stopAfterBlock) controller.abort();
    },
    ...(options.store ? { checkpoint: { store: options.store, fingerprint: options.fingerprint ?? { model: 'tinystories-656k', recipe: 'hessian-clip' }, resume: options.resume ?? false } } : {}),
  });
  const weights = new Map(graph.linearLayers().map((l) => [l.name, l.weight.data]));
  const { seconds: _s, ...rest } = report;
  const comparable = { ...rest, layers: report.layers.map(({ seconds: _t, ...l }) => l), steps: report.steps.map(({ seconds: _t, ...s }) => s) };
  return { weights, stored, report: comparable, events, sequences };
}

describe.skipIf(SKIP_SHARED)('runRecipe with checkpoints on tinystories-656k', () => {
  it('stopped after block 0 and resumed: the same weights, stored forms and report as an uninterrupted run', async () => {
    const whole = await run();
    for (const [name, store] of [['memory', memoryCheckpointStore()], ['folder', directoryCheckpointStore(join(tmp, '.out.checkpoint'))]] as const) {
      await expect(run({ store, stopAfterBlock: 0 }), name).rejects.toThrow(AbortError);
      // Every layer of block 0 has a grid stored form that decodes to its weight: the entry holds no float32 weight.
      const entry = (await store.read('block-0')) as { linears: { name: string; weight?: unknown }[]; layers: { stored?: unknown }[] };
      expect(entry.linears).toHaveLength(7);
      expect(entry.linears.filter((l) => l.weight !== undefined), name).toEqual([]);
      expect(entry.layers.every((l) => l.stored !== undefined)).toBe(true);
      const resumed = await run({ store, resume: true });
      expect(resumed.events[0], name).toBe('resumed');
      expect(resumed.events.filter((e) => e === 'block-done'), name).toHaveLength(1); // block 1 only
      expect(resumed.report, name).toEqual({ ...whole.report, resumedBlocks: 1 });
      expect([...resumed.weights.keys()]).toEqual([...whole.weights.keys()]);
      for (const [layer, data] of whole.weights) expect(new Uint32Array(resumed.weights.get(layer)!.buffer), layer).toEqual(new Uint32Array(data.buffer));
      // Block 0's stored forms come back from the checkpoint, in the order the uninterrupted run handed them over.
      expect(resumed.stored.map(([n]) => n)).toEqual(whole.stored.map(([n]) => n));
      expect(resumed.stored).toEqual(whole.stored);
    }
  });

  it('refuses to resume a checkpoint made from other inputs, naming what differs', async () => {
    const store = memoryCheckpointStore();
    await expect(run({ store, stopAfterBlock: 0 })).rejects.toThrow(AbortError);
    const refused = run({ store, resume: true, fingerprint: { model: 'tinystories-656k', recipe: 'another recipe' } });
    await expect(refused).rejects.toThrow(CheckpointMismatchError);
    await expect(run({ store, resume: true, fingerprint: { model: 'tinystories-656k', recipe: 'another recipe' } })).rejects.toThrow(/different recipe; resuming would mix two runs/);
    const { sequences } = await setup();
    await expect(run({ store, resume: true, sequences: sequences.slice(0, 3) })).rejects.toThrow(/different calibration/);
    // Without resume the old checkpoint is replaced, and a resume then finds the new run's.
    const fresh = await run({ store, fingerprint: { model: 'tinystories-656k', recipe: 'another recipe' } });
    expect(fresh.report.resumedBlocks).toBeUndefined();
    expect(fresh.events).toContain('checkpoint');
  });
});
