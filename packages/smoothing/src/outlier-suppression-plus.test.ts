import { channelShift, dequantize, fakeQuantizeActivations, InvalidArgumentError, parseFormat, quantize, type Matrix, applyingResults } from '@bitsmith/core';
import { describe, expect, it } from 'vitest';
import { channelShiftAndRange, outlierSuppressionPlus, outlierSuppressionScales, outlierThresholds } from './outlier-suppression-plus.js';
import { contextFor, forwardPaths, linearForward, maxRelativeDifference, outlierInputs, squaredError, syntheticBlock } from './synthetic-block.test-support.js';

/** Runs a step and applies its result to the block or model it ran on, as the runner does (step contract v2). */
const applying = applyingResults;

/** Inputs with outlier channels that are also off-centre (asymmetric), the case OS+'s shift is for. */
function asymmetricOutliers(seed: number, tokens: number, hidden: number): Matrix {
  const x = outlierInputs(seed, tokens, hidden, [3, 17, 40], 10);
  for (let t = 0; t < tokens; t++) {
    x.data[t * hidden + 5] = Math.abs(x.data[t * hidden + 5]!) * 20 + 40; // a channel far from zero, one-sided
    x.data[t * hidden + 17] = x.data[t * hidden + 17]! + 100;
  }
  return x;
}

/** The quantized output error of a group of linears on inputs x, brute force: Q_a(x) Q_w(W)^T against x_float W^T. */
function quantizedGroupError(x: Matrix, weights: readonly Matrix[], bias: readonly (Float32Array | undefined)[], reference: readonly Matrix[], shift?: Float32Array): number {
  const data = x.data.slice();
  if (shift) channelShift(shift).apply(data, x.shape[0], x.shape[1]);
  fakeQuantizeActivations(data, x.shape[0], x.shape[1], { format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: true });
  let e = 0;
  weights.forEach((w, i) => {
    const q = dequantize(quantize(w, { format: parseFormat('int8'), granularity: { type: 'channel' }, scaleEncoding: 'float16' }));
    e += squaredError(linearForward({ dtype: 'float32', shape: x.shape, data }, q, bias[i]).data, reference[i]!.data);
  });
  return e;
}

