import {
  AbortError,
  applyStepResult,
  changedTensor,
  dequantize,
  draftBlock,
  draftModel,
  parseFormat,
  quantize,
  rtn,
  storedBitsPerWeight,
  storedFormMismatch,
  viewFingerprint,
  type BlockView,
  type LayerState,
  type LayerStatistics,
  type Matrix,
  type ModelView,
  type Quantizer,
  type StepContext,
  type StoredForm,
  type Tensor,
  type ViewFingerprint,
} from '@bitsmith/core';
import { createJsBackend, createRandom } from '@bitsmith/linalg';
import { createLlamaGraph, llamaQuantizableModel, parseLlamaConfig } from '@bitsmith/models';
import { runRecipe } from '@bitsmith/recipe';
import { describe, expect, it } from 'vitest';
import { defaultRegistry } from './default-registry.js';

// The contract every registered step keeps, checked on a small synthetic layer pair (no real weights): it leaves its
// input states untouched, returns one state per layer in order, every quantize or compensate state carries a stored
// form of a kind the step declares that decodes to the returned weight (with the bits it reports), and an aborted
// signal stops it with AbortError.

/** Options that make each step small; a new registry entry must be added here or to BLOCK_LEVEL. */
const OPTIONS: Record<string, Record<string, unknown>> = {
  rtn: { bits: 4, groupSize: 32 },
  gptq: { bits: 4, groupSize: 32 },
  gptaq: { bits: 4, groupSize: 32 },
  hqq: { bits: 4, groupSize: 32 },
  quantease: { bits: 4, groupSize: 32, passes: 2 },
  squeezellm: { bits: 3, maxIterations: 10 },
  vq: { dimension: 2, codebookBits: 4, maxIterations: 10 },
  lorc: { rank: 4 },
  lqer: { rank: 4 },
  eora: { rank: 4 },
  svdquant: { bits: 3, groupSize: 32, rank: 4 },
  lqlora: { bits: 3, groupSize: 32, rank: 4, iterations: 2 },
  'bit-allocation': { candidates: ['int3', 'int4'], budget: 3.8 },
  'llm-int8': { topK: 4 },
};
/** Steps that need a whole block or model (scale folding, rotations, block gradients); checked by their packages' tests on models. */
const BLOCK_LEVEL = ['awq', 'smoothquant', 'smoothquant-plus', 'outlier-suppression-plus', 'rotation', 'learned-rotation', 'autoround', 'lwc'];

const ROWS = 16;
const COLUMNS = 64;
const TOKENS = 256;

function randomMatrix(rows: number, columns: number, seed: number): Matrix {
  const random = createRandom(seed);
  return { dtype: 'float32', shape: [rows, columns], data: Float32Array.from({ length: rows * columns }, () => random.normal()) };
}

function statistics(seed: number): LayerStatistics {
  const x = randomMatrix(TOKENS, COLUMNS, seed);
  const hessian = new Float64Array(COLUMNS * COLUMNS);
  const inputAbsMax = new Float32Array(COLUMNS);
  const mean = new Float64Array(COLUMNS);
  for (let t = 0; t < TOKENS; t++) {
    for (let i = 0; i < COLUMNS; i++) {
      const xi = x.data[t * COLUMNS + i]!;
      inputAbsMax[i] = Math.max(inputAbsMax[i]!, Math.abs(xi));
      mean[i] += Math.abs(xi) / TOKENS;
      for (let j = 0; j < COLUMNS; j++) hessian[i * COLUMNS + j] += xi * x.data[t * COLUMNS + j]!;
    }
  }
  // The float model's inputs: the same tokens without the quantized model's error (GPTAQ's cross term).
  const noise = randomMatrix(TOKENS, COLUMNS, seed + 1);
  const floatInputCross = new Float64Array(COLUMNS * COLUMNS);
  for (let t = 0; t < TOKENS; t++) {
    for (let i = 0; i < COLUMNS; i++) {
      const di = 0.1 * noise.data[t * COLUMNS + i]!;
      for (let j = 0; j < COLUMNS; j++) floatInputCross[i * COLUMNS + j] += di * x.data[t * COLUMNS + j]!;
    }
  }
  return { tokens: TOKENS, hessian, inputAbsMax, inputAbsMean: Float32Array.from(mean), inputs: x, floatInputCross };
}

function layersFor(kind: string): LayerState[] {
  return ['a', 'b'].map((name, i) => {
    const weight = randomMatrix(ROWS, COLUMNS, 10 + i);
    if (kind !== 'compensate') return { name, weight };
    // Compensate steps follow a quantize step: Q(W) as the weight, its grid as the stored form, W as the reference.
    const q = quantize(weight, { format: parseFormat('int3'), granularity: { type: 'group', size: 32 } });
    return { name, weight: dequantize(q), reference: weight, stored: { kind: 'grid', tensor: q }, bitsPerWeight: 3.5 };
  });
}

