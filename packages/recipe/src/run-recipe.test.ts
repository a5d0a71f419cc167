import { readFileSync } from 'node:fs';
import { AbortError, StoredFormMismatchError, UnsupportedSpecificationVersionError, ModelEditError, type QuantizableModel, type LayerAssignment, type LayerScheme, addLowRankProduct, decodeStored, dequantize, quantize, parseFormat, relativeError, rtn, type QuantizedTensor, type Quantizer, type StoredForm } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { loadLlamaModel, llamaQuantizableModel } from '@bitsmith/models';
import { describe, expect, it } from 'vitest';
import { runRecipe } from './run-recipe.js';
import { CALIBRATION_TEXT, SKIP_SHARED, TINYSTORIES_DIR } from './shared-data.test-support.js';

function matrixOf(shape: [number, number], value: number) {
  return { dtype: 'float32' as const, shape, data: new Float32Array(shape[0] * shape[1]).fill(value) };
}

async function setup() {
  const backend = createJsBackend();
  const loaded = await loadLlamaModel(TINYSTORIES_DIR, { backend });
  const ids = loaded.tokenizer.encode(readFileSync(CALIBRATION_TEXT, 'utf8').slice(0, 6000), { bos: false });
  const sequences = [0, 1, 2, 3].map((i) => [1, ...ids.slice(i * 63, (i + 1) * 63)]);
  return { backend, graph: loaded.graph, model: llamaQuantizableModel(loaded.graph), sequences };
}

describe('runRecipe and the step contract version', () => {
  const v1Step = { id: 'old-step', kind: 'quantize', requires: [], run: async () => ({ layers: [], warnings: [] }) } as unknown as Quantizer;
  const noModel = {} as QuantizableModel; // the version is checked before the model is touched

  it('refuses a step that declares no specificationVersion, naming the step, its version and the supported one', async () => {
    const error = await runRecipe(noModel, [v1Step], [[1, 2]]).catch((e: unknown) => e);
    expect(UnsupportedSpecificationVersionError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ step: 'old-step', version: 'none', supported: 'v2' });
    expect((error as Error).message).toMatch(/step 'old-step' implements step contract none .*supports 'v2'/);
  });

  it('refuses another version, in a stage and in an override', async () => {
    const v3 = { ...v1Step, id: 'future', specificationVersion: 'v3' } as unknown as Quantizer;
    await expect(runRecipe(noModel, [v3], [[1, 2]])).rejects.toMatchObject({ step: 'future', version: 'v3', supported: 'v2' });
    const recipe = { stages: [{ step: rtn({ format: 'int4' }), overrides: [{ targets: ['v_proj'], step: v3 }] }] };
    await expect(runRecipe(noModel, recipe, [[1, 2]])).rejects.toMatchObject({ code: 'unsupported-specification-version', step: 'future' });
  });

  it('every built-in factory declares v2', () => {
    expect(rtn({ format: 'int4' }).specificationVersion).toBe('v2');
  });
});

