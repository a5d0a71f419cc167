import { parseFormat } from '@bitsmith/core';
import { describe, expect, it } from 'vitest';
import { expectRefused, untyped } from '../../../test-support/option-errors.js';
import { autoRound } from './autoround.js';
import { learnableWeightClipping } from './learnable-weight-clipping.js';

describe('autoRound and learnableWeightClipping check their options on entry', () => {
  it('autoRound: unknown key (recipe shorthands explained), wrong type, out-of-range value', () => {
    expectRefused(() => autoRound(untyped({ bits: 4, groupSize: 128 })), 'bits', /^bits: unknown option; expected one of format, granularity, scaleEncoding, iterations, .*learnRounding, init, equivalentTransform, transformLearningRate \(bits is a recipe-file shorthand/);
    expectRefused(() => autoRound(untyped({ format: 'int4', optimizer: 'sgd' })), 'optimizer', /expected one of "sign-sgd"\|"adam"/);
    expectRefused(() => autoRound(untyped({ format: 'int4', init: 'hqq' })), 'init', /expected one of "rtn"\|"gptq"/);
    expectRefused(() => autoRound(untyped({ format: 'int4', iterations: '200' })), 'iterations', /expected number, received string/);
    expectRefused(() => autoRound({ format: 'int4', learningRate: 0 }), 'learningRate', /Too small: expected number to be >0/);
    expectRefused(() => autoRound({ format: 'int4', schedule: { type: 'cosine', warmup: -1 } }), 'schedule.warmup', /Too small: expected number to be >=0/);
  });

  it('learnableWeightClipping: the same fields; what it learns is not an option', () => {
    expectRefused(() => learnableWeightClipping(untyped({ format: 'int3', learnRounding: true })), 'learnRounding', /unknown option/);
    expectRefused(() => learnableWeightClipping({ format: 'int3', batchSize: 0 }), 'batchSize', /^batchSize: Too small: expected number to be >0 \(in the options of learnableWeightClipping\)$/);
    expectRefused(() => learnableWeightClipping(untyped({ format: 'int3', seed: 'a' })), 'seed', /expected number, received string/);
    expectRefused(() => learnableWeightClipping({ format: 'int3', equivalentTransform: true, transformLearningRate: -1 }), 'transformLearningRate', /Too small: expected number to be >0/);
  });

  it('valid calls pass: FormatSpec, granularity objects, schedules by name or with a warmup', () => {
    expect(autoRound({ format: parseFormat('int4-asym'), granularity: { type: 'group', size: 32 }, iterations: 0, optimizer: 'adam', schedule: { type: 'cosine', warmup: 5 }, learnClipping: false, bestIterate: false }).id).toBe('autoround');
    expect(learnableWeightClipping({ format: 'int3', scaleEncoding: 'bfloat16', schedule: 'linear', seed: 2 }).id).toBe('lwc');
  });
});