describe('Outlier Suppression+ (arXiv:2304.09145)', () => {
  it('shift and half-range per channel equal (max + min) / 2 and (max - min) / 2 (brute force)', () => {
    const x = asymmetricOutliers(3, 50, 64);
    const { shift, range } = channelShiftAndRange(x);
    for (const j of [0, 5, 17, 40, 63]) {
      const column = Array.from({ length: 50 }, (_, t) => x.data[t * 64 + j]!);
      expect(shift[j]).toBe(Math.fround((Math.max(...column) + Math.min(...column)) / 2));
      expect(range[j]).toBe(Math.fround((Math.max(...column) - Math.min(...column)) / 2));
    }
    // s_j = max(1, range_j / t); thresholds run from the largest half-range (s = 1 everywhere) down to the median.
    const t = outlierThresholds(range, 5);
    expect(t[0]).toBe(Math.max(...range));
    expect(Array.from(outlierSuppressionScales(range, t[0]!)).every((s) => s === 1)).toBe(true);
    const s = outlierSuppressionScales(range, 2);
    for (let j = 0; j < 64; j++) expect(s[j]).toBe(Math.fround(Math.max(1, range[j]! / 2)));
  });

  it('leaves the float block unchanged (shift as a run-time transform plus a bias W z, scale folded) and lowers the W8A8 error', async () => {
    const sb = syntheticBlock(11);
    const x = asymmetricOutliers(12, 256, 64);
    const attended = outlierInputs(13, 256, 64, [], 1);
    const before = forwardPaths(sb, x, attended);
    const qkv = ['q_proj', 'k_proj', 'v_proj'].map((k) => sb.linear(k));
    const weightsBefore = qkv.map((l) => l.weight);
    const errorBefore = quantizedGroupError(before.inputs.get(qkv[0]!.name)!, weightsBefore, [undefined, undefined, undefined], qkv.map((l) => before.outputs.get(l.name)!));
    const step = outlierSuppressionPlus({ format: 'int8', activations: { format: 'int8', granularity: 'tensor' }, candidates: 12 });
    expect(step.requires).toEqual([{ kind: 'inputs', maxTokens: 2048 }]);
    const result = await applying(step).run(contextFor(sb, before.inputs));
    expect(result.warnings).toEqual([]);
    // Every group with a producer got a shift and a bias; o_proj (producer none) did not.
    for (const kind of ['q_proj', 'k_proj', 'v_proj', 'gate_proj', 'up_proj', 'down_proj']) {
      expect(sb.linear(kind).inputTransform?.describe().kind, kind).toBe('channel-shift');
      expect(result.layers.find((l) => l.name === sb.linear(kind).name)!.bias, kind).toBeDefined();
    }
    expect(sb.linear('o_proj').inputTransform).toBeUndefined();
    const after = forwardPaths(sb, x, attended);
    // (up_proj's rows carry down_proj's scale by design: its output changes, down_proj's must not.)
    for (const kind of ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj']) {
      const name = sb.linear(kind).name;
      expect(maxRelativeDifference(before.outputs.get(name)!.data, after.outputs.get(name)!.data), kind).toBeLessThan(1e-4);
    }
    // The shift centres q/k/v's inputs: after it, every channel's max + min is 0 (to float rounding).
    const shift = Float32Array.from((sb.linear('q_proj').inputTransform!.describe().shift as number[]));
    const shifted = after.inputs.get(qkv[0]!.name)!.data.slice();
    channelShift(shift).apply(shifted, 256, 64);
    const centred = channelShiftAndRange({ dtype: 'float32', shape: [256, 64], data: shifted });
    for (let j = 0; j < 64; j++) expect(Math.abs(centred.shift[j]!)).toBeLessThan(1e-4 * Math.max(1, centred.range[j]!));
    // W8A8 (int8 per-tensor inputs, int8 per-channel weights) error of the q/k/v group, against the float outputs.
    const errorAfter = quantizedGroupError(after.inputs.get(qkv[0]!.name)!, qkv.map((l) => l.weight), qkv.map((l) => l.bias), qkv.map((l) => before.outputs.get(l.name)!), shift);
    expect(errorAfter).toBeLessThan(errorBefore * 0.5);
  });

  it('the searched threshold is no worse than no scaling (s = 1, the first candidate) on its own objective', async () => {
    const sb = syntheticBlock(21);
    const x = asymmetricOutliers(22, 128, 64);
    const before = forwardPaths(sb, x, outlierInputs(23, 128, 64, [], 1));
    const qkv = ['q_proj', 'k_proj', 'v_proj'].map((k) => sb.linear(k));
    // Shift only: the reference point of the search.
    const shiftOnly = syntheticBlock(21);
    await applying(outlierSuppressionPlus({ format: 'int8', scale: false })).run(contextFor(shiftOnly, before.inputs));
    const so = ['q_proj', 'k_proj', 'v_proj'].map((k) => shiftOnly.linear(k));
    const soShift = Float32Array.from(so[0]!.inputTransform!.describe().shift as number[]);
    const refs = qkv.map((l) => before.outputs.get(l.name)!);
    const soAfter = forwardPaths(shiftOnly, x, outlierInputs(23, 128, 64, [], 1));
    const errorShiftOnly = quantizedGroupError(soAfter.inputs.get(so[0]!.name)!, so.map((l) => l.weight), so.map((l) => l.bias), refs, soShift);
    await applying(outlierSuppressionPlus({ format: 'int8' })).run(contextFor(sb, before.inputs));
    const after = forwardPaths(sb, x, outlierInputs(23, 128, 64, [], 1));
    const shift = Float32Array.from(qkv[0]!.inputTransform!.describe().shift as number[]);
    const errorSearched = quantizedGroupError(after.inputs.get(qkv[0]!.name)!, qkv.map((l) => l.weight), qkv.map((l) => l.bias), refs, shift);
    expect(errorSearched).toBeLessThanOrEqual(errorShiftOnly * (1 + 1e-6));
  });

  it('rejects bad options by name', () => {
    expect(() => outlierSuppressionPlus({} as never)).toThrow(InvalidArgumentError);
    expect(() => outlierSuppressionPlus({ format: 'int8', shift: false, scale: false })).toThrow(/shift and scale are both off/);
    expect(() => outlierSuppressionPlus({ format: 'int8', candidates: 0 })).toThrow(/candidates/);
    expect(() => outlierSuppressionPlus({ format: 'int8', activations: { format: 'int8', granularity: 'channel' as never } })).toThrow(/activations.granularity/);
  });
});