function context(layers: readonly LayerState[], signal?: AbortSignal): StepContext {
  const stats = new Map(layers.map((l, i) => [l.name, statistics(100 + i)]));
  return { layers, statistics: (name) => stats.get(name)!, ...(signal ? { signal } : {}) };
}

describe('step contract (every registered step)', () => {
  it('covers every registry entry', () => {
    expect(Object.keys(defaultRegistry).sort()).toEqual([...Object.keys(OPTIONS), ...BLOCK_LEVEL].sort());
  });

  it.each(Object.keys(OPTIONS))('%s: input untouched, stored form decodes to the weight, abort honoured', async (name) => {
    const definition = defaultRegistry[name]!;
    const step = definition.create(definition.options.parse(OPTIONS[name]));
    const layers = layersFor(step.kind);
    const before = layers.map((l) => ({ weight: Float32Array.from(l.weight.data), reference: l.reference && Float32Array.from(l.reference.data) }));
    const result = await step.run(context(layers));
    layers.forEach((l, i) => {
      expect(Array.from(l.weight.data), `${name} changed its input weight`).toEqual(Array.from(before[i]!.weight));
      if (l.reference) expect(Array.from(l.reference.data)).toEqual(Array.from(before[i]!.reference!));
    });
    expect(result.layers.map((l) => l.name)).toEqual(['a', 'b']);
    for (const state of result.layers) {
      expect(state.weight.shape).toEqual([ROWS, COLUMNS]);
      if (step.kind !== 'quantize' && step.kind !== 'compensate') continue;
      expect(state.stored, `${name} returned no stored form`).toBeDefined();
      expect(step.stores ?? []).toContain(state.stored!.kind);
      expect(storedFormMismatch(state.stored!, state.weight)).toBeUndefined();
      expect(state.bitsPerWeight).toBeCloseTo(storedBitsPerWeight(state.stored!), 9);
    }
    const controller = new AbortController();
    controller.abort();
    const aborted = await step.run(context(layersFor(step.kind), controller.signal)).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(AbortError.isInstance(aborted), `${name} ignored an aborted signal`).toBe(true);
  });
});

// The same contract, on a model: every registered step (the block-level and model-level ones included) runs through
// runRecipe on a small fake Llama (two blocks, random weights, no files), wrapped in a spy that checks, on each call:
// the layer states handed in are left untouched (every array compared bit for bit); a stored form decodes to the
// returned weight; the model edits were applied exactly once (the view the next step sees equals a copy of the view
// with the step's result applied once, compared bit for bit); and an AbortSignal aborted before or during the step
// (at its first progress report) ends it with AbortError and leaves the model unchanged. The loop is over the
// registry: a new step is covered without touching this file (with its default options, or small ones from MODEL_OPTIONS).

/** Small settings per step on the fake model; a step not listed runs with `{}` (its defaults). */
const MODEL_OPTIONS: Record<string, Record<string, unknown>> = {
  ...OPTIONS,
  awq: { bits: 4, groupSize: 32 },
  smoothquant: { alpha: 0.5 },
  'smoothquant-plus': { bits: 4, groupSize: 32 },
  'outlier-suppression-plus': { bits: 4, groupSize: 32, activations: { format: 'int8', granularity: 'token' }, candidates: 4 },
  rotation: { seed: 0 },
  'learned-rotation': { seed: 0, iterations: 2, sequences: 3, validationSequences: 1, maxLength: 16, bits: 4, groupSize: 32 },
  autoround: { bits: 4, groupSize: 32, iterations: 3, batchSize: 2 },
  lwc: { bits: 4, groupSize: 32, iterations: 3, batchSize: 2 },
};

const HIDDEN = 64;
const INTERMEDIATE = 128;
const VOCAB = 48;

