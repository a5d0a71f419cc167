import { bitAllocation } from '@bitsmith/allocate';
import { squeezeLlm, vectorQuantize } from '@bitsmith/codebook';
import { InvalidArgumentError, llmInt8, rtn } from '@bitsmith/core';
import { autoRound, learnableWeightClipping } from '@bitsmith/learned';
import { eora, lorc, lqer, lqLora, svdQuant } from '@bitsmith/lowrank';
import { parseRecipe } from '@bitsmith/recipe';
import { hadamardRotation, learnedRotation } from '@bitsmith/rotation';
import { awq, outlierSuppressionPlus, smoothQuant, smoothQuantPlus } from '@bitsmith/smoothing';
import { gptaq, gptq, hqq, quantEase } from '@bitsmith/solvers';
import { describe, expect, it } from 'vitest';
import { defaultRegistry } from './default-registry.js';

describe('defaultRegistry options', () => {
  it('reaches GPTQ maxDampening and AWQ clipSkip from a recipe file, and rejects them mistyped', () => {
    const recipe = parseRecipe('steps:\n  - awq: { bits: 4, groupSize: 32, clipSkip: [q_proj, k_proj, v_proj] }\n  - gptq: { bits: 4, groupSize: 32, maxDampening: 1 }\n', defaultRegistry, 'r.yaml');
    expect(recipe.stages.map((s) => s.step.id)).toEqual(['awq', 'gptq']);
    expect(() => parseRecipe('steps:\n  - gptq: { bits: 4, maxDampening: -1 }\n', defaultRegistry, 'r.yaml')).toThrow(/maxDampening/);
    expect(() => parseRecipe('steps:\n  - awq: { bits: 4, clipSkip: q_proj }\n', defaultRegistry, 'r.yaml')).toThrow(/clipSkip/);
  });

  it('declares the stored kinds of every quantize and compensate step, so exporters can refuse a recipe before it runs', () => {
    const kinds = Object.fromEntries(
      ['rtn', 'gptq', 'quantease', 'hqq', 'squeezellm', 'vq', 'lorc', 'svdquant', 'lqlora'].map((name) => {
        const options: Record<string, unknown> = { squeezellm: { bits: 3 }, vq: { dimension: 2, codebookBits: 4 }, lorc: { rank: 4 }, hqq: { bits: 4 }, svdquant: { bits: 3, rank: 4 }, lqlora: { bits: 3, rank: 4 } };
        return [name, defaultRegistry[name]!.create(defaultRegistry[name]!.options.parse(options[name] ?? { bits: 4 })).stores];
      }),
    );
    expect(kinds).toEqual({ rtn: ['grid'], gptq: ['grid'], quantease: ['grid'], hqq: ['grid'], squeezellm: ['lut'], vq: ['codebook'], lorc: ['low-rank'], svdquant: ['low-rank'], lqlora: ['low-rank'] });
  });
});

