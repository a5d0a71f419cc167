import { AbortError, dequantize, parseFormat, quantize, storedBitsPerWeight, storedFormMismatch, type LayerState, type LayerStatistics, type Matrix, type StepContext } from '@bitsmith/core';
import { createRandom } from '@bitsmith/linalg';
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