/** A two-block Llama (grouped-query attention, tied embeddings) with seeded random weights, built in memory. */
async function fakeModel(seed: number) {
  const config = parseLlamaConfig({
    model_type: 'llama',
    hidden_size: HIDDEN,
    intermediate_size: INTERMEDIATE,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: VOCAB,
    tie_word_embeddings: true,
  });
  const random = createRandom(seed);
  const kv = (HIDDEN / 4) * 2;
  const shapes: Record<string, number[]> = { 'model.embed_tokens.weight': [VOCAB, HIDDEN], 'model.norm.weight': [HIDDEN] };
  for (const b of [0, 1]) {
    const p = `model.layers.${b}`;
    Object.assign(shapes, {
      [`${p}.input_layernorm.weight`]: [HIDDEN],
      [`${p}.post_attention_layernorm.weight`]: [HIDDEN],
      [`${p}.self_attn.q_proj.weight`]: [HIDDEN, HIDDEN],
      [`${p}.self_attn.k_proj.weight`]: [kv, HIDDEN],
      [`${p}.self_attn.v_proj.weight`]: [kv, HIDDEN],
      [`${p}.self_attn.o_proj.weight`]: [HIDDEN, HIDDEN],
      [`${p}.mlp.gate_proj.weight`]: [INTERMEDIATE, HIDDEN],
      [`${p}.mlp.up_proj.weight`]: [INTERMEDIATE, HIDDEN],
      [`${p}.mlp.down_proj.weight`]: [HIDDEN, INTERMEDIATE],
    });
  }
  const weights = new Map<string, Tensor<'float32'>>();
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    // Norm gains around 1 with a few large channels (outliers for the smoothing steps to find); weights ~ N(0, 0.1).
    const data = name.endsWith('norm.weight') ? Float32Array.from({ length: n }, (_, i) => 1 + 0.2 * random.normal() + (i % 17 === 3 ? 4 : 0)) : Float32Array.from({ length: n }, () => 0.1 * random.normal());
    weights.set(name, { dtype: 'float32', shape, data });
  }
  const backend = createJsBackend();
  const graph = await createLlamaGraph(config, (name) => weights.get(name), { backend });
  const sequences = Array.from({ length: 6 }, () => [1, ...Array.from({ length: 23 }, () => 2 + Math.floor(random.uniform() * (VOCAB - 2)))]);
  return { backend, model: llamaQuantizableModel(graph), sequences };
}

/** Every typed array reachable from a value (layer states, stored forms), in a fixed order, copied. */
function arraysOf(value: unknown, out: [string, Uint8Array][] = [], path = ''): [string, Uint8Array][] {
  if (ArrayBuffer.isView(value)) out.push([path, new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength))]);
  else if (Array.isArray(value)) value.forEach((v, i) => arraysOf(v, out, `${path}[${i}]`));
  else if (value && typeof value === 'object') for (const key of Object.keys(value).sort()) arraysOf((value as Record<string, unknown>)[key], out, `${path}.${key}`);
  return out;
}

/** Whether two fingerprints of views with the same tensors hold the same bits (arrays) and the same objects (transforms). */
function sameView(actual: ViewFingerprint, expected: ViewFingerprint): string | undefined {
  for (let i = 0; i < expected.tensors.length; i++) {
    const e = expected.values[i];
    const isArray = e instanceof Float32Array || (typeof e === 'object' && e !== null && 'data' in e);
    if (isArray ? actual.hashes[i] !== expected.hashes[i] : actual.values[i] !== e) return expected.tensors[i];
  }
  return undefined;
}

interface Expectation {
  readonly step: string;
  readonly view: BlockView | ModelView;
  readonly expected: ViewFingerprint;
}

/** Wraps a step with the contract's checks; `probes` (for the step under test) adds the abort checks on its first call. */
function spy(step: Quantizer, state: { pending?: Expectation; checked: string[]; abort: string[]; model: ModelView }, probes: boolean): Quantizer {
  let first = true;
  return {
    ...step,
    async run(context: StepContext) {
      const view: BlockView | ModelView = context.block ?? context.model!;
      // Edits applied once: what this step sees equals the previous step's expectation for the same view.
      const pending = state.pending;
      if (pending && (pending.view === view || pending.view === state.model)) {
        const differs = sameView(viewFingerprint(pending.view), pending.expected);
        expect(differs, `after '${pending.step}', ${differs} differs from the view with its result applied once`).toBeUndefined();
        state.checked.push(pending.step);
        state.pending = undefined;
      }
      if (probes && first) {
        first = false;
        const before = viewFingerprint(view);
        const aborted = new AbortController();
        aborted.abort();
        const early = await step.run({ ...context, signal: aborted.signal }).then(() => undefined, (e: unknown) => e);
        expect(AbortError.isInstance(early), `${step.id} ignored a signal aborted before it started (${String(early)})`).toBe(true);
        expect(changedTensor(before, viewFingerprint(view))).toBeUndefined();
        const during = new AbortController();
        let last = { done: 0, total: 0 };
        const late = await step
          .run({
            ...context,
            // A trial run the runner never makes: it must not use up statistics the real run below reads again.
            releaseStatistics: undefined,
            signal: during.signal,
            progress: (done, total) => {
              last = { done, total };
              during.abort();
            },
          })
          .then(() => undefined, (e: unknown) => e);
        if (late === undefined) {
          // It may finish only when its first progress report was its last.
          expect(during.signal.aborted ? last.done : 0, `${step.id} went on after an abort during its run`).toBe(last.total);
        } else expect(AbortError.isInstance(late), `${step.id} failed with ${String(late)} instead of AbortError`).toBe(true);
        expect(changedTensor(before, viewFingerprint(view)), `${step.id} changed the model in an aborted run`).toBeUndefined();
        state.abort.push(`${step.id}: ${late === undefined ? (during.signal.aborted ? 'finished at its last progress' : 'no progress reported') : 'aborted'}`);
      }
      const handed = arraysOf(context.layers);
      const result = await step.run(context);
      // The input states are untouched, array for array.
      const after = arraysOf(context.layers);
      expect(after.map(([p]) => p)).toEqual(handed.map(([p]) => p));
      after.forEach(([p, bytes], i) => expect(Buffer.compare(Buffer.from(bytes), Buffer.from(handed[i]![1])), `${step.id} wrote into its input ${p}`).toBe(0));
      // A stored form decodes to the returned weight, of a kind the step declares.
      for (const layer of result.layers) {
        if (!layer.stored || layer.stored === context.layers.find((l) => l.name === layer.name)?.stored) continue;
        expect(storedFormMismatch(layer.stored, layer.weight), `${step.id}: ${layer.name}`).toBeUndefined();
        if (step.stores) expect(step.stores).toContain(layer.stored.kind);
      }
      // What the runner must make of the view: a copy with the result applied once.
      const copy = context.block ? draftBlock(context.block) : draftModel(context.model!);
      applyStepResult(copy, result, step.id);
      state.pending = { step: step.id, view, expected: viewFingerprint(copy) };
      return result;
    },
  };
}

