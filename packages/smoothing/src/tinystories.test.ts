import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rtn, type LayerState, type Matrix, type QuantizableLanguageModel, type QuantizableModel, type Quantizer, type StepContext, applyingResults } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { llamaQuantizableModel, loadLlamaGraph, loadLlamaModel } from '@bitsmith/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { awq } from './awq.js';
import { smoothQuant } from './smooth-quant.js';
import { smoothQuantPlus } from './smooth-quant-plus.js';
import { SHARED_DIR, SKIP_SHARED, TINYSTORIES_DIR } from './shared-data.test-support.js';

/** Runs a step and applies its result to the block or model it ran on, as the runner does (step contract v2). */
const applying = applyingResults;

const backend = createJsBackend();
const FORMAT = 'int3';
const GRANULARITY = { type: 'group', size: 32 } as const;

interface Loaded {
  model: QuantizableLanguageModel;
  sequences: number[][];
}

async function load(sequences: number[][]): Promise<Loaded> {
  const graph = await loadLlamaGraph(TINYSTORIES_DIR, { backend });
  return { model: llamaQuantizableModel(graph), sequences };
}

/** Runs block 0 on the sequences, returning each linear's input (copied) and the block's output. */
async function captureBlock0(model: QuantizableModel, sequences: number[][]): Promise<{ inputs: Map<string, Matrix>; output: Float32Array }> {
  const inputs = new Map<string, Matrix>();
  const hidden = await model.embed(sequences);
  const out = (await model.runBlock(0, hidden, (name, x) => {
    inputs.set(name, { dtype: 'float32', shape: [x.shape[0], x.shape[1]], data: x.data.slice() });
  })) as { states: Matrix };
  return { inputs, output: out.states.data.slice() };
}

function linearOutput(x: Matrix, w: Matrix): Float64Array {
  const [t, k] = x.shape;
  const [n] = w.shape;
  const y = new Float64Array(t * n);
  for (let r = 0; r < t; r++) for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < k; j++) s += x.data[r * k + j]! * w.data[i * k + j]!;
    y[r * n + i] = s;
  }
  return y;
}

