import { createJsBackend } from '@bitsmith/linalg';
import { describe, expect, it } from 'vitest';
import { expectRefused, untyped } from '../../../test-support/option-errors.js';
import { eora } from './eora.js';
import { lorc } from './lorc.js';
import { lqLora } from './lq-lora.js';
import { lqer } from './lqer.js';
import { svdQuant } from './svdquant.js';

describe('the low-rank factories check their options on entry', () => {
  it('lorc and lqer: unknown key, wrong type, out-of-range rank, missing rank', () => {
    expectRefused(() => lorc(untyped({ rank: 8, storage: 'int8' })), 'storage', /^storage: unknown option; expected one of rank, factorStorage, svd, backend \(in the options of lorc\)$/);
    expectRefused(() => lqer(untyped({ rank: '8' })), 'rank', /expected number, received string \(in the options of lqer\)$/);
    expectRefused(() => lorc({ rank: 0 }), 'rank', /Too small: expected number to be >0/);
    expectRefused(() => lqer(untyped({ factorStorage: 'int8' })), 'rank', /missing; expected number/);
    expectRefused(() => lorc(untyped({ rank: 4, svd: { method: 'qr' } })), 'svd.method', /expected one of "auto"\|"exact"\|"randomized"/);
  });

  it('eora: its dampening, checked as in recipe files', () => {
    expectRefused(() => eora({ rank: 8, dampening: -0.1 }), 'dampening', /Too small: expected number to be >=0/);
    expectRefused(() => eora(untyped({ rank: 8, damping: 0.1 })), 'damping', /unknown option; expected one of .*dampening/);
    expectRefused(() => eora(untyped({ rank: 8, svd: { seed: 'x' } })), 'svd.seed', /expected number, received string/);
  });

  it('svdQuant and lqLora: the residual format and granularity, rank, iterations', () => {
    expectRefused(() => svdQuant(untyped({ bits: 4, rank: 16 })), 'bits', /recipe-file shorthand; in code write format: 'int4'/);
    expectRefused(() => svdQuant(untyped({ format: 'int4', rank: 16, granularity: { type: 'group', size: -1 } })), 'granularity.size', /Too small/);
    expectRefused(() => lqLora({ format: 'int3', rank: 8, iterations: 0 }), 'iterations', /Too small: expected number to be >0/);
    expectRefused(() => lqLora(untyped({ format: 'int3', rank: 8, iterations: true })), 'iterations', /expected number, received boolean/);
    expectRefused(() => lqLora(untyped({ format: 'int3', rank: 8, itterations: 3 })), 'itterations', /unknown option/);
  });

  it('valid calls pass, with a backend', () => {
    const backend = createJsBackend();
    expect(lorc({ rank: 8, factorStorage: 'int8', svd: { method: 'randomized', powerIterations: 2, seed: 1 }, backend }).id).toBe('lorc');
    expect(lqer({ rank: 4 }).id).toBe('lqer');
    expect(eora({ rank: 4, dampening: 0 }).id).toBe('eora');
    expect(svdQuant({ format: { type: 'int', bits: 4, symmetric: true }, granularity: { type: 'group', size: 64 }, rank: 16, backend }).id).toBe('svdquant');
    expect(lqLora({ format: 'nf4', rank: 8, iterations: 2, factorStorage: 'float16' }).id).toBe('lq-lora');
  });
});