describe.skipIf(SKIP_SHARED)('runRecipe on tinystories-656k', () => {
  it('RTN through the runner equals RTN applied to each weight directly, and reports bits and output errors', async () => {
    const { backend, graph, model, sequences } = await setup();
    const originals = new Map(graph.linearLayers().map((l) => [l.name, l.weight]));
    const events: string[] = [];
    const quantized = new Map<string, QuantizedTensor>();
    const report = await runRecipe(model, [rtn({ format: 'int4', granularity: { type: 'group', size: 32 } })], sequences, {
      backend,
      onProgress: (e) => events.push(e.type),
      onQuantized: (name, q) => quantized.set(name, q),
    });
    expect(quantized.size).toBe(14);
    for (const layer of graph.linearLayers()) expect(Array.from(dequantize(quantized.get(layer.name)!).data)).toEqual(Array.from(layer.weight.data));
    expect(report.layers).toHaveLength(14);
    for (const layer of graph.linearLayers()) {
      const direct = dequantize(quantize(originals.get(layer.name)!, { format: parseFormat('int4'), granularity: { type: 'group', size: 32 } }));
      expect(Array.from(layer.weight.data)).toEqual(Array.from(direct.data));
    }
    for (const l of report.layers) {
      expect(l.bitsPerWeight).toBe(4.5);
      expect(l.outputError).toBeGreaterThan(0);
      expect(l.outputError).toBeLessThan(0.3);
      expect(l.steps).toEqual(['rtn']);
    }
    expect(report.averageBitsPerWeight).toBe(4.5);
    expect(report.protocol).toEqual({ sequences: 4, tokens: 256, maxSequenceLength: 64 });
    expect(events.filter((e) => e === 'block-done')).toHaveLength(2);
  });

  it('hands steps the Hessian X^T X / tokens of exactly the inputs each layer sees, shared by q/k/v', async () => {
    const { backend, graph, model, sequences } = await setup();
    // Oracle: capture block 0's inputs directly and form X^T X / N naively in float64.
    const captured = new Map<string, Float32Array>();
    await graph.runBlock(0, graph.embed(sequences), { observer: (e) => void captured.set(e.name, e.input.data.slice()) });
    const seen = new Map<string, Float64Array>();
    const probe: Quantizer = {
      specificationVersion: 'v2',
      id: 'probe',
      kind: 'quantize',
      requires: [{ kind: 'hessian' }],
      async run(context) {
        for (const l of context.layers) if (l.name.startsWith('model.layers.0.')) seen.set(l.name, context.statistics(l.name).hessian!);
        return { layers: context.layers, warnings: [] };
      },
    };
    await runRecipe(model, [probe], sequences, { backend });
    for (const name of ['model.layers.0.self_attn.k_proj', 'model.layers.0.mlp.down_proj']) {
      const x = captured.get(name)!;
      const columns = name.endsWith('down_proj') ? 384 : 128;
      const rows = x.length / columns;
      const h = seen.get(name)!;
      for (const [i, j] of [[0, 0], [5, 17], [columns - 1, 3]] as const) {
        let s = 0;
        for (let r = 0; r < rows; r++) s += x[r * columns + i]! * x[r * columns + j]!;
        expect(h[i * columns + j]).toBeCloseTo(s / rows, 9);
      }
    }
    expect(seen.get('model.layers.0.self_attn.q_proj')).toBe(seen.get('model.layers.0.self_attn.v_proj'));
  });

  it("hands asymmetric steps (X_float - X)^T X / tokens: X from the quantized model so far, X_float from the float model", async () => {
    const { backend, graph, model, sequences } = await setup();
    // Oracle, float model: each block-1 linear's input with every weight float.
    const floatInputs = new Map<string, Float32Array>();
    const h0 = await graph.runBlock(0, graph.embed(sequences));
    await graph.runBlock(1, h0, { observer: (e) => void floatInputs.set(e.name, e.input.data.slice()) });
    const seen = new Map<string, Float64Array>();
    const probe: Quantizer = {
      specificationVersion: 'v2',
      id: 'probe',
      kind: 'compensate', // after the rtn step of the same block
      requires: [{ kind: 'hessian' }, { kind: 'float-input-cross' }],
      async run(context) {
        for (const l of context.layers) seen.set(l.name, context.statistics(l.name).floatInputCross!);
        return { layers: context.layers, warnings: [] };
      },
    };
    await runRecipe(model, [rtn({ format: 'int3', granularity: { type: 'group', size: 32 } }), probe], sequences, { backend });
    // Oracle, quantized model: block 1's inputs after the (now quantized) block 0.
    const quantizedInputs = new Map<string, Float32Array>();
    await graph.runBlock(1, await graph.runBlock(0, graph.embed(sequences)), { observer: (e) => void quantizedInputs.set(e.name, e.input.data.slice()) });
    const name = 'model.layers.1.self_attn.k_proj';
    const xf = floatInputs.get(name)!;
    const x = quantizedInputs.get(name)!;
    const columns = 128;
    const rows = x.length / columns;
    const d = seen.get(name)!;
    let largest = 0;
    for (const [i, j] of [[0, 0], [5, 17], [columns - 1, 3], [40, 90]] as const) {
      let sum = 0;
      for (let r = 0; r < rows; r++) sum += (xf[r * columns + i]! - x[r * columns + i]!) * x[r * columns + j]!;
      largest = Math.max(largest, Math.abs(sum / rows));
      expect(d[i * columns + j]).toBeCloseTo(sum / rows, 6);
    }
    expect(largest).toBeGreaterThan(1e-4); // block 0's rounding error reaches block 1's inputs
    expect(seen.get('model.layers.1.self_attn.q_proj')).toBe(seen.get('model.layers.1.self_attn.v_proj'));
    // Block 0 sees the embeddings in both models: no cross term.
    const d0 = seen.get('model.layers.0.self_attn.k_proj')!;
    expect(Math.max(...Array.from(d0, Math.abs))).toBe(0);
  });

  it('honours targets, ignore and per-layer overrides', async () => {
    const { backend, graph, model, sequences } = await setup();
    const down = graph.blocks[1]!.mlp!.downProj.weight;
    const report = await runRecipe(
      model,
      {
        ignore: ['re:model\\.layers\\.1\\.mlp\\.down_proj'],
        stages: [{ step: rtn({ format: 'int4', granularity: { type: 'group', size: 32 } }), overrides: [{ targets: ['re:.*self_attn\\..*'], step: rtn({ format: 'int8', granularity: { type: 'channel' } }) }] }],
      },
      sequences,
      { backend },
    );
    const byName = new Map(report.layers.map((l) => [l.name, l]));
    expect(byName.get('model.layers.1.mlp.down_proj')!.bitsPerWeight).toBe(16);
    expect(graph.blocks[1]!.mlp!.downProj.weight).toBe(down);
    expect(byName.get('model.layers.0.self_attn.q_proj')!.bitsPerWeight).toBeCloseTo(8 + 16 / 128, 12);
    expect(byName.get('model.layers.0.mlp.up_proj')!.bitsPerWeight).toBe(4.5);
    expect(relativeError(down.data, graph.blocks[1]!.mlp!.downProj.weight.data)).toBe(0);
  });

  it('cancels with an AbortSignal and rejects misordered or empty recipes', async () => {
    const { backend, model, sequences } = await setup();
    const controller = new AbortController();
    controller.abort();
    await expect(runRecipe(model, [rtn({ format: 'int4' })], sequences, { backend, signal: controller.signal })).rejects.toBeInstanceOf(AbortError);
    const modelStep: Quantizer = { specificationVersion: 'v2', id: 'rotate', kind: 'transform', scope: 'model', requires: [], run: async () => ({ layers: [], warnings: [] }) };
    await expect(runRecipe(model, [rtn({ format: 'int4' }), modelStep], sequences, { backend })).rejects.toThrow(/model-level step 'rotate' must come before/);
    await expect(runRecipe(model, [], sequences, { backend })).rejects.toThrow(/at least one step/);
    await expect(runRecipe(model, [rtn({ format: 'int4' })], [], { backend })).rejects.toThrow(/calibration/);
  });
});

