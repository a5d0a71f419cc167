import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, UnsupportedFormatError, matrix, parseFormat, type ActivationScheme, applyingResults } from '@bitsmith/core';
import { createJsBackend, createRandom } from '@bitsmith/linalg';
import { llamaQuantizableModel, loadLlamaGraph, type LlamaGraph } from '@bitsmith/models';
import { hadamardRotation } from './hadamard-rotation.js';
import { addAbsmaxScalePath, learnRotation, rotationBlockLoss, rotationProblem, type RotationLossSettings } from './learned-rotation.js';
import { learnedRotation, learnedRotationStep } from './learned-rotation-step.js';
import { orthogonalityError, rotateModel } from './rotate-model.js';

/** Runs a step and applies its result to the block or model it ran on, as the runner does (step contract v2). */
const applying = applyingResults;

const backend = createJsBackend();
const FIXTURES = join(fileURLToPath(import.meta.url), '..', '..', '..', 'models', 'test-fixtures', 'architectures');
const int4PerToken: ActivationScheme = { format: parseFormat('int4'), granularity: { type: 'token' }, dynamic: true };

/** Calibration sequences of random token ids (BOS first) for the tiny fixtures (vocabulary 64). */
function sequences(count: number, length: number, seed: number): number[][] {
  const random = createRandom(seed);
  return Array.from({ length: count }, () => [1, ...Array.from({ length: length - 1 }, () => 2 + Math.floor(random.uniform() * 60))]);
}

async function llama3(): Promise<LlamaGraph> {
  return loadLlamaGraph(join(FIXTURES, 'llama3'), { backend });
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return { diff, scale };
}

describe('addAbsmaxScalePath', () => {
  it('is the gradient of x + s(x) (q - x / s0) with the codes q and s0 held (rounding straight-through, absmax scale s)', () => {
    // The quantizer written as SpinQuant writes it: x^ = s * (x / s + detach(round(x / s) - x / s)), s = max |x| / 7.
    const random = createRandom(11);
    const rows = 3;
    const columns = 8;
    const size = 4;
    const x = Float32Array.from({ length: rows * columns }, () => random.uniform() - 0.5);
    const c = Float32Array.from({ length: rows * columns }, () => random.uniform() - 0.5);
    const scaleOf = (v: ArrayLike<number>, o: number) => Math.max(...Array.from({ length: size }, (_, j) => Math.abs(v[o + j]!))) / 7;
    const held = Float32Array.from(x, (v, i) => {
      const s = scaleOf(x, i - (i % size));
      return Math.round(v / s) - v / s;
    });
    const quantized = Float32Array.from(x, (v, i) => Math.round(v / scaleOf(x, i - (i % size))) * scaleOf(x, i - (i % size)));
    const f = (v: Float64Array) => {
      let sum = 0;
      for (let i = 0; i < v.length; i++) sum += c[i]! * (v[i]! + scaleOf(v, i - (i % size)) * held[i]!);
      return sum;
    };
    const grad = c.slice();
    addAbsmaxScalePath(x, quantized, grad, rows, columns, size);
    const h = 1e-7;
    for (let i = 0; i < x.length; i++) {
      const up = Float64Array.from(x);
      const down = Float64Array.from(x);
      up[i] += h;
      down[i] -= h;
      expect(grad[i]).toBeCloseTo((f(up) - f(down)) / (2 * h), 5);
    }
    // Only the group maxima differ from straight-through.
    expect(Array.from(grad).filter((g, i) => g !== c[i]).length).toBe((rows * columns) / size);
  });
});

