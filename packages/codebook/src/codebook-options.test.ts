import { createJsBackend } from '@bitsmith/linalg';
import { describe, expect, it } from 'vitest';
import { expectRefused, untyped } from '../../../test-support/option-errors.js';
import { squeezeLlm } from './squeeze-llm.js';
import { vectorQuantize } from './vector-quantize.js';

describe('squeezeLlm and vectorQuantize check their options on entry', () => {
  it('squeezeLlm: unknown key, wrong type, out-of-range value, missing bits', () => {
    expectRefused(() => squeezeLlm(untyped({ bits: 3, groupSize: 128 })), 'groupSize', /unknown option; expected one of bits, sensitivity, outlierFraction, errorFeedback, seed, maxIterations, dampening, backend \(groupSize is a recipe-file shorthand/);
    expectRefused(() => squeezeLlm(untyped({ bits: 3, sensitivity: 'gradient' })), 'sensitivity', /expected one of "hessian-diagonal"\|"fisher"\|"none"/);
    expectRefused(() => squeezeLlm({ bits: 3, outlierFraction: 0.9 }), 'outlierFraction', /^outlierFraction: Too big: expected number to be <=0.5 \(in the options of squeezeLlm\)$/);
    expectRefused(() => squeezeLlm(untyped({})), 'bits', /missing; expected number/);
  });

  it('vectorQuantize: unknown key, wrong type, out-of-range value, missing codebookBits', () => {
    expectRefused(() => vectorQuantize(untyped({ dimension: 2, codebookBits: 8, dim: 2 })), 'dim', /unknown option/);
    expectRefused(() => vectorQuantize(untyped({ dimension: 2, codebookBits: 8, normalize: 'no' })), 'normalize', /expected boolean, received string/);
    expectRefused(() => vectorQuantize({ dimension: 2, codebookBits: 20 }), 'codebookBits', /Too big: expected number to be <=16/);
    expectRefused(() => vectorQuantize({ dimension: 9, codebookBits: 8 }), 'dimension', /Too big: expected number to be <=8/);
    expectRefused(() => vectorQuantize(untyped({ dimension: 2 })), 'codebookBits', /missing; expected number/);
  });

  it('valid calls pass, with a backend', () => {
    const backend = createJsBackend();
    expect(squeezeLlm({ bits: 3, sensitivity: 'fisher', outlierFraction: 0.005, errorFeedback: true, seed: 1, maxIterations: 5, dampening: 0.02, backend }).id).toBe('squeezellm');
    expect(vectorQuantize({ dimension: 2, codebookBits: 6, residual: true, residualCodebookBits: 4, groupRows: 64, normalize: false, blockSize: 32, backend }).id).toBe('vq');
  });
});
