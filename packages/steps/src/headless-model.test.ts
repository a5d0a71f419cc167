// Capability-based models (#12): a calibratable model needs blocks and their linears only. An encoder-like fake model
// with no language-model head (no embedding, final norm, LM head or logits as views) is quantized by the recipe
// runner with GPTQ; a rotation on it works on the blocks (residual: false) or is refused with MissingCapabilityError.
import {
  decodeStored,
  hasLanguageModelHead,
  hasLogits,
  matrix,
  MissingCapabilityError,
  type ArchitectureMapping,
  type BlockView,
  type HiddenStatesHandle,
  type LinearInputCallback,
  type LinearView,
  type Matrix,
  type QuantizableModel,
  type StoredForm,
} from '@bitsmith/core';
import { runRecipe } from '@bitsmith/recipe';
import { hadamardRotation, rotateModel } from '@bitsmith/rotation';
import { gptq } from '@bitsmith/solvers';
import { describe, expect, it } from 'vitest';

const HIDDEN = 16;
const INTER = 32;
const VOCAB = 12;
const BLOCKS = 2;

/** Seeded weights (a small LCG), so the test needs no files. */
function weights(rows: number, columns: number, seed: number): Matrix {
  let s = seed >>> 0;
  const data = new Float32Array(rows * columns);
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 32 - 0.5) * 0.5;
  }
  return matrix(data, rows, columns);
}

interface Hidden {
  readonly rows: number;
  readonly data: Float32Array;
}

/** `x W^T` (x `[rows, in]`, W `[out, in]`), after the layer's run-time input transform when it has one. */
async function apply(view: LinearView, x: Float32Array, rows: number): Promise<Float32Array> {
  const [out, n] = view.weight.shape;
  let input = x;
  if (view.inputTransform) {
    input = x.slice();
    await view.inputTransform.apply(input, rows, n);
  }
  const w = view.weight.data as Float32Array;
  const y = new Float32Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let sum = 0;
      for (let c = 0; c < n; c++) sum += input[r * n + c]! * w[o * n + c]!;
      y[r * out + o] = sum;
    }
  }
  return y;
}

/**
 * A BERT-like encoder without a head: each block is `x + relu(x W1^T) W2^T` (`intermediate.dense`, `output.dense`);
 * the token table stays private (the model embeds, but exposes no embedding view). Embedded values are multiples of
 * 1/4, so block 0's first Hessian `X^T X / 64` is exact in any summation order.
 */
function encoder(): QuantizableModel & { table: Float32Array } {
  const table = new Float32Array(VOCAB * HIDDEN);
  for (let v = 0; v < VOCAB; v++) for (let c = 0; c < HIDDEN; c++) table[v * HIDDEN + c] = (((v * 7 + c * 3) % 17) - 8) / 4;
  const linear = (name: string, kind: string, w: Matrix): LinearView => ({ name, kind, weight: w, bias: undefined, inputTransform: undefined });
  const blocks: BlockView[] = Array.from({ length: BLOCKS }, (_, i) => {
    const up = linear(`encoder.layer.${i}.intermediate.dense`, 'intermediate', weights(INTER, HIDDEN, 11 + i));
    const down = linear(`encoder.layer.${i}.output.dense`, 'output', weights(HIDDEN, INTER, 23 + i));
    return {
      index: i,
      name: `encoder.layer.${i}`,
      linears: [up, down],
      norms: [],
      inputGroups: [
        { linears: [up], producer: { kind: 'none' as const } },
        { linears: [down], producer: { kind: 'none' as const } },
      ],
    };
  });
  const mapping: ArchitectureMapping = { name: 'fake-encoder', inputGroups: [], residualWriters: ['output.dense'], residualOutputNorms: [], mlpOutputs: ['output.dense'], auxiliary: [], fused: {} };
  return {
    table,
    architecture: 'fake-encoder',
    mapping,
    hiddenSize: HIDDEN,
    blocks,
    async embed(sequences: readonly ArrayLike<number>[]): Promise<HiddenStatesHandle> {
      const tokens = sequences.flatMap((s) => Array.from(s));
      const data = new Float32Array(tokens.length * HIDDEN);
      tokens.forEach((t, r) => data.set(table.subarray(t * HIDDEN, (t + 1) * HIDDEN), r * HIDDEN));
      return { rows: tokens.length, data } satisfies Hidden;
    },
    async runBlock(index: number, hidden: HiddenStatesHandle, observe?: LinearInputCallback): Promise<HiddenStatesHandle> {
      const { rows, data } = hidden as Hidden;
      const [up, down] = blocks[index]!.linears as [LinearView, LinearView];
      await observe?.(up.name, matrix(data, rows, HIDDEN));
      const h = await apply(up, data, rows);
      for (let i = 0; i < h.length; i++) h[i] = Math.max(0, h[i]!);
      await observe?.(down.name, matrix(h, rows, INTER));
      const y = await apply(down, h, rows);
      for (let i = 0; i < y.length; i++) y[i]! += data[i]!;
      return { rows, data: y } satisfies Hidden;
    },
  };
}

/** 4 sequences of 16 tokens: 64 tokens, a power of two (the mean Hessian's 1/64 is exact). */
const SEQUENCES = Array.from({ length: 4 }, (_, s) => Array.from({ length: 16 }, (_, t) => (s * 5 + t * 3) % VOCAB));

async function forward(model: QuantizableModel): Promise<Float32Array> {
  let hidden = await model.embed(SEQUENCES);
  for (const block of model.blocks) hidden = await model.runBlock(block.index, hidden);
  return (hidden as Hidden).data;
}