describe.skipIf(SKIP_SHARED)('runRecipe and model-level steps', () => {
  it('hands them the calibration sequences and the recipe input scheme, and reports their progress with an ETA', async () => {
    const { backend, model, sequences } = await setup();
    const inputActivations = { format: parseFormat('int8'), granularity: { type: 'token' as const }, dynamic: true };
    let seen: { calibration?: readonly ArrayLike<number>[]; inputActivations?: unknown } = {};
    const modelStep: Quantizer = {
      specificationVersion: 'v2',
      id: 'learn',
      kind: 'transform',
      scope: 'model',
      requires: [],
      async run(context) {
        seen = { calibration: context.calibration, inputActivations: context.inputActivations };
        for (let i = 1; i <= 4; i++) context.progress?.(i, 4, `step ${i}`);
        return { layers: [], warnings: [] };
      },
    };
    const events: { type: string; done?: number; etaSeconds?: number; message?: string }[] = [];
    await runRecipe(model, { inputActivations, stages: [{ step: modelStep }, { step: rtn({ format: 'int8' }) }] }, sequences, { backend, onProgress: (e) => events.push(e) });
    expect(seen.calibration).toBe(sequences);
    expect(seen.inputActivations).toBe(inputActivations);
    const progress = events.filter((e) => e.type === 'model-step-progress');
    expect(progress.map((e) => e.done)).toEqual([1, 2, 3, 4]);
    expect(progress.at(-1)).toMatchObject({ message: 'step 4', etaSeconds: 0 });
    expect(progress.every((e) => e.etaSeconds! >= 0)).toBe(true);
  });
});

