import { z } from 'zod';
import {
  activationSchemeOption,
  backendOption,
  checkOptions,
  collectModelEdits,
  defineStep,
  definedOptions,
  factoryOptions,
  formatOption,
  granularityOption,
  InvalidArgumentError,
  quantizationOptions,
  resolveQuantization,
  type Quantizer,
  type StepContext,
  type StepResult,
} from '@bitsmith/core';
import { learnRotation, type LearnRotationOptions } from './learned-rotation.js';

/** Options of {@link learnedRotation}: those of {@link learnRotation} without the per-run `signal` and `progress`. */
export type LearnedRotationOptions = Omit<LearnRotationOptions, 'signal' | 'progress'>;

/** The training options, one schema each, shared by the `learned-rotation` recipe step and {@link learnedRotation}. */
const trainingOptions = {
  seed: z.number().int().nonnegative().optional(),
  iterations: z.number().int().nonnegative().optional(),
  learningRate: z.number().positive().optional(),
  momentum: z.number().min(0).lt(1).optional(),
  schedule: z.enum(['constant', 'cosine']).optional(),
  batchSize: z.number().int().positive().optional(),
  blocksPerIteration: z.number().int().positive().optional(),
  sequences: z.number().int().positive().optional(),
  validationSequences: z.number().int().nonnegative().optional(),
  validateEvery: z.number().int().positive().optional(),
  maxLength: z.number().int().min(2).optional(),
  scaleGradient: z.boolean().optional(),
  onlineHadamard: z.boolean().optional(),
  valueHadamard: z.boolean().optional(),
};

const learnedRotationOptionsSchema = factoryOptions<LearnedRotationOptions>({
  ...trainingOptions,
  format: formatOption.optional(),
  granularity: granularityOption.optional(),
  activations: z.union([z.literal(false), activationSchemeOption]).optional(),
  backend: backendOption.optional(),
});

/**
 * SpinQuant-style learned rotation (arXiv:2405.16406) as a model-scope transform step: folds the norms, learns the
 * residual-stream rotation from the seeded Hadamard by Cayley SGD (arXiv:2002.01113) against the blocks' output error
 * with round-to-nearest weights and the recipe's input-activation quantization, and folds it into the weights with
 * the online Hadamard before down_proj, as the `rotation` step does; GPTQ and the exporters then run unchanged.
 * Needs the calibration sequences (the recipe runner passes them to model-scope steps) and a differentiable model.
 *
 * Options (defaults): see {@link learnRotation}; `activations` defaults to the recipe's `inputActivations`.
 *
 * @example
 * ```ts
 * const recipe = { inputActivations: int4PerToken, stages: [{ step: learnedRotation({ iterations: 100 }) }, { step: gptq({ format: 'int4' }) }] };
 * await runRecipe(model, recipe, sequences);
 * ```
 */
export function learnedRotation(options: LearnedRotationOptions = {}): Quantizer {
  checkOptions('learnedRotation', learnedRotationOptionsSchema, options);
  const settings = { ...options };
  return {
    specificationVersion: 'v2',
    id: 'learned-rotation',
    kind: 'transform',
    scope: 'model',
    requires: [],
    async run(context: StepContext): Promise<StepResult> {
      if (!context.model) throw new InvalidArgumentError('context.model', 'learned-rotation is a model-scope step: the runner must pass the whole model');
      if (!context.calibration || context.calibration.length === 0) {
        throw new InvalidArgumentError('context.calibration', 'learned-rotation learns from calibration sequences: the runner must pass them (runRecipe does)');
      }
      const activations = settings.activations ?? context.inputActivations;
      // Step contract v2: the training runs the model's forward pass on its folded weights, so it works on the model
      // itself; collectModelEdits puts every tensor back afterwards (also on abort) and returns the changes as edits.
      const model = context.model;
      const calibration = context.calibration;
      const { result, edits } = await collectModelEdits(model, () =>
        learnRotation(model, calibration, {
          ...settings,
          ...(activations !== undefined ? { activations } : {}),
          ...(context.signal ? { signal: context.signal } : {}),
          ...(context.progress ? { progress: context.progress } : {}),
        }),
      );
      return { layers: context.layers, warnings: result.warnings, edits };
    },
  };
}

/**
 * The `learned-rotation` recipe step ({@link learnedRotation}, SpinQuant arXiv 2405.16406): `seed`, `iterations`
 * (100), `learningRate` (60), `momentum` (0), `schedule` cosine|constant, `batchSize` (1), `blocksPerIteration` (2),
 * `sequences` (8), `validationSequences` (2), `validateEvery` (25), `maxLength` (512), `scaleGradient` (true), the weight format of the loss
 * as `bits|format` and `groupSize|granularity` (int4 g128), `onlineHadamard`, `valueHadamard`. The input
 * quantization is the recipe's `inputActivations`.
 *
 * @example
 * ```ts
 * const step = learnedRotationStep.create(learnedRotationStep.options.parse({ iterations: 100, bits: 4, groupSize: 128 }));
 * ```
 */
export const learnedRotationStep = defineStep({
  description:
    'SpinQuant-style learned rotation (@bitsmith/rotation): Cayley SGD from the seeded Hadamard on the blocks\' output error with RTN weights and the recipe\'s inputActivations, then folded as rotation; seed, iterations (100), learningRate (60), momentum, schedule, batchSize, blocksPerIteration, sequences, validationSequences, validateEvery, maxLength, scaleGradient, bits|format, groupSize|granularity (int4 g128), onlineHadamard, valueHadamard',
  options: quantizationOptions.extend(trainingOptions),
  create: ({ bits, symmetric, format, groupSize, granularity, ...rest }) => {
    const given = bits !== undefined || format !== undefined || groupSize !== undefined || granularity !== undefined;
    const quantization = given ? resolveQuantization(definedOptions({ bits, symmetric, format, groupSize, granularity })) : {};
    return learnedRotation({ ...definedOptions(rest), ...quantization });
  },
});
