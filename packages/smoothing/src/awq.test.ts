import { AbortError, InvalidArgumentError, resolveLayerScheme, rtn, type LayerState, type Matrix, applyingResults } from '@bitsmith/core';
import { describe, expect, it } from 'vitest';
import { awq } from './awq.js';
import { awqScales } from './awq-scales.js';
import {
  backend,
  contextFor,
  forwardPaths,
  maxRelativeDifference,
  outlierInputs,
  squaredError,
  syntheticBlock,
  type SyntheticBlock,
} from './synthetic-block.test-support.js';

/** Runs a step and applies its result to the block or model it ran on, as the runner does (step contract v2). */
const applying = applyingResults;

const TOKENS = 256;
const COMPARED = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj'];

function setup(seed = 1): { sb: SyntheticBlock; x: Matrix; attended: Matrix; reference: ReturnType<typeof forwardPaths> } {
  const sb = syntheticBlock(seed);
  const x = outlierInputs(seed + 100, TOKENS, 64);
  const attended = outlierInputs(seed + 200, TOKENS, 64, [5], 3);
  return { sb, x, attended, reference: forwardPaths(sb, x, attended) };
}

/** Quantizes the context's layers with RTN and returns the summed squared output error of the whole path. */
async function quantizedPathError(sb: SyntheticBlock, x: Matrix, attended: Matrix, reference: ReturnType<typeof forwardPaths>, layers: readonly LayerState[], format: string): Promise<number> {
  const { layers: quantized } = await rtn({ format, granularity: { type: 'group', size: 32 } }).run({ layers, statistics: () => ({ tokens: 0 }) });
  const weights = new Map(quantized.map((l) => [l.name, l.weight]));
  const q = forwardPaths(sb, x, attended, weights);
  let error = 0;
  for (const kind of COMPARED) {
    const name = sb.linear(kind).name;
    error += squaredError(reference.outputs.get(name)!.data, q.outputs.get(name)!.data);
  }
  return error;
}

