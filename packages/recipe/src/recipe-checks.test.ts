import { NonFiniteError, rtn, type LayerState, type Matrix, type Quantizer } from '@bitsmith/core';
import { describe, expect, it } from 'vitest';
import { checkRecipeSelection, finiteInputs, RecipeSelectionError, scaleRangeWarning } from './recipe-checks.js';

const LAYERS = ['model.layers.0.self_attn.q_proj', 'model.layers.0.mlp.down_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.mlp.down_proj'];
const step = (id: string, kind: Quantizer['kind']): Quantizer => ({ specificationVersion: 'v2', id, kind, requires: [], run: async (c) => ({ layers: c.layers, warnings: [] }) });
const thrown = (f: () => void): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
};

describe('checkRecipeSelection', () => {
  it('accepts selectors that match and one quantize step per layer (disjoint targets, overrides)', () => {
    expect(() =>
      checkRecipeSelection(
        {
          stages: [
            { step: step('awq', 'transform') },
            { step: step('gptq', 'quantize'), targets: ['re:.*q_proj'], overrides: [{ targets: ['model.layers.1.self_attn.q_proj'], step: step('rtn', 'quantize') }] },
            { step: step('rtn', 'quantize'), targets: ['down_proj'] },
            { step: step('lorc', 'compensate') },
          ],
        },
        LAYERS,
      ),
    ).not.toThrow();
  });

  it('names a targets or ignore selector that matches no layer', () => {
    const e = thrown(() => checkRecipeSelection({ stages: [{ step: step('rtn', 'quantize'), targets: ['re:.*up_proj'] }] }, LAYERS));
    expect(RecipeSelectionError.isInstance(e)).toBe(true);
    expect((e as Error).message).toMatch(/^stages\[0\] \(rtn\)\.targets: selector 're:\.\*up_proj' matches none of the model's 4 linear layers/);
    const e2 = thrown(() => checkRecipeSelection({ ignore: ['up_proj'], stages: [{ step: step('rtn', 'quantize') }] }, LAYERS));
    expect((e2 as Error).message).toMatch(/^ignore: selector 'up_proj' matches none/);
    // The head is never a block linear: ignoring it is always true and accepted.
    expect(() => checkRecipeSelection({ ignore: ['lm_head'], stages: [{ step: step('rtn', 'quantize') }] }, LAYERS)).not.toThrow();
  });

  it('refuses a step whose targets and ignore leave no layer', () => {
    const e = thrown(() => checkRecipeSelection({ stages: [{ step: step('rtn', 'quantize'), targets: ['down_proj'], ignore: ['re:.*mlp.*'] }] }, LAYERS));
    expect((e as Error).message).toMatch(/^stages\[0\] \(rtn\): selects no layer/);
  });

  it('refuses two quantize steps on one layer, naming the layer and both steps', () => {
    const e = thrown(() => checkRecipeSelection({ stages: [{ step: step('rtn', 'quantize') }, { step: step('gptq', 'quantize'), targets: ['down_proj'] }] }, LAYERS));
    expect(RecipeSelectionError.isInstance(e)).toBe(true);
    expect((e as Error).message).toBe(
      "stages[1] (gptq): layer model.layers.0.mlp.down_proj is already quantized by stages[0] (rtn); two quantize steps on one layer would stack (the second rounds the first one's output). Give them disjoint targets, or use overrides for per-layer schemes",
    );
  });
});

describe('finiteInputs', () => {
  it('passes finite inputs through to the observer and stops on a NaN naming layer, block and element', async () => {
    const seen: string[] = [];
    const observe = finiteInputs(3, (name) => void seen.push(name));
    const input: Matrix = { dtype: 'float32', shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) };
    await observe('a', input);
    expect(seen).toEqual(['a']);
    const bad: Matrix = { dtype: 'float32', shape: [2, 2], data: Float32Array.of(1, 2, Infinity, 4) };
    const e = thrown(() => void observe('model.layers.3.mlp.up_proj', bad));
    expect(NonFiniteError.isInstance(e)).toBe(true);
    expect((e as Error).message).toBe('the input of model.layers.3.mlp.up_proj (activations of block 3) holds Infinity at element [1, 0]; expected finite numbers');
    expect(seen).toEqual(['a']);
  });
});

describe('scaleRangeWarning', () => {
  it('warns with counts when a 1e30 weight saturates its float16 scale, and not otherwise', async () => {
    const data = new Float32Array(64).map((_, i) => Math.sin(i + 1) * 0.1);
    data[5] = 1e30;
    const weight: Matrix = { dtype: 'float32', shape: [2, 32], data };
    const [state] = (await rtn({ format: 'int4', granularity: { type: 'group', size: 16 } }).run({ layers: [{ name: 'l', weight }], statistics: () => ({ tokens: 0 }) })).layers as LayerState[];
    const w = scaleRangeWarning('rtn', weight, state!);
    expect(w?.layer).toBe('l');
    // 15 ordinary weights share the 1e30 weight's group; with scale 65504 every one rounds to 0.
    expect(w?.message).toBe('1 of 4 groups have a scale clamped at the float16 maximum 65504 (largest |weight| 1.000e+30): their largest weights were clamped; 15 nonzero weights became 0');
    const ordinary: Matrix = { ...weight, data: data.map((v) => (v > 1 ? 0.1 : v)) };
    const [clean] = (await rtn({ format: 'int4', granularity: { type: 'group', size: 16 } }).run({ layers: [{ name: 'l', weight: ordinary }], statistics: () => ({ tokens: 0 }) })).layers as LayerState[];
    expect(clean!.stored?.kind).toBe('grid');
    expect(scaleRangeWarning('rtn', ordinary, clean!)).toBeUndefined();
  });
});
