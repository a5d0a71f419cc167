import { rtn } from '@bitsmith/core';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { parseRecipe, RecipeFileError } from './recipe-file.js';
import { matchesAny } from './selector.js';
import { defineStep, quantizationOptions, resolveQuantization, type StepRegistry } from '@bitsmith/core';

const registry: StepRegistry = {
  rtn: defineStep({
    description: 'round to nearest',
    options: quantizationOptions.extend({ rangeSearch: z.boolean().optional() }),
    create: (o) => rtn({ ...resolveQuantization(o), rangeSearch: o.rangeSearch ?? false }),
  }),
};

describe('recipe files', () => {
  it('parses YAML and JSON into stages with selections and overrides', () => {
    const yaml = `
name: rtn-w4g32
ignore: [lm_head]
steps:
  - rtn:
      bits: 4
      groupSize: 32
      targets: ["re:.*mlp.*"]
      overrides:
        - targets: [down_proj]
          bits: 8
`;
    const recipe = parseRecipe(yaml, registry, 'r.yaml');
    expect(recipe.name).toBe('rtn-w4g32');
    expect(recipe.ignore).toEqual(['lm_head']);
    expect(recipe.stages).toHaveLength(1);
    expect(recipe.stages[0]!.targets).toEqual(['re:.*mlp.*']);
    expect(recipe.stages[0]!.overrides![0]!.targets).toEqual(['down_proj']);
    expect(recipe.stages[0]!.step.id).toBe('rtn');
    const json = parseRecipe(JSON.stringify({ steps: [{ rtn: { format: 'nf4', groupSize: 64 } }] }), registry, 'r.json');
    expect(json.stages[0]!.step.kind).toBe('quantize');
  });

  it('names the file, the step and the field, and what is allowed', () => {
    const bad = (text: string) => {
      try {
        parseRecipe(text, registry, 'recipes/bad.yaml');
      } catch (e) {
        expect(RecipeFileError.isInstance(e)).toBe(true);
        return (e as Error).message;
      }
      throw new Error('expected an error');
    };
    expect(bad('steps:\n  - rtn: { bits: 4, groupSize: -3 }')).toMatch(/^recipes\/bad\.yaml: steps\[0\] \(rtn\): groupSize: .*/);
    expect(bad('steps:\n  - rtn: { bitz: 4 }')).toMatch(/steps\[0\] \(rtn\): .*bitz/);
    expect(bad('steps:\n  - rtn: { format: int9 }')).toMatch(/format: unknown format/);
    expect(bad('steps:\n  - gptqq: { bits: 4 }')).toMatch(/steps\[0\]: unknown step 'gptqq'; available: rtn/);
    expect(bad('steps: []')).toMatch(/steps/);
    expect(bad('steps:\n  - rtn: { bits: 4, targets: ["re:(unclosed"] }')).toMatch(/targets: .*not a valid regular expression/);
    expect(bad('steps:\n  - rtn: { bits: 4, format: int4 }')).toMatch(/either bits or format/);
    expect(bad('steps: [ {')).toMatch(/not valid YAML or JSON/);
  });

  it('selectors match exact names, dotted suffixes and whole-name regular expressions', () => {
    expect(matchesAny('model.layers.0.mlp.down_proj', ['down_proj'])).toBe(true);
    expect(matchesAny('model.layers.0.mlp.down_proj', ['mlp.down_proj'])).toBe(true);
    expect(matchesAny('model.layers.0.mlp.down_proj', ['own_proj'])).toBe(false);
    expect(matchesAny('model.layers.0.mlp.down_proj', ['re:.*down.*'])).toBe(true);
    expect(matchesAny('model.layers.0.mlp.down_proj', ['re:down.*'])).toBe(false);
  });
});
