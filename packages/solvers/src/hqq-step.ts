import { z } from 'zod';
import { defineStep, definedOptions } from '@bitsmith/core';
import { hqq } from './hqq.js';

/**
 * The `hqq` recipe step ({@link hqq}, data-free half-quadratic zero-point optimisation): `bits`, `groupSize` or
 * `granularity`, `lpNorm`, `beta`, `kappa`, `iterations`, `optimizeScale`, `zeroPoint` float|integer.
 *
 * @example
 * ```ts
 * const step = hqqStep.create(hqqStep.options.parse({ bits: 4, groupSize: 64 }));
 * ```
 */
export const hqqStep = defineStep({
  description: 'HQQ, data-free half-quadratic zero-point optimisation (@bitsmith/solvers): bits, groupSize, lpNorm, beta, kappa, iterations, optimizeScale, zeroPoint float|integer',
  options: z.strictObject({
    bits: z.number().int().min(1).max(8),
    groupSize: z.number().int().positive().optional(),
    granularity: z.enum(['tensor', 'channel']).optional(),
    lpNorm: z.number().gt(0).max(1).optional(),
    beta: z.number().positive().optional(),
    kappa: z.number().positive().optional(),
    iterations: z.number().int().nonnegative().optional(),
    optimizeScale: z.boolean().optional(),
    zeroPoint: z.enum(['float', 'integer']).optional(),
  }),
  create: ({ groupSize, granularity, ...rest }) => {
    if (groupSize !== undefined && granularity !== undefined) throw new Error('give either groupSize or granularity, not both');
    return hqq({
      ...definedOptions(rest),
      ...(groupSize !== undefined ? { granularity: { type: 'group' as const, size: groupSize } } : granularity ? { granularity: { type: granularity } } : {}),
    });
  },
});
