import { z } from 'zod';
import { defineStep, definedOptions } from '@bitsmith/core';
import { hadamardRotation, rotationOptions } from './hadamard-rotation.js';

/**
 * The `rotation` recipe step ({@link hadamardRotation}, QuaRot arXiv 2404.00456): `rotation` hadamard|orthogonal,
 * `seed`, `residual` (rotate the residual stream, default true), `onlineHadamard` true (down_proj) | all | false,
 * `valueHadamard`.
 *
 * @example
 * ```ts
 * const step = hadamardRotationStep.create(hadamardRotationStep.options.parse({ onlineHadamard: 'all' }));
 * ```
 */
export const hadamardRotationStep = defineStep({
  description: 'QuaRot-style rotation (@bitsmith/rotation): rotation hadamard|orthogonal, seed, residual (rotate the residual stream, default true), onlineHadamard true (down_proj) | all (every linear) | false, valueHadamard',
  options: z.strictObject(rotationOptions),
  create: (o) => hadamardRotation(definedOptions(o)),
});
