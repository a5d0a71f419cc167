import { createJsBackend } from '@bitsmith/linalg';
import { describe, expect, it } from 'vitest';
import { expectRefused, untyped } from '../../../test-support/option-errors.js';
import { bitAllocation } from './bit-allocation.js';

describe('bitAllocation checks its options on entry', () => {
  const candidates = [{ format: 'int3' }, { format: 'int4', granularity: { type: 'group', size: 32 } }] as const;

  it('unknown key, wrong type, out-of-range value, each named with its path', () => {
    expectRefused(() => bitAllocation(untyped({ candidates, budjet: { bitsPerWeight: 3.5 } })), 'budjet', /^budjet: unknown option; expected one of candidates, budget, allocator, sensitivity, plan, maxTokens, ilp, backend, onPlan \(in the options of bitAllocation\)$/);
    expectRefused(() => bitAllocation(untyped({ candidates, allocator: 'best' })), 'allocator', /expected one of "greedy"\|"knapsack"\|"ilp"\|"baq"/);
    expectRefused(() => bitAllocation(untyped({ candidates, maxTokens: 0 })), 'maxTokens', /Too small: expected number to be >0/);
    expectRefused(() => bitAllocation(untyped({ candidates: ['int3', 'int4'] })), 'candidates[0]', /expected object, received string/);
    expectRefused(() => bitAllocation(untyped({ candidates: [{ format: 'int3', groupSize: 32 }] })), 'candidates[0].groupSize', /unknown option; expected one of format, granularity, label/);
    expectRefused(() => bitAllocation(untyped({ candidates: [{ format: 'int33' }] })), 'candidates[0].format', /unknown format/);
    expectRefused(() => bitAllocation(untyped({ candidates, budget: 3.5 })), 'budget', /matches none of the accepted forms/);
    expectRefused(() => bitAllocation(untyped({ candidates, onPlan: 'print' })), 'onPlan', /expected a function/);
    expectRefused(() => bitAllocation(untyped({ candidates, ilp: { solver: 'glpk' } })), 'ilp.solver', /expected one of "auto"\|"highs"\|"branch-and-bound"/);
  });

  it('valid calls pass: callbacks, a backend, budgets of each kind, a plan alone', () => {
    const onPlan = (): void => undefined;
    const backend = createJsBackend();
    for (const budget of [{ bitsPerWeight: 3.5 }, { codeBitsPerWeight: 3 }, { bytes: 1e6 }]) {
      expect(bitAllocation({ candidates, budget, allocator: 'ilp', sensitivity: 'output-error', maxTokens: 256, ilp: { solver: 'branch-and-bound' }, backend, onPlan }).id).toBe('bit-allocation');
    }
    expect(bitAllocation({ plan: { budget: { bitsPerWeight: 4 }, allocator: 'knapsack', layers: {} } }).requires).toEqual([]);
  });
});
