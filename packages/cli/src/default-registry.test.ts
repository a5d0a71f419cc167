import { parseRecipe } from '@bitsmith/recipe';
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