describe.skipIf(SKIP_SHARED)('runRecipe and bit plans', () => {
  it('hands an allocate step’s assignments to later quantize steps of the block', async () => {
    const { backend, model, sequences } = await setup();
    const allocate: Quantizer = {
      specificationVersion: 'v2',
      id: 'plan',
      kind: 'allocate',
      requires: [],
      async run(context) {
        return { layers: context.layers.map((l) => (l.name.endsWith('down_proj') ? { ...l, assignment: { format: { type: 'int', bits: 8, symmetric: true } as const, label: 'int8' } } : l)), warnings: [] };
      },
    };
    // Listed after the quantize step on purpose: the runner orders allocate before quantize.
    const report = await runRecipe(model, [rtn({ format: 'int3', granularity: { type: 'group', size: 32 } }), allocate], sequences, { backend });
    for (const l of report.layers) expect(l.bitsPerWeight).toBeCloseTo(l.name.endsWith('down_proj') ? 8 + 16 / 32 : 3.5, 12); // the assignment keeps the step's groups
  });

  it('resolves each layer’s scheme once per step (context.scheme): the quantize step’s own with the bit plan applied; for a transform, the scheme of the quantize step that follows for that layer', async () => {
    const { backend, model, sequences } = await setup();
    const int8: LayerAssignment = { format: parseFormat('int8'), label: 'int8' };
    const allocate: Quantizer = {
      specificationVersion: 'v2',
      id: 'plan',
      kind: 'allocate',
      requires: [],
      run: async (c) => ({ layers: c.layers.map((l) => (l.name.endsWith('down_proj') ? { ...l, assignment: int8 } : l)), warnings: [] }),
    };
    const seen = new Map<string, LayerScheme | undefined>();
    const look: Quantizer = {
      specificationVersion: 'v2',
      id: 'look',
      kind: 'transform',
      requires: [],
      async run(c) {
        for (const l of c.layers) seen.set(`look ${l.name}`, c.scheme!(l.name));
        return { layers: c.layers, warnings: [] };
      },
    };
    const inner = rtn({ format: 'int3', granularity: { type: 'group', size: 32 } });
    const spy: Quantizer = {
      ...inner,
      async run(c) {
        for (const l of c.layers) seen.set(`rtn ${l.name}`, c.scheme!(l.name));
        return inner.run(c);
      },
    };
    const v4 = rtn({ format: 'int4-asym' });
    const recipe = { stages: [{ step: look }, { step: allocate }, { step: spy, overrides: [{ targets: ['v_proj'], step: v4 }] }] };
    const report = await runRecipe(model, recipe, sequences, { backend });
    const group32 = { type: 'group', size: 32 };
    expect(seen.get('look model.layers.0.self_attn.q_proj')).toEqual({ format: parseFormat('int3'), granularity: group32, symmetric: true, source: 'step' });
    expect(seen.get('look model.layers.0.self_attn.v_proj')).toEqual({ format: parseFormat('int4-asym'), symmetric: false, source: 'step' }); // the override's step
    expect(seen.get('rtn model.layers.1.mlp.down_proj')).toEqual({ format: parseFormat('int8'), granularity: group32, symmetric: true, source: 'assignment', label: 'int8' });
    expect(seen.get('rtn model.layers.1.mlp.up_proj')).toEqual({ format: parseFormat('int3'), granularity: group32, symmetric: true, source: 'step' });
    expect(seen.has('rtn model.layers.0.self_attn.v_proj')).toBe(false); // quantized by the override
    for (const l of report.layers) if (l.name.endsWith('down_proj')) expect(l.bitsPerWeight).toBeCloseTo(8.5, 12);
  });
});

