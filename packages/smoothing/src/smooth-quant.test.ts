import { InvalidArgumentError, applyingResults } from '@bitsmith/core';
import { describe, expect, it } from 'vitest';
import { weightColumnAbsMax } from './channel-statistics.js';
import { foldInputScales } from './fold-scales.js';
import { smoothQuant } from './smooth-quant.js';
import { smoothQuantPlus } from './smooth-quant-plus.js';
import { smoothQuantScales } from './smooth-quant-scales.js';
import { backend, contextFor, forwardPaths, maxRelativeDifference, outlierInputs, syntheticBlock } from './synthetic-block.test-support.js';

/** Runs a step and applies its result to the block or model it ran on, as the runner does (step contract v2). */
const applying = applyingResults;

function setup() {
  const sb = syntheticBlock(7);
  const x = outlierInputs(70, 128, 64);
  const attended = outlierInputs(71, 128, 64, [], 1);
  return { sb, x, attended, reference: forwardPaths(sb, x, attended) };
}

describe('smoothQuant', () => {
  it('alpha 0.5 gives s_j^2 = max|X_j| / max|W_j| and equalises max|X_j / s_j| with max|W_j s_j|', async () => {
    const { sb, x, attended, reference } = setup();
    const q = sb.linear('q_proj');
    const group = [sb.linear('q_proj'), sb.linear('k_proj'), sb.linear('v_proj')];
    const xMax = reference.inputs.get(q.name)!;
    const cols = 64;
    const actMax = new Float32Array(cols);
    for (let i = 0; i < xMax.data.length; i++) actMax[i % cols] = Math.max(actMax[i % cols]!, Math.abs(xMax.data[i]!));
    const wMax = weightColumnAbsMax(group.map((l) => l.weight));
    const normBefore = sb.norms[0]!.weight;
    const step = smoothQuant({ alpha: 0.5 });
    expect(step.requires).toEqual([{ kind: 'input-absmax' }]);
    const result = await applying(step).run(contextFor(sb, reference.inputs));
    expect(result.warnings).toEqual([]);
    const wMaxAfter = weightColumnAbsMax(group.map((l) => l.weight));
    for (let j = 0; j < cols; j++) {
      const s = normBefore[j]! / sb.norms[0]!.weight[j]!; // the folded scale
      expect(s * s).toBeCloseTo(actMax[j]! / wMax[j]!, 4);
      expect(Math.abs(actMax[j]! / s - wMaxAfter[j]!) / wMaxAfter[j]!).toBeLessThan(1e-5);
    }
    // The float model is unchanged.
    const after = forwardPaths(sb, x, attended);
    for (const kind of ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj']) {
      const name = sb.linear(kind).name;
      expect(maxRelativeDifference(reference.outputs.get(name)!.data, after.outputs.get(name)!.data), kind).toBeLessThan(1e-5);
    }
  });

  it('skips a group whose linear has a run-time input transform (an online Hadamard), and folding into it throws', async () => {
    const { sb, reference } = setup();
    const down = sb.linear('down_proj');
    const up = sb.linear('up_proj');
    down.inputTransform = { name: 'hadamard', apply: () => undefined, describe: () => ({ kind: 'hadamard' }) };
    const downBefore = down.weight;
    const upBefore = up.weight;
    const result = await applying(smoothQuant({ alpha: 0.5 })).run(contextFor(sb, reference.inputs));
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]!.layer).toBe(down.name);
    expect(result.warnings[0]!.message).toMatch(/run-time input transform \(hadamard\)/);
    // down_proj's group (producer: up_proj) is untouched; gate/up's own group (producer: the norm) may be scaled.
    expect(down.weight).toBe(downBefore);
    expect(up.weight).not.toBe(upBefore); // columns scaled by the norm group's fold, rows not divided by down's
    const downGroup = sb.block.inputGroups[3]!;
    expect(() => foldInputScales(downGroup, new Float32Array(128).fill(2))).toThrow(/down_proj has a run-time input transform/);
  });

  it('smoothQuantScales: alpha 1 moves the whole activation range, zeros give 1', () => {
    const s = smoothQuantScales(new Float32Array([4, 0, 9]), new Float32Array([1, 2, 0]), 1);
    expect(Array.from(s)).toEqual([4, 1, 1]);
    expect(Array.from(smoothQuantScales(new Float32Array([4, 9]), new Float32Array([1, 4]), 0.5))).toEqual([2, 1.5]);
  });

  it('rejects alpha outside [0, 1] naming alpha', () => {
    for (const alpha of [-0.1, 1.5, Number.NaN]) {
      expect(() => smoothQuant({ alpha })).toThrow(InvalidArgumentError);
      try {
        smoothQuant({ alpha });
      } catch (e) {
        expect((e as InvalidArgumentError).argument).toBe('alpha');
      }
    }
  });
});

describe('smoothQuantPlus', () => {
  it('with alphas [0.5] and no identity reproduces smoothQuant(0.5); the float model is unchanged', async () => {
    const a = setup();
    const b = setup();
    await applying(smoothQuant({ alpha: 0.5 })).run(contextFor(a.sb, a.reference.inputs));
    const step = smoothQuantPlus({ format: 'int4', granularity: { type: 'group', size: 32 }, alphas: [0.5], includeIdentity: false, backend });
    expect(step.requires).toEqual([{ kind: 'inputs', maxTokens: 4096 }]);
    await applying(step).run(contextFor(b.sb, b.reference.inputs));
    a.sb.block.linears.forEach((l, i) => expect(b.sb.block.linears[i]!.weight.data).toEqual(l.weight.data));
    const after = forwardPaths(b.sb, b.x, b.attended);
    const name = b.sb.linear('down_proj').name;
    expect(maxRelativeDifference(b.reference.outputs.get(name)!.data, after.outputs.get(name)!.data)).toBeLessThan(1e-5);
  });

  it.each([
    [{ format: 'int4', alphas: [] }, 'alphas'],
    [{ format: 'int4', alphas: [2] }, 'alphas[0]'],
    [{ alphas: [0.5] }, 'format'],
    [{ format: 'int4', maxTokens: 0 }, 'maxTokens'],
    [{ format: 'int4', includeIdentity: 1 }, 'includeIdentity'],
  ])('rejects %j naming %s', (options, argument) => {
    let error: unknown;
    try {
      smoothQuantPlus(options as never);
    } catch (e) {
      error = e;
    }
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as InvalidArgumentError).argument).toBe(argument);
  });
});