const GPTQ = { format: 'int4', granularity: { type: 'group', size: 16 } } as const;

describe('a model without a language-model head (an encoder)', () => {
  it('has no head capability; a model with the head views has it (read without calling getters)', () => {
    const model = encoder();
    expect(hasLanguageModelHead(model)).toBe(false);
    expect(hasLogits(model)).toBe(false);
    const fail = (): never => {
      throw new Error('a getter was read');
    };
    const withHead = {
      ...model,
      get embedding(): Matrix {
        return fail();
      },
      get finalNorm() {
        return fail();
      },
      get lmHead() {
        return fail();
      },
      tiedEmbeddings: false,
      untieEmbeddings: () => undefined,
    };
    expect(hasLanguageModelHead(withHead)).toBe(true);
    expect(hasLogits(withHead)).toBe(false);
    // A wrapper (as the CLI's activation capture makes with Object.create) keeps the capability of its prototype.
    expect(hasLogits(Object.assign(Object.create(withHead) as typeof withHead, { logits: async () => matrix(new Float32Array(0), 0, VOCAB) }))).toBe(true);
  });

  it('is quantized by runRecipe with GPTQ: every linear gets a grid stored form, and block 0 matches GPTQ on the hand-computed Hessian', async () => {
    const model = encoder();
    // The oracle: GPTQ run directly on block 0's first linear with X^T X / 64 of the embedded tokens, computed here.
    const embedded = (await model.embed(SEQUENCES)) as Hidden;
    const first = model.blocks[0]!.linears[0]!;
    const hessian = new Float64Array(HIDDEN * HIDDEN);
    for (let r = 0; r < embedded.rows; r++) {
      for (let i = 0; i < HIDDEN; i++) for (let j = 0; j < HIDDEN; j++) hessian[i * HIDDEN + j]! += embedded.data[r * HIDDEN + i]! * embedded.data[r * HIDDEN + j]!;
    }
    for (let i = 0; i < hessian.length; i++) hessian[i]! /= embedded.rows;
    const oracle = await gptq(GPTQ).run({ layers: [{ name: first.name, weight: first.weight }], statistics: () => ({ tokens: embedded.rows, hessian }) });

    const floats = new Map(model.blocks.flatMap((b) => b.linears.map((l) => [l.name, l.weight.data.slice()] as const)));
    const stored = new Map<string, StoredForm>();
    const report = await runRecipe(model, [gptq(GPTQ)], SEQUENCES, { onStored: (name, form) => stored.set(name, form) });
    const names = model.blocks.flatMap((b) => b.linears.map((l) => l.name));
    expect(report.layers.map((l) => l.name)).toEqual(names);
    for (const block of model.blocks) {
      for (const view of block.linears) {
        const form = stored.get(view.name)!;
        expect(form.kind, view.name).toBe('grid');
        // The model's weight is the stored form's decoding, and it changed from the float weight.
        expect(new Uint32Array((decodeStored(form).data as Float32Array).buffer), view.name).toEqual(new Uint32Array((view.weight.data as Float32Array).slice().buffer));
        expect(view.weight.data, view.name).not.toEqual(floats.get(view.name));
      }
    }
    expect(report.averageBitsPerWeight).toBeGreaterThan(4);
    expect(report.averageBitsPerWeight).toBeLessThan(5.5);
    expect(new Uint32Array((first.weight.data as Float32Array).slice().buffer)).toEqual(new Uint32Array((oracle.layers[0]!.weight.data as Float32Array).slice().buffer));
  });

  it('rotation: residual: true is refused with MissingCapabilityError before any write; residual: false works on the blocks', async () => {
    const model = encoder();
    const before = await forward(model);
    const weightsBefore = model.blocks.flatMap((b) => b.linears.map((l) => l.weight));
    const refused = rotateModel(model, { residual: true });
    await expect(refused).rejects.toThrow(MissingCapabilityError);
    await expect(rotateModel(model, {})).rejects.toThrow(/hadamard-rotation with residual: true .* needs the model's language-model-head capability: expected an embedding, a final norm, an LM head/);
    expect(model.blocks.flatMap((b) => b.linears.map((l) => l.weight))).toEqual(weightsBefore);

    // Online Hadamards before the mapping's MLP outputs: W <- W H and x <- x H at run time; the outputs stay the same.
    const { warnings } = await rotateModel(model, { residual: false, valueHadamard: false });
    expect(warnings).toEqual([]);
    for (const block of model.blocks) {
      expect(block.linears[1]!.inputTransform?.name, block.name).toBe('hadamard');
      expect(block.linears[1]!.weight.data, block.name).not.toEqual(weightsBefore[block.index * 2 + 1]!.data);
    }
    const after = await forward(model);
    let worst = 0;
    for (let i = 0; i < before.length; i++) worst = Math.max(worst, Math.abs(after[i]! - before[i]!));
    expect(worst).toBeLessThan(1e-5);
  });

  it('through runRecipe: a residual rotation step is refused by name; the block-only rotation then GPTQ runs', async () => {
    await expect(runRecipe(encoder(), [hadamardRotation(), gptq(GPTQ)], SEQUENCES)).rejects.toThrow(MissingCapabilityError);
    const model = encoder();
    const report = await runRecipe(model, [hadamardRotation({ residual: false, valueHadamard: false }), gptq(GPTQ)], SEQUENCES);
    expect(report.layers.every((l) => l.steps.includes('gptq'))).toBe(true);
    expect(model.blocks.every((b) => b.linears[1]!.inputTransform?.name === 'hadamard')).toBe(true);
  });
});
