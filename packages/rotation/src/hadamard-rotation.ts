import { z } from 'zod';
import { backendOption, checkOptions, factoryOptions, InvalidArgumentError, draftModel, modelEditsOf, type Quantizer, type StepContext, type StepResult } from '@bitsmith/core';
import { rotateModel, type RotateModelOptions } from './rotate-model.js';

/**
 * Options of {@link hadamardRotation}: those of {@link rotateModel} without the per-run `signal` and `progress`, and
 * with a named rotation only (an explicit matrix is `rotateModel`'s).
 */
export type HadamardRotationOptions = Omit<RotateModelOptions, 'signal' | 'progress' | 'rotation'> & { rotation?: 'hadamard' | 'orthogonal' };

/** The rotation options, one schema each, shared by the `rotation` recipe step and {@link hadamardRotation}. */
export const rotationOptions = {
  rotation: z.enum(['hadamard', 'orthogonal']).optional(),
  seed: z.number().int().nonnegative().optional(),
  residual: z.boolean().optional(),
  onlineHadamard: z.union([z.boolean(), z.literal('all')]).optional(),
  valueHadamard: z.boolean().optional(),
};

const hadamardRotationOptionsSchema = factoryOptions<HadamardRotationOptions>({ ...rotationOptions, backend: backendOption.optional() });

/**
 * QuaRot-style rotation (Ashkboos et al., "QuaRot: Outlier-Free 4-Bit Inference in Rotated LLMs", arXiv:2404.00456)
 * as a model-scope transform step: folds the RMSNorm gains, rotates the residual stream by a seeded randomized
 * Hadamard (or Haar orthogonal) matrix fused into the weights, adds an online Hadamard before every `down_proj`, and
 * fuses a per-head Hadamard into v_proj/o_proj. The float model's outputs do not change; its weights and activations
 * lose their outliers, so the quantize steps after it lose less. Runs once on `context.model` before calibration.
 *
 * Options (defaults): `rotation` ('hadamard'), `seed` (0), `residual` (true; false leaves the residual stream and the
 * norms alone), `onlineHadamard` (true: before down_proj; 'all': before every linear; false), `valueHadamard` (true),
 * `backend` (`defaultBackend()`). See {@link rotateModel} for the equations. For weight-only quantization of a model
 * whose norm gains damp its large channels, `{ residual: false, onlineHadamard: 'all' }` keeps the gains out of the
 * weights (see docs/rotation.md).
 *
 * @example
 * ```ts
 * const steps = [hadamardRotation({ seed: 0 }), gptq({ format: 'int4' })];
 * const result = await steps[0].run({ layers: [], statistics: () => ({ tokens: 0 }), model });
 * applyStepResult(model, result, 'hadamard-rotation'); // the runner does this: the step itself leaves the model untouched
 * ```
 */
export function hadamardRotation(options: HadamardRotationOptions = {}): Quantizer {
  checkOptions('hadamardRotation', hadamardRotationOptionsSchema, options);
  const settings = { ...options };
  return {
    specificationVersion: 'v2',
    id: 'hadamard-rotation',
    kind: 'transform',
    scope: 'model',
    requires: [],
    async run(context: StepContext): Promise<StepResult> {
      if (!context.model) throw new InvalidArgumentError('context.model', 'hadamard-rotation is a model-scope step: the runner must pass the whole model');
      // Step contract v2: rotate a draft of the model; the runner applies the changes as model edits.
      const draft = draftModel(context.model);
      const { warnings } = await rotateModel(draft, {
        ...settings,
        ...(context.signal ? { signal: context.signal } : {}),
        ...(context.progress ? { progress: context.progress } : {}),
      });
      return { layers: context.layers, warnings, edits: modelEditsOf(context.model, draft) };
    },
  };
}

/**
 * Alias of {@link hadamardRotation} under the paper's name (arXiv:2404.00456).
 *
 * @example
 * ```ts
 * const rotate = quarot({ rotation: 'hadamard', seed: 1, onlineHadamard: true });
 * ```
 */
export function quarot(options: HadamardRotationOptions = {}): Quantizer {
  checkOptions('quarot', hadamardRotationOptionsSchema, options);
  return hadamardRotation(options);
}