function relative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += a[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

function contextOf(model: QuantizableModel, inputs: Map<string, Matrix>): StepContext {
  const block = model.blocks[0]!;
  return {
    layers: block.linears.map((l) => ({ name: l.name, weight: l.weight })),
    statistics: (name) => {
      const x = inputs.get(name);
      if (!x) return { tokens: 0 };
      const cols = x.shape[1];
      const absMax = new Float32Array(cols);
      for (let i = 0; i < x.data.length; i++) absMax[i % cols] = Math.max(absMax[i % cols]!, Math.abs(x.data[i]!));
      return { tokens: x.shape[0], inputs: x, inputAbsMax: absMax };
    },
    block,
  };
}

interface Measured {
  /** Per linear: relative output error `||X W^T - X' Q(W')^T|| / ||X W^T||` on the inputs `X'` of the transformed float block. */
  layers: Record<string, number>;
  /** All those linears together: `sum ||X W^T - X' Q(W')^T||^2 / sum ||X W^T||^2`. */
  total: number;
  /** Relative error of the block's output with all its linears quantized. */
  block: number;
}

/**
 * Quantizes block 0 of a fresh copy with `[transform?, rtn]` and measures each linear's output error (on the inputs
 * it sees in the transformed float block) and the output error of the quantized block, against the float model.
 * up_proj is left out of the per-layer errors: folding down_proj's scale divides its output channels, so its output is
 * not comparable; its error reaches the model through down_proj's input.
 */
async function measure(sequences: number[][], reference: { inputs: Map<string, Matrix>; output: Float32Array }, transform?: Quantizer): Promise<Measured> {
  const { model } = await load(sequences);
  const block = model.blocks[0]!;
  const captured = await captureBlock0(model, sequences);
  let layers: readonly LayerState[] = block.linears.map((l) => ({ name: l.name, weight: l.weight }));
  if (transform) layers = (await applying(transform).run(contextOf(model, captured.inputs))).layers;
  const transformed = transform ? await captureBlock0(model, sequences) : captured;
  const { layers: quantized } = await rtn({ format: FORMAT, granularity: GRANULARITY }).run({ layers, statistics: () => ({ tokens: 0 }) });
  for (const q of quantized) block.linears.find((l) => l.name === q.name)!.weight = q.weight;
  const after = await captureBlock0(model, sequences);
  const result: Measured = { layers: {}, total: 0, block: relative(reference.output, after.output) };
  let num = 0;
  let den = 0;
  for (const l of block.linears.filter((v) => v.kind !== 'up_proj')) {
    const y = linearOutput(reference.inputs.get(l.name)!, referenceWeights.get(l.name)!);
    const yq = linearOutput(transformed.inputs.get(l.name)!, l.weight);
    let n = 0;
    let d = 0;
    for (let i = 0; i < y.length; i++) {
      n += (y[i]! - yq[i]!) ** 2;
      d += y[i]! ** 2;
    }
    result.layers[l.kind] = Math.sqrt(n / d);
    num += n;
    den += d;
  }
  result.total = num / den;
  return result;
}

let referenceWeights = new Map<string, Matrix>();

describe.skipIf(SKIP_SHARED)('smoothing on tinystories-656k block 0', () => {
  let sequences: number[][];
  let reference: { inputs: Map<string, Matrix>; output: Float32Array };
  beforeAll(async () => {
    const { tokenizer, graph } = await loadLlamaModel(TINYSTORIES_DIR, { backend });
    const ids = tokenizer.encode(readFileSync(join(SHARED_DIR, 'data', 'calib.txt'), 'utf8'));
    sequences = Array.from({ length: 6 }, (_, i) => [1, ...ids.slice(i * 127, (i + 1) * 127)]);
    const model = llamaQuantizableModel(graph);
    referenceWeights = new Map(model.blocks[0]!.linears.map((l) => [l.name, l.weight]));
    reference = await captureBlock0(model, sequences);
  });

  // One test per step (each a third of the former single test's time, so load cannot push one past its timeout).
  it.each([
    ['AWQ', () => awq({ format: FORMAT, granularity: GRANULARITY, clipSearch: false, backend })],
    ['SmoothQuant', () => smoothQuant({ alpha: 0.5 })],
    ['SmoothQuant+', () => smoothQuantPlus({ format: FORMAT, granularity: GRANULARITY, backend })],
  ] as const)('%s scaling alone (clip off) leaves the float logits unchanged to 1e-4', async (_name, makeStep) => {
    {
      const step = makeStep();
      const { model } = await load(sequences);
      const before = await model.logits(await runAll(model, sequences));
      const captured = await captureBlock0(model, sequences);
      const result = await applying(step).run(contextOf(model, captured.inputs));
      expect(result.warnings).toEqual([]);
      const after = await model.logits(await runAll(model, sequences));
      let maxDiff = 0;
      for (let i = 0; i < before.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(before.data[i]! - after.data[i]!));
      console.log(`${step.id}: max |logit change| from scaling = ${maxDiff.toExponential(2)}`);
      expect(maxDiff).toBeLessThan(1e-4);
    }
  });

  it(`AWQ then RTN ${FORMAT} g32 has a lower quantized output error than plain RTN`, async () => {
    const plain = await measure(sequences, reference);
    const scales = await measure(sequences, reference, awq({ format: FORMAT, granularity: GRANULARITY, clipSearch: false, backend }));
    const full = await measure(sequences, reference, awq({ format: FORMAT, granularity: GRANULARITY, backend }));
    const fmt = (m: Measured): string => `${Object.entries(m.layers).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}; all layers ${m.total.toFixed(5)}; block out ${m.block.toFixed(4)}`;
    console.log(`rtn        : ${fmt(plain)}`);
    console.log(`awq scales : ${fmt(scales)}`);
    console.log(`awq + clip : ${fmt(full)}`);
    expect(scales.total).toBeLessThan(plain.total);
    // With clipping on, the clipped float gate/up/v change the inputs of down/o, so the per-layer measure mixes in
    // upstream clipping; the block output (everything quantized) is the measure that counts there.
    expect(full.block).toBeLessThan(plain.block);
  });
});

async function runAll(model: QuantizableModel, sequences: number[][]): Promise<unknown> {
  let h = await model.embed(sequences);
  for (const b of model.blocks) h = await model.runBlock(b.index, h);
  return h;
}