describe('rotationBlockLoss: the gradient with respect to R', () => {
  it('equals central finite differences of the loss (float weights and inputs, R not orthogonal, norms not folded)', async () => {
    // Without rounding the loss is smooth in R, and the chain rule X^T dX - Y^T dO + F^T dW + W dW^T must match it
    // for any R (for an orthogonal R and folded norms it would be 0: see the next test).
    const graph = await llama3();
    const model = llamaQuantizableModel(graph);
    const n = model.hiddenSize;
    const hidden = await model.embed(sequences(2, 9, 1));
    const problem = rotationProblem(model, 0, hidden);
    const settings: RotationLossSettings = { hidden: n, backend, onlineHadamard: false };
    const random = createRandom(7);
    const r = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) r[i * n + j] = (i === j ? 1 : 0) + 0.3 * (random.uniform() - 0.5);
    const gradient = new Float64Array(n * n);
    const loss = await rotationBlockLoss(problem, r, [0, 1], settings, gradient);
    expect(loss).toBeGreaterThan(1e-3);
    // Directional derivatives along random directions and single entries, central differences in float64 around R.
    const h = 1e-2;
    const at = async (direction: Float64Array, step: number) => {
      const shifted = Float32Array.from(r, (v, i) => v + step * direction[i]!);
      return rotationBlockLoss(problem, shifted, [0, 1], settings);
    };
    let worst = 0;
    let largest = 0;
    for (let trial = 0; trial < 6; trial++) {
      const direction = new Float64Array(n * n);
      if (trial < 3) for (let i = 0; i < direction.length; i++) direction[i] = random.uniform() - 0.5;
      else direction[Math.floor(random.uniform() * n * n)] = 1;
      const numeric = ((await at(direction, h)) - (await at(direction, -h))) / (2 * h);
      let analytic = 0;
      for (let i = 0; i < direction.length; i++) analytic += gradient[i]! * direction[i]!;
      worst = Math.max(worst, Math.abs(numeric - analytic));
      largest = Math.max(largest, Math.abs(analytic));
    }
    expect(largest).toBeGreaterThan(1e-3);
    expect(worst / largest).toBeLessThan(2e-3);
  });

  it('asks the model for the reference training arithmetic (its measured gain over the Hadamard is that small)', async () => {
    const graph = await llama3();
    const model = llamaQuantizableModel(graph); // native by default for the other learned steps
    const asked: unknown[] = [];
    const original = model.blockGradients.bind(model);
    model.blockGradients = (index, hidden, options) => {
      asked.push(options?.arithmetic);
      return original(index, hidden, options);
    };
    const hidden = await model.embed(sequences(2, 9, 1));
    const problem = rotationProblem(model, 0, hidden);
    expect(asked).toEqual(['reference']);
    // With the reference arithmetic the float target is runBlock's output, bit for bit.
    const target = await problem.g.target();
    expect(Array.from(target.data)).toEqual(Array.from((await graph.runBlock(0, hidden as Parameters<LlamaGraph['runBlock']>[1])).states.data));
  });

  it('is zero, with a zero loss, for an orthogonal R once the norms are folded (the rotated float block is exact)', async () => {
    const graph = await llama3();
    const model = llamaQuantizableModel(graph);
    const n = model.hiddenSize;
    const identity = new Float32Array(n * n);
    for (let i = 0; i < n; i++) identity[i * n + i] = 1;
    await rotateModel(model, { rotation: matrix<'float32'>(identity, n, n), onlineHadamard: false, backend });
    const problem = rotationProblem(model, 1, await model.runBlock(0, await model.embed(sequences(2, 9, 2))));
    const r = (await import('./random-orthogonal.js')).randomOrthogonal(n, 3).data;
    const gradient = new Float64Array(n * n);
    const loss = await rotationBlockLoss(problem, r, [0, 1], { hidden: n, backend, onlineHadamard: true }, gradient);
    expect(loss).toBeLessThan(1e-9);
    expect(Math.max(...Array.from(gradient, Math.abs))).toBeLessThan(1e-4);
    // With int4 weights and int4 inputs the same rotation has an error, and a gradient.
    const quantized = { hidden: n, backend, onlineHadamard: true, weights: { format: parseFormat('int4'), granularity: { type: 'channel' as const } }, activations: int4PerToken };
    gradient.fill(0);
    expect(await rotationBlockLoss(problem, r, [0, 1], quantized, gradient)).toBeGreaterThan(1e-3);
    expect(Math.max(...Array.from(gradient, Math.abs))).toBeGreaterThan(1e-3);
  });
});