/** A compensate step that changes nothing: it runs after every other kind, so it sees the tested step's result applied. */
const observer: Quantizer = { specificationVersion: 'v2', id: 'observer', kind: 'compensate', requires: [], run: async (c) => ({ layers: c.layers, warnings: [] }) };

describe('step contract on a fake two-block Llama (every registered step, through runRecipe)', () => {
  it.each(Object.keys(defaultRegistry))('%s: inputs untouched, stored forms decode, edits applied once, abort honoured', async (name) => {
    const definition = defaultRegistry[name]!;
    const step = definition.create(definition.options.parse(MODEL_OPTIONS[name] ?? {}));
    const { backend, model, sequences } = await fakeModel(7);
    const state: { pending?: Expectation; checked: string[]; abort: string[]; model: ModelView } = { checked: [], abort: [], model };
    const tested = spy(step, state, true);
    const quantizer = spy(rtn({ format: 'int4', granularity: { type: 'group', size: 32 } }), state, false);
    const last = spy(observer, state, false);
    const stages = step.kind === 'quantize' ? [tested, last] : step.kind === 'compensate' ? [quantizer, tested, last] : [tested, quantizer, last];
    const stored = new Map<string, StoredForm>();
    const report = await runRecipe(model, stages, sequences, { backend, onStored: (layer, form) => stored.set(layer, form) });
    // The tested step's result was checked against the model after every call (model-level: once; layer: per block).
    expect(state.checked.filter((s) => s === step.id).length).toBe((step.scope ?? 'layer') === 'model' ? 1 : 2);
    expect(state.abort).toHaveLength(1);
    // Every final stored form is the model's weight.
    for (const block of model.blocks) {
      for (const l of block.linears) {
        const form = stored.get(l.name);
        expect(form, `no stored form for ${l.name}`).toBeDefined();
        expect(storedFormMismatch(form!, l.weight), l.name).toBeUndefined();
      }
    }
    expect(report.layers).toHaveLength(14);
  });

  it('the once-check sees a non-idempotent edit applied twice (a step that halves a norm gain)', async () => {
    const { backend, model, sequences } = await fakeModel(3);
    const halves: Quantizer = {
      specificationVersion: 'v2',
      id: 'halves',
      kind: 'transform',
      requires: [],
      run: async (c) => ({ layers: c.layers, warnings: [], edits: [{ kind: 'scale-norm', target: c.block!.norms[0]!.name, divisor: new Float32Array(HIDDEN).fill(2) }] }),
    };
    const state: { pending?: Expectation; checked: string[]; abort: string[]; model: ModelView } = { checked: [], abort: [], model };
    let twice: ViewFingerprint | undefined;
    let seen: ViewFingerprint | undefined;
    const look: Quantizer = {
      ...observer,
      async run(c) {
        if (c.block!.index === 0) {
          seen = viewFingerprint(c.block!);
          const copy = draftBlock(c.block!);
          applyStepResult(copy, { layers: [], warnings: [], edits: [{ kind: 'scale-norm', target: copy.norms[0]!.name, divisor: new Float32Array(HIDDEN).fill(2) }] });
          twice = viewFingerprint(copy);
        }
        return observer.run(c);
      },
    };
    await runRecipe(model, [spy(halves, state, false), spy(look, state, false)], sequences, { backend });
    expect(state.checked).toEqual(['halves', 'halves']);
    expect(sameView(seen!, twice!)).toBe('model.layers.0.input_layernorm.weight');
  });
});