describe.skipIf(SKIP_SHARED)('runRecipe and compensate steps', () => {
  it('hands compensate steps the float weight entering the first quantize step as `reference`, and the bits so far', async () => {
    const { backend, graph, model, sequences } = await setup();
    const originals = new Map(graph.linearLayers().map((l) => [l.name, l.weight]));
    const seen = new Map<string, { reference?: Float32Array; weight: Float32Array; bits?: number }>();
    const quantizeSeen = new Map<string, boolean>();
    const probe = (kind: 'quantize' | 'compensate'): Quantizer => ({
      specificationVersion: 'v2',
      id: `probe-${kind}`,
      kind,
      requires: [],
      async run(context) {
        for (const l of context.layers) {
          if (kind === 'compensate') seen.set(l.name, { ...(l.reference ? { reference: l.reference.data } : {}), weight: l.weight.data, ...(l.bitsPerWeight !== undefined ? { bits: l.bitsPerWeight } : {}) });
          else quantizeSeen.set(l.name, l.reference !== undefined);
        }
        if (kind === 'quantize') return { layers: context.layers, warnings: [] };
        // A compensate step that adds a rank-1 correction of zeros' worth: one float16 row and column of factors.
        return {
          layers: context.layers.map((l) => {
            const [rows, columns] = l.weight.shape;
            const a = { dtype: 'float32' as const, shape: [rows, 1] as [number, number], data: new Float32Array(rows).fill(0.5) };
            const b = { dtype: 'float32' as const, shape: [1, columns] as [number, number], data: new Float32Array(columns).fill(0.25) };
            const stored: StoredForm = { kind: 'low-rank', base: l.stored!, a, b, factorBits: 16 * (rows + columns) };
            return { ...l, weight: addLowRankProduct(l.weight, a, b), stored };
          }),
          warnings: [],
        };
      },
    });
    const report = await runRecipe(model, [probe('compensate'), rtn({ format: 'int4', granularity: { type: 'group', size: 32 } })], sequences, { backend });
    // A second quantize step on the same layers is refused (RecipeSelectionError), so quantize steps are probed alone.
    await runRecipe(model, [probe('quantize')], sequences, { backend });
    expect(quantizeSeen.size).toBe(14);
    expect(seen.size).toBe(14);
    for (const [name, s] of seen) {
      expect(s.reference).toBe(originals.get(name)!.data); // the float weight itself (no transform ran)
      const q = dequantize(quantize(originals.get(name)!, { format: parseFormat('int4'), granularity: { type: 'group', size: 32 } }));
      expect(Array.from(s.weight)).toEqual(Array.from(q.data)); // weight is Q(W)
      expect(s.bits).toBe(4.5);
      expect(quantizeSeen.get(name)).toBe(false); // quantize steps get no reference
    }
    // Bits come from the final stored form: the grid's 4.5 plus the factors'.
    for (const l of report.layers) {
      const [rows, columns] = originals.get(l.name)!.shape;
      expect(l.bitsPerWeight).toBeCloseTo(4.5 + (16 * (rows + columns)) / (rows * columns), 12);
      expect(l.stored).toBe('low-rank(grid)');
    }
  });

  it('checks after every step that the stored form decodes to the weight, and names the step and layer otherwise', async () => {
    const { backend, model, sequences } = await setup();
    // A compensate step that changes the weight but hands back the grid it was given (as svdQuant and lqLora did).
    const stale: Quantizer = {
      specificationVersion: 'v2',
      id: 'stale-compensate',
      kind: 'compensate',
      requires: [],
      async run(context) {
        return { layers: context.layers.map((l) => ({ ...l, weight: addLowRankProduct(l.weight, matrixOf([l.weight.shape[0], 1], 1), matrixOf([1, l.weight.shape[1]], 0.01)) })), warnings: [] };
      },
    };
    const error = await runRecipe(model, [rtn({ format: 'int4' }), stale], sequences, { backend }).catch((e: unknown) => e);
    expect(StoredFormMismatchError.isInstance(error)).toBe(true);
    expect((error as StoredFormMismatchError).step).toBe('stale-compensate');
    expect((error as StoredFormMismatchError).layer).toBe('model.layers.0.self_attn.q_proj');
    expect(String((error as Error).message)).toMatch(/stale-compensate.*model\.layers\.0\.self_attn\.q_proj.*does not decode/);
    // A quantize step that changes the weight and returns no stored form at all.
    const bare: Quantizer = { specificationVersion: 'v2', id: 'bare', kind: 'quantize', requires: [], run: async (c) => ({ layers: c.layers.map((l) => ({ ...l, weight: { ...l.weight, data: l.weight.data.map((x) => Math.round(x)) } })), warnings: [] }) };
    await expect(runRecipe(model, [bare], sequences, { backend })).rejects.toThrow(/step 'bare', layer 'model\.layers\.0\.self_attn\.q_proj': a quantize step changed the weight but returned no stored form/);
  });

  it('hands every final stored form to onStored; it decodes to the model weight', async () => {
    const { backend, graph, model, sequences } = await setup();
    const stored = new Map<string, StoredForm>();
    const lorcLike: Quantizer = {
      specificationVersion: 'v2',
      id: 'add-branch',
      kind: 'compensate',
      requires: [],
      async run(context) {
        return {
          layers: context.layers.map((l) => {
            const a = matrixOf([l.weight.shape[0], 2], 0.01);
            const b = matrixOf([2, l.weight.shape[1]], -0.02);
            return { ...l, weight: addLowRankProduct(l.weight, a, b), stored: { kind: 'low-rank' as const, base: l.stored!, a, b, factorBits: 0 } };
          }),
          warnings: [],
        };
      },
    };
    await runRecipe(model, [rtn({ format: 'int3', granularity: { type: 'group', size: 32 } }), lorcLike], sequences, { backend, onStored: (n, s) => stored.set(n, s) });
    expect(stored.size).toBe(14);
    for (const layer of graph.linearLayers()) expect(Array.from(decodeStored(stored.get(layer.name)!).data)).toEqual(Array.from(layer.weight.data));
  });
});

