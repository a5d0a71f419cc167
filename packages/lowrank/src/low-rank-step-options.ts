import { z } from 'zod';

/**
 * The options every low-rank recipe step shares: `rank`, `factorStorage` float16|int8, and the SVD's settings
 * (`svd: { method auto|exact|randomized, powerIterations, seed }`).
 */
export const lowRankStepOptions = {
  rank: z.number().int().positive(),
  factorStorage: z.enum(['float16', 'int8']).optional(),
  svd: z
    .strictObject({ method: z.enum(['auto', 'exact', 'randomized']).optional(), powerIterations: z.number().int().nonnegative().optional(), seed: z.number().int().nonnegative().optional() })
    .optional(),
};
