import { z } from 'zod';
import { defineStep, definedOptions, quantizationOptions } from '@bitsmith/core';
import { hqq } from './hqq.js';
import { hqqBitsOption, hqqSolverOptions } from './solver-options.js';

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
    bits: hqqBitsOption,
    groupSize: quantizationOptions.shape.groupSize,
    granularity: quantizationOptions.shape.granularity,
    ...hqqSolverOptions,
  }),
  create: ({ groupSize, granularity, ...rest }) => {
    if (groupSize !== undefined && granularity !== undefined) throw new Error('give either groupSize or granularity, not both');
    return hqq({
      ...definedOptions(rest),
      ...(groupSize !== undefined ? { granularity: { type: 'group' as const, size: groupSize } } : granularity ? { granularity: { type: granularity } } : {}),
    });
  },
});