describe('awq', () => {
  it('declares an inputs request and the transform kind', () => {
    const step = awq({ format: 'int4' });
    expect(step.id).toBe('awq');
    expect(step.kind).toBe('transform');
    expect(step.scope).toBe('layer');
    expect(step.requires).toEqual([{ kind: 'inputs', maxTokens: 4096 }]);
    expect(awq({ format: 'int4', maxTokens: 128 }).requires).toEqual([{ kind: 'inputs', maxTokens: 128 }]);
  });

  it('scaling alone (clip off) leaves the float outputs of every group path unchanged', async () => {
    const { sb, x, attended, reference } = setup();
    const before = new Map(sb.block.linears.map((l) => [l.name, l.weight]));
    const normsBefore = sb.norms.map((n) => n.weight);
    const result = await applying(awq({ format: 'int3', granularity: { type: 'group', size: 32 }, clipSearch: false, backend })).run(contextFor(sb, reference.inputs));
    const after = forwardPaths(sb, x, attended);
    for (const kind of COMPARED) {
      const name = sb.linear(kind).name;
      expect(maxRelativeDifference(reference.outputs.get(name)!.data, after.outputs.get(name)!.data), kind).toBeLessThan(1e-5);
    }
    // Scaled: q/k/v, gate/up (and up's rows), down; o_proj ('none' producer) untouched; both norms changed.
    for (const kind of ['q_proj', 'k_proj', 'v_proj', 'gate_proj', 'up_proj', 'down_proj']) expect(sb.linear(kind).weight).not.toBe(before.get(sb.linear(kind).name));
    expect(sb.linear('o_proj').weight).toBe(before.get(sb.linear('o_proj').name));
    sb.norms.forEach((n, i) => expect(n.weight).not.toBe(normsBefore[i]));
    // The returned states are the views' weights; the old arrays were never written.
    for (const state of result.layers) expect(state.weight).toBe(sb.block.linears.find((l) => l.name === state.name)!.weight);
    for (const [name, w] of before) expect(w.data).toEqual(forwardPathsWeights(name, setup().sb));
    expect(result.warnings).toEqual([]);
  });

  it.each(['int3', 'int4'])('lowers the quantized output error of RTN %s g32 on inputs with outlier channels', async (format) => {
    const plain = setup();
    const rtnError = await quantizedPathError(plain.sb, plain.x, plain.attended, plain.reference, plain.sb.block.linears.map((l) => ({ name: l.name, weight: l.weight })), format);
    const errors: number[] = [];
    for (const clipSearch of [false, true]) {
      const s = setup();
      const { layers } = await applying(awq({ format, granularity: { type: 'group', size: 32 }, clipSearch, backend })).run(contextFor(s.sb, s.reference.inputs));
      errors.push(await quantizedPathError(s.sb, s.x, s.attended, s.reference, layers, format));
    }
    console.log(`${format} g32 path squared error: rtn ${rtnError.toExponential(3)}, awq scales ${errors[0]!.toExponential(3)}, awq scales+clip ${errors[1]!.toExponential(3)}`);
    expect(errors[0]).toBeLessThan(rtnError);
    expect(errors[1]).toBeLessThan(rtnError);
  });

  it('alpha = 0 without duo scaling gives all-ones scales (weights and norms unchanged)', async () => {
    expect(Array.from(awqScales(new Float32Array([0.1, 5, 30, 2]), undefined, 0, false))).toEqual([1, 1, 1, 1]);
    const { sb, reference } = setup();
    const before = sb.block.linears.map((l) => Array.from(l.weight.data));
    const normsBefore = sb.norms.map((n) => Array.from(n.weight));
    await applying(awq({ format: 'int4', grid: 1, duoScaling: false, clipSearch: false, backend })).run(contextFor(sb, reference.inputs));
    sb.block.linears.forEach((l, i) => expect(Array.from(l.weight.data)).toEqual(before[i]));
    sb.norms.forEach((n, i) => expect(Array.from(n.weight)).toEqual(normsBefore[i]));
  });

  it('clips every selected linear except q_proj and k_proj, never beyond the shrink floor', async () => {
    const { sb, reference } = setup();
    const before = new Map(sb.block.linears.map((l) => [l.kind, l.weight]));
    await applying(awq({ format: 'int3', granularity: { type: 'group', size: 32 }, grid: 1, duoScaling: false, backend })).run(contextFor(sb, reference.inputs));
    expect(sb.linear('q_proj').weight).toBe(before.get('q_proj'));
    expect(sb.linear('k_proj').weight).toBe(before.get('k_proj'));
    let clipped = 0;
    for (const kind of ['v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']) {
      const a = before.get(kind)!.data;
      const b = sb.linear(kind).weight.data;
      for (let i = 0; i < a.length; i++) {
        expect(Math.abs(b[i]!)).toBeLessThanOrEqual(Math.abs(a[i]!));
        if (b[i] !== a[i]) clipped++;
      }
    }
    expect(clipped).toBeGreaterThan(0);
  });

  it('warns when the scheme the runner resolved for a layer (context.scheme) differs from the one it searched for, and not when it agrees', async () => {
    const { sb, reference } = setup();
    const group32 = { type: 'group', size: 32 } as const;
    const int3 = resolveLayerScheme({ format: 'int3', granularity: group32 });
    const int4 = resolveLayerScheme({ format: 'int4', granularity: group32 });
    const step = awq({ format: 'int4', granularity: group32, clipSearch: false, grid: 2, backend });
    const mismatch = await step.run(contextFor(sb, reference.inputs, { scheme: (name) => (name.endsWith('down_proj') ? int3 : int4) }));
    const warnings = mismatch.warnings.filter((w) => w.message.includes('searched its scales for'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.layer).toMatch(/down_proj$/);
    expect(warnings[0]!.message).toMatch(/uses \{"type":"int","bits":3/);
    const agree = await step.run(contextFor(sb, reference.inputs, { scheme: () => int4 }));
    expect(agree.warnings.filter((w) => w.message.includes('searched its scales for'))).toEqual([]);
  });

  it('skips a partially selected group with a warning, and reports progress', async () => {
    const { sb, reference } = setup();
    const names = sb.block.linears.filter((l) => l.kind !== 'k_proj').map((l) => l.name);
    const q = sb.linear('q_proj').weight;
    const progress: number[] = [];
    const result = await applying(awq({ format: 'int4', granularity: { type: 'group', size: 32 }, clipSearch: false, backend })).run(
      contextFor(sb, reference.inputs, { progress: (done) => progress.push(done) }, names),
    );
    expect(sb.linear('q_proj').weight).toBe(q);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]!.message).toContain('k_proj');
    expect(result.layers.map((l) => l.name)).toEqual(names);
    expect(progress).toEqual([1, 2]);
  });

  it('warns instead of failing when a group has no captured inputs', async () => {
    const { sb } = setup();
    const result = await applying(awq({ format: 'int4', clipSearch: false, backend })).run(contextFor(sb, new Map()));
    expect(result.warnings.length).toBe(3);
    expect(result.warnings.every((w) => w.step === 'awq' && w.layer !== undefined)).toBe(true);
  });

  it('throws AbortError when the signal is aborted', async () => {
    const { sb, reference } = setup();
    const controller = new AbortController();
    controller.abort();
    await expect(awq({ format: 'int4', backend }).run(contextFor(sb, reference.inputs, { signal: controller.signal }))).rejects.toSatisfy(AbortError.isInstance);
  });

  it.each([
    [{ format: 'int9' }, 'format'],
    [{}, 'format'],
    [{ format: 'int4', grid: 0 }, 'grid'],
    [{ format: 'int4', grid: 2.5 }, 'grid'],
    [{ format: 'int4', maxTokens: -1 }, 'maxTokens'],
    [{ format: 'int4', clipSearch: { minShrink: 1.5 } }, 'clipSearch.minShrink'],
    [{ format: 'int4', clipSearch: { steps: 0 } }, 'clipSearch.steps'],
    [{ format: 'int4', clipSearch: { maxTokens: 0 } }, 'clipSearch.maxTokens'],
    [{ format: 'int4', duoScaling: 'yes' }, 'duoScaling'],
    [{ format: 'int4', clipSkip: 'q_proj' }, 'clipSkip'],
  ])('rejects bad options %j naming %s', (options, argument) => {
    let error: unknown;
    try {
      awq(options as never);
    } catch (e) {
      error = e;
    }
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as InvalidArgumentError).argument).toBe(argument);
  });
});

/** The original weight data of a linear of a freshly built block with the same seed. */
function forwardPathsWeights(name: string, fresh: SyntheticBlock): Float32Array {
  return fresh.block.linears.find((l) => l.name === name)!.weight.data;
}
