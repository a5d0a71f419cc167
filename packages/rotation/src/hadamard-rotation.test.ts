import { createJsBackend } from '@bitsmith/linalg';
import { describe, expect, it } from 'vitest';
import { expectRefused, untyped } from '../../../test-support/option-errors.js';
import { hadamardRotation, quarot } from './hadamard-rotation.js';

describe('hadamardRotation and quarot check their options on entry', () => {
  it('unknown key, wrong type, out-of-range value, each named', () => {
    expectRefused(() => hadamardRotation(untyped({ sed: 1 })), 'sed', /^sed: unknown option; expected one of rotation, seed, residual, onlineHadamard, valueHadamard, backend \(in the options of hadamardRotation\)$/);
    expectRefused(() => quarot(untyped({ onlineHadamard: 'some' })), 'onlineHadamard', /in the options of quarot\)$/);
    expectRefused(() => hadamardRotation(untyped({ rotation: 'givens' })), 'rotation', /expected one of "hadamard"\|"orthogonal"/);
    expectRefused(() => quarot({ seed: -1 }), 'seed', /Too small: expected number to be >=0/);
    expectRefused(() => quarot({ seed: 0.5 }), 'seed', /expected int, received number/);
  });

  it('valid calls pass, with a backend', () => {
    expect(hadamardRotation({ rotation: 'orthogonal', seed: 3, residual: false, onlineHadamard: 'all', valueHadamard: false, backend: createJsBackend() }).id).toBe('hadamard-rotation');
    expect(quarot().id).toBe('hadamard-rotation');
  });
});