describe('learnRotation on the tiny llama3 checkpoint', () => {
  it('keeps the logits (1e-4), folds an orthogonal R with the online Hadamard, and lowers the held-out W4A4 loss', async () => {
    const graph = await llama3();
    const prompts = sequences(2, 11, 9);
    const before = (await graph.forward(prompts)).data.slice();
    const model = llamaQuantizableModel(graph);
    const calibration = sequences(10, 24, 4);
    const progress: number[] = [];
    const result = await learnRotation(model, calibration, {
      iterations: 30,
      learningRate: 20,
      blocksPerIteration: 2,
      batchSize: 2,
      validateEvery: 10,
      activations: int4PerToken,
      backend,
      progress: (done) => progress.push(done),
    });
    expect(result.warnings).toEqual([]);
    expect(progress.at(-1)).toBe(30);
    const { diff, scale } = maxAbsDifference((await graph.forward(prompts)).data, before);
    expect(diff / scale).toBeLessThan(1e-4);
    expect(orthogonalityError(result.rotation.data, model.hiddenSize)).toBeLessThan(1e-6);
    for (const block of graph.blocks) expect(block.mlp!.downProj.inputTransform?.name).toBe('hadamard');
    expect(result.trainingLoss).toHaveLength(30);
    const v = result.validationLoss!;
    expect(v.history.map((h) => h.iteration)).toEqual([0, 10, 20, 30]);
    // The held-out loss of R0 comes first; the kept rotation is the best of the evaluated ones and beats R0.
    expect(v.initial).toBe(v.history[0]!.loss);
    expect(v.final).toBe(Math.min(...v.history.map((h) => h.loss)));
    expect(v.final).toBeLessThan(v.initial);
  });

  it('with 0 iterations folds the same model as the rotation step with the same seed (the start is its Hadamard)', async () => {
    const a = await llama3();
    const b = await llama3();
    await learnRotation(llamaQuantizableModel(a), sequences(4, 8, 5), { iterations: 0, validationSequences: 0, seed: 3, backend });
    await applying(hadamardRotation({ seed: 3, backend })).run({ layers: [], statistics: () => ({ tokens: 0 }), model: llamaQuantizableModel(b) });
    const la = llamaQuantizableModel(a);
    const lb = llamaQuantizableModel(b);
    const pairs = [[la.embedding, lb.embedding], [la.lmHead.weight, lb.lmHead.weight], ...la.blocks.flatMap((block, i) => block.linears.map((l, j) => [l.weight, lb.blocks[i]!.linears[j]!.weight]))];
    for (const [x, y] of pairs) expect(maxAbsDifference(x!.data, y!.data).diff).toBeLessThan(1e-5);
    expect(a.blocks[0]!.mlp!.downProj.inputTransform?.describe()).toEqual(b.blocks[0]!.mlp!.downProj.inputTransform?.describe());
  });

  it('refuses models it cannot rotate or differentiate before any write, with what is wrong', async () => {
    for (const [name, kind, message] of [
      ['gemma2', InvalidArgumentError, /residual add/],
      ['qwen3', UnsupportedFormatError, /computes Llama blocks; qwen3/],
      ['qwen2-moe', UnsupportedFormatError, /computes Llama blocks; qwen2_moe/],
    ] as const) {
      const model = llamaQuantizableModel(await loadLlamaGraph(join(FIXTURES, name), { backend }));
      const embedding = model.embedding;
      const error = await learnRotation(model, sequences(4, 8, 6), { backend }).catch((e: unknown) => e);
      expect(kind.isInstance(error), `${name}: ${String(error)}`).toBe(true);
      expect(String(error)).toMatch(message);
      expect(model.embedding).toBe(embedding);
    }
    const model = llamaQuantizableModel(await llama3());
    await expect(learnRotation(model, sequences(3, 8, 6), { sequences: 4, backend })).rejects.toThrow(/has 3 sequences; the learned rotation trains on 4 and holds out 0/);
    const { embedding, hiddenSize, mapping, blocks, finalNorm, lmHead, tiedEmbeddings, architecture } = model;
    const notDifferentiable = { embedding, hiddenSize, mapping, blocks, finalNorm, lmHead, tiedEmbeddings, architecture, untieEmbeddings: () => undefined };
    await expect(learnRotation(notDifferentiable, sequences(4, 8, 6), { backend })).rejects.toThrow(/offers no block gradients/);
  });
});

describe('the learned-rotation step', () => {
  it('reads the recipe options, takes the calibration and the input scheme from the runner, and checks its options', async () => {
    const step = learnedRotationStep.create(learnedRotationStep.options.parse({ iterations: 2, bits: 4, groupSize: 128, validationSequences: 0 }));
    expect(step.scope).toBe('model');
    expect(() => learnedRotationStep.options.parse({ iterations: -1 })).toThrow();
    expect(() => learnedRotationStep.options.parse({ onlineHadamard: 'all' })).toThrow();
    expect(() => learnedRotation({ momentum: 1 })).toThrow(/momentum/);
    const graph = await llama3();
    const model = llamaQuantizableModel(graph);
    await expect(step.run({ layers: [], statistics: () => ({ tokens: 0 }), model })).rejects.toThrow(/learns from calibration sequences/);
    const result = await applying(step).run({ layers: [], statistics: () => ({ tokens: 0 }), model, calibration: sequences(3, 8, 8), inputActivations: { ...int4PerToken, dynamic: false } });
    expect(result.warnings.map((w) => w.message)).toEqual([expect.stringMatching(/static token input scheme is optimised for as its dynamic counterpart/)]);
    expect(graph.blocks[1]!.mlp!.downProj.inputTransform?.name).toBe('hadamard');
  });
});