describe('a wrong option reads the same from a recipe file and from code', () => {
  /** The loader's words for the one problem of a step's options: what follows `steps[0] (name): `. */
  function fileIssue(step: string, options: string): string {
    try {
      parseRecipe(`steps:\n  - ${step}: ${options}\n`, defaultRegistry, 'r.yaml');
    } catch (e) {
      const message = (e as Error).message;
      const marker = `steps[0] (${step}): `;
      expect(message).toContain(marker);
      return message.slice(message.indexOf(marker) + marker.length);
    }
    throw new Error(`the recipe file accepted ${step}: ${options}`);
  }

  function codeIssue(call: () => unknown): string {
    try {
      call();
    } catch (e) {
      expect(InvalidArgumentError.isInstance(e)).toBe(true);
      return (e as Error).message;
    }
    throw new Error('the factory accepted the options');
  }

  const o = (options: Record<string, unknown>) => options as never;
  // [step in a file, its options in YAML, the same mistake in code, the factory's name]
  const cases: Array<[string, string, () => unknown, string]> = [
    ['rtn', '{ bits: 4, rangeSearch: { minShrink: 2 } }', () => rtn({ format: 'int4', rangeSearch: { minShrink: 2 } }), 'rtn'],
    ['rtn', '{ bits: 4, rangeSearch: { step: 5 } }', () => rtn(o({ format: 'int4', rangeSearch: { step: 5 } })), 'rtn'],
    ['rtn', '{ format: int9 }', () => rtn({ format: 'int9' }), 'rtn'],
    ['gptq', '{ bits: 4, dampening: -1 }', () => gptq({ format: 'int4', dampening: -1 }), 'gptq'],
    ['gptq', '{ bits: 4, actOrder: "yes" }', () => gptq(o({ format: 'int4', actOrder: 'yes' })), 'gptq'],
    ['gptaq', '{ bits: 4, alpha: 2 }', () => gptaq({ format: 'int4', alpha: 2 }), 'gptaq'],
    ['hqq', '{ bits: 4, zeroPoint: half }', () => hqq(o({ bits: 4, zeroPoint: 'half' })), 'hqq'],
    ['quantease', '{ bits: 3, passes: 2.5 }', () => quantEase({ format: 'int3', passes: 2.5 }), 'quantEase'],
    ['awq', '{ bits: 4, clipSearch: { minShrink: 0 } }', () => awq({ format: 'int4', clipSearch: { minShrink: 0 } }), 'awq'],
    ['smoothquant', '{ alpha: 1.5 }', () => smoothQuant({ alpha: 1.5 }), 'smoothQuant'],
    ['smoothquant-plus', '{ bits: 4, alphas: [0.5, 2] }', () => smoothQuantPlus({ format: 'int4', alphas: [0.5, 2] }), 'smoothQuantPlus'],
    ['outlier-suppression-plus', '{ bits: 8, candidates: 0 }', () => outlierSuppressionPlus({ format: 'int8', candidates: 0 }), 'outlierSuppressionPlus'],
    ['llm-int8', '{ threshold: -1 }', () => llmInt8({ threshold: -1 }), 'llmInt8'],
    ['rotation', '{ rotation: givens }', () => hadamardRotation(o({ rotation: 'givens' })), 'hadamardRotation'],
    ['learned-rotation', '{ momentum: 1 }', () => learnedRotation({ momentum: 1 }), 'learnedRotation'],
    ['squeezellm', '{ bits: 3, outlierFraction: 0.9 }', () => squeezeLlm({ bits: 3, outlierFraction: 0.9 }), 'squeezeLlm'],
    ['vq', '{ dimension: 2, codebookBits: 20 }', () => vectorQuantize({ dimension: 2, codebookBits: 20 }), 'vectorQuantize'],
    ['lorc', '{ rank: 0 }', () => lorc({ rank: 0 }), 'lorc'],
    ['lqer', '{ rank: 4, svd: { method: qr } }', () => lqer(o({ rank: 4, svd: { method: 'qr' } })), 'lqer'],
    ['eora', '{ rank: 4, dampening: -1 }', () => eora({ rank: 4, dampening: -1 }), 'eora'],
    ['svdquant', '{ bits: 4, rank: 2.5 }', () => svdQuant({ format: 'int4', rank: 2.5 }), 'svdQuant'],
    ['lqlora', '{ bits: 3, rank: 4, iterations: 0 }', () => lqLora({ format: 'int3', rank: 4, iterations: 0 }), 'lqLora'],
    ['autoround', '{ bits: 4, optimizer: sgd }', () => autoRound(o({ format: 'int4', optimizer: 'sgd' })), 'autoRound'],
    ['lwc', '{ bits: 3, batchSize: 0 }', () => learnableWeightClipping({ format: 'int3', batchSize: 0 }), 'learnableWeightClipping'],
    ['bit-allocation', '{ candidates: [int3], allocator: best }', () => bitAllocation(o({ candidates: [{ format: 'int3' }], allocator: 'best' })), 'bitAllocation'],
  ];

  it.each(cases)('%s %s', (step, options, call, factory) => {
    const fromFile = fileIssue(step, options);
    expect(codeIssue(call)).toBe(`${fromFile} (in the options of ${factory})`);
  });
});