describe.skipIf(SKIP_SHARED)('runRecipe: the block capability (blockGradients)', () => {
  it('hands quantize steps the block as a differentiable function whose target is the float block on its calibration input; transforms get none', async () => {
    const { backend, graph, sequences } = await setup();
    // The reference training arithmetic: the target is then runBlock's bits (native targets are checked in models).
    const model = llamaQuantizableModel(graph, { trainingArithmetic: 'reference' });
    const expected = await graph.runBlock(0, graph.embed(sequences));
    const seenBy: Record<string, boolean> = {};
    let target0: Float32Array | undefined;
    const transform: Quantizer = {
      specificationVersion: 'v2',
      id: 'look',
      kind: 'transform',
      requires: [],
      async run(context) {
        seenBy.transform = context.blockGradients !== undefined;
        return { layers: context.layers, warnings: [] };
      },
    };
    const probe: Quantizer = {
      specificationVersion: 'v2',
      id: 'probe',
      kind: 'quantize',
      requires: [],
      async run(context) {
        seenBy.quantize = context.blockGradients !== undefined;
        if (context.block!.index === 0) {
          target0 = (await context.blockGradients!.target()).data as Float32Array;
          expect(context.blockGradients!.lengths).toEqual(sequences.map((s) => s.length));
        }
        return { layers: context.layers, warnings: [] };
      },
    };
    // The runner releases each block's capability once, after the block's steps.
    const events: string[] = [];
    const blockGradients = model.blockGradients.bind(model);
    model.blockGradients = (index, hidden, options) => {
      const g = blockGradients(index, hidden, options);
      events.push(`create ${index}`);
      return { ...g, release: () => (events.push(`release ${index}`), g.release?.()) };
    };
    const probeRun = probe.run.bind(probe);
    const counted: Quantizer = { ...probe, run: (context) => (events.push(`step ${context.block!.index}`), probeRun(context)) };
    await runRecipe(model, [transform, counted], sequences, { backend });
    expect(seenBy).toEqual({ transform: false, quantize: true });
    expect(Array.from(target0!)).toEqual(Array.from(expected.states.data));
    expect(events).toEqual(model.blocks.flatMap((_, i) => [`create ${i}`, `step ${i}`, `release ${i}`]));
  });
});

