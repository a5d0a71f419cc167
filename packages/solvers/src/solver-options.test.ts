import { parseFormat } from '@bitsmith/core';
import { createJsBackend } from '@bitsmith/linalg';
import { describe, expect, it } from 'vitest';
import { expectRefused, untyped } from '../../../test-support/option-errors.js';
import { gptaq } from './gptaq.js';
import { gptq } from './gptq.js';
import { hqq } from './hqq.js';
import { quantEase } from './quant-ease.js';

describe('the solvers check their options on entry, from plain JavaScript too', () => {
  it('gptq: unknown key, wrong type, out-of-range value, recipe shorthands and a missing format are named', () => {
    expectRefused(() => gptq(untyped({ format: 'int4', dampning: 0.1 })), 'dampning', /unknown option; expected one of format, granularity, scaleEncoding, dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch, factorPrecision, backend, signal \(in the options of gptq\)$/);
    expectRefused(() => gptq(untyped({ format: 'int4', actOrder: 'yes' })), 'actOrder', /expected boolean, received string/);
    expectRefused(() => gptq({ format: 'int4', blockSize: 0 }), 'blockSize', /Too small: expected number to be >0/);
    expectRefused(() => gptq({ format: 'int4', dampening: -0.01 }), 'dampening', /Too small/);
    expectRefused(() => gptq(untyped({ bits: 4, groupSize: 32 })), 'bits', /recipe-file shorthand; in code write format: 'int4'/);
    expectRefused(() => gptq(untyped({ granularity: { type: 'channel' } })), 'format', /missing; expected a format name/);
    expectRefused(() => gptq(untyped({ format: 'int4', backend: 'js' })), 'backend', /expected a linalg Backend/);
    expectRefused(() => gptq(untyped(null)), 'options', /gptq expects an options object; got null/);
  });

  it('gptaq: its alpha, and GPTQ\'s options, checked by the same schemas', () => {
    expectRefused(() => gptaq({ format: 'int4', alpha: -0.5 }), 'alpha', /Too small: expected number to be >=0 \(in the options of gptaq\)$/);
    expectRefused(() => gptaq(untyped({ format: 'int4', alpha: '0.5' })), 'alpha', /expected number, received string/);
    expectRefused(() => gptaq(untyped({ format: 'int4', alhpa: 0.5 })), 'alhpa', /unknown option; expected one of .*alpha/);
  });

  it('hqq: unknown key, wrong type and out-of-range value', () => {
    expectRefused(() => hqq(untyped({ bits: 4, groupSize: 64 })), 'groupSize', /recipe-file shorthand; in code write granularity: \{ type: 'group', size: 32 \}/);
    expectRefused(() => hqq(untyped({ bits: 4, zeroPoint: 'half' })), 'zeroPoint', /Invalid option: expected one of "float"\|"integer"/);
    expectRefused(() => hqq({ bits: 4, lpNorm: 2 }), 'lpNorm', /Too big: expected number to be <=1/);
    expectRefused(() => hqq({ bits: 9 }), 'bits', /Too big: expected number to be <=8/);
  });

  it('quantEase: unknown key, wrong type and out-of-range value; GPTQ\'s act-order is not one of its options', () => {
    expectRefused(() => quantEase(untyped({ format: 'int3', actOrder: true })), 'actOrder', /unknown option; expected one of format, granularity, scaleEncoding, passes, init, dampening, maxDampening, blockSize, rangeSearch, factorPrecision, backend, signal/);
    expectRefused(() => quantEase(untyped({ format: 'int3', init: 'adam' })), 'init', /expected one of "gptq"\|"rtn"/);
    expectRefused(() => quantEase({ format: 'int3', passes: -1 }), 'passes', /Too small: expected number to be >=0/);
    expectRefused(() => quantEase(untyped({ format: 'int3', passes: 2.5 })), 'passes', /expected int, received number/);
  });

  it('valid calls pass: FormatSpec objects, every granularity shape, a backend, a signal', () => {
    const backend = createJsBackend();
    const signal = new AbortController().signal;
    expect(gptq({ format: parseFormat('int4'), granularity: { type: 'group', size: 32 }, scaleEncoding: 'float16', rangeSearch: { steps: 10 }, backend, signal }).id).toBe('gptq');
    expect(gptaq({ format: { type: 'int', bits: 3, symmetric: false }, granularity: { type: 'block', rows: 4, columns: 32 }, alpha: 0, backend, signal }).id).toBe('gptaq');
    expect(hqq({ format: 'int4', granularity: { type: 'tensor' }, zeroPoint: 'integer' }).id).toBe('hqq');
    expect(quantEase({ format: 'nf4', granularity: { type: 'channel' }, passes: 0, init: 'rtn', backend, signal }).id).toBe('quantease');
  });
});
