import { parseFormat } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { describe, expect, it } from 'vitest';
import { expectRefused, untyped } from '../../../test-support/option-errors.js';
import { awq } from './awq.js';
import { outlierSuppressionPlus } from './outlier-suppression-plus.js';
import { smoothQuant } from './smooth-quant.js';
import { smoothQuantPlus } from './smooth-quant-plus.js';

describe('the smoothing steps check their options on entry, from plain JavaScript too', () => {
  it('awq: unknown key (and recipe shorthands), wrong type, out-of-range value', () => {
    expectRefused(() => awq(untyped({ format: 'int4', gird: 20 })), 'gird', /unknown option; expected one of format, granularity, scaleEncoding, grid, duoScaling, clipSearch, clipSkip, maxTokens, includeIdentity, backend \(in the options of awq\)$/);
    expectRefused(() => awq(untyped({ bits: 4, groupSize: 128 })), 'bits', /recipe-file shorthand/);
    expectRefused(() => awq(untyped({ format: 'int4', clipSkip: ['q_proj', 3] })), 'clipSkip[1]', /expected string, received number/);
    expectRefused(() => awq({ format: 'int4', clipSearch: { minShrink: 0 } }), 'clipSearch.minShrink', /Too small: expected number to be >0/);
    expectRefused(() => awq(untyped({ format: 'int4', clipSearch: { step: 10 } })), 'clipSearch.step', /unknown option; expected one of steps, minShrink, maxTokens/);
  });

  it('smoothQuant: unknown key, wrong type, out-of-range alpha', () => {
    expectRefused(() => smoothQuant(untyped({ alhpa: 0.5 })), 'alhpa', /unknown option; expected one of alpha/);
    expectRefused(() => smoothQuant(untyped({ alpha: '0.5' })), 'alpha', /expected number, received string/);
    expectRefused(() => smoothQuant({ alpha: 1.5 }), 'alpha', /^alpha: Too big: expected number to be <=1 \(in the options of smoothQuant\)$/);
  });

  it('smoothQuantPlus: unknown key, wrong type, out-of-range value', () => {
    expectRefused(() => smoothQuantPlus(untyped({ format: 'int4', alpha: 0.5 })), 'alpha', /unknown option; expected one of .*alphas/);
    expectRefused(() => smoothQuantPlus(untyped({ format: 'int4', alphas: 0.5 })), 'alphas', /expected array, received number/);
    expectRefused(() => smoothQuantPlus({ format: 'int4', alphas: [0.2, 1.2] }), 'alphas[1]', /Too big: expected number to be <=1/);
    expectRefused(() => smoothQuantPlus({ format: 'int4', alphas: [] }), 'alphas', /Too small: expected array to have >=1 items/);
  });

  it('outlierSuppressionPlus: unknown key, wrong type, out-of-range value, activations checked as in files', () => {
    expectRefused(() => outlierSuppressionPlus(untyped({ format: 'int8', shfit: true })), 'shfit', /unknown option/);
    expectRefused(() => outlierSuppressionPlus(untyped({ format: 'int8', scale: 1 })), 'scale', /expected boolean, received number/);
    expectRefused(() => outlierSuppressionPlus({ format: 'int8', candidates: 0 }), 'candidates', /Too small/);
    expectRefused(() => outlierSuppressionPlus(untyped({ format: 'int8', activations: { format: 'int8', granularity: 'channel' } })), 'activations.granularity', /expected one of "tensor"\|"token"/);
    expectRefused(() => outlierSuppressionPlus(untyped({ format: 'int8', activations: { format: 'int77' } })), 'activations.format', /unknown format/);
  });

  it('valid calls pass: FormatSpec objects, granularity objects, a backend', () => {
    const backend = createJsBackend();
    expect(awq({ format: parseFormat('int4'), granularity: { type: 'group', size: 128 }, clipSearch: { steps: 4 }, clipSkip: [], backend }).id).toBe('awq');
    expect(smoothQuant().id).toBe('smoothquant');
    expect(smoothQuantPlus({ format: 'nf4', granularity: { type: 'channel' }, alphas: [0, 0.5], includeIdentity: false, backend }).id).toBe('smoothquant-plus');
    expect(outlierSuppressionPlus({ format: 'int8', activations: { format: parseFormat('fp8-e4m3'), granularity: 'token' }, backend }).id).toBe('outlier-suppression-plus');
  });
});