describe.skipIf(SKIP_SHARED)('runRecipe: model edits (step contract v2)', () => {
  const transform = (id: string, run: Quantizer['run']): Quantizer => ({ specificationVersion: 'v2', id, kind: 'transform', requires: [], run });

  it('refuses a step that writes through the views it was handed, naming the step and the tensor', async () => {
    const { backend, model, sequences } = await setup();
    const replaces = transform('replaces', async (c) => {
      c.block!.norms[0]!.weight = new Float32Array(c.block!.norms[0]!.weight.length).fill(1);
      return { layers: c.layers, warnings: [] };
    });
    const error = await runRecipe(model, [replaces], sequences, { backend }).catch((e: unknown) => e);
    expect(ModelEditError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ step: 'replaces', tensor: 'model.layers.0.input_layernorm.weight' });
    expect((error as Error).message).toMatch(/replaced through the model's views during the step/);
    const { model: fresh } = await setup();
    const inPlace = transform('in-place', async (c) => {
      (c.block!.linears[1]!.weight.data as Float32Array)[0]! += 1;
      return { layers: c.layers, warnings: [] };
    });
    await expect(runRecipe(fresh, [inPlace], sequences, { backend })).rejects.toMatchObject({ code: 'model-edit', step: 'in-place', tensor: 'model.layers.0.self_attn.k_proj.weight' });
  });

  it('applies a step’s edits exactly once, and refuses an edit of one of the step’s own layers', async () => {
    const { backend, graph, model, sequences } = await setup();
    const gain = graph.blocks.map((b) => Float32Array.from(b.norms[0]!.weight));
    const divisor = new Float32Array(gain[0]!.length).fill(2);
    const halves = transform('halves', async (c) => ({ layers: c.layers, warnings: [], edits: [{ kind: 'scale-norm', target: c.block!.norms[0]!.name, divisor }] }));
    await runRecipe(model, [halves], sequences, { backend });
    graph.blocks.forEach((b, i) => expect(Array.from(b.norms[0]!.weight)).toEqual(Array.from(gain[i]!, (g) => Math.fround(g / 2))));
    const { model: fresh } = await setup();
    const own = transform('own', async (c) => ({ layers: c.layers, warnings: [], edits: [{ kind: 'set-bias', target: c.layers[0]!.name, bias: undefined }] }));
    await expect(runRecipe(fresh, [own], sequences, { backend })).rejects.toMatchObject({ code: 'model-edit', step: 'own', tensor: 'model.layers.0.self_attn.q_proj.bias' });
  });
});
