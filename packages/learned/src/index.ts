// Optimisers and schedules
export type { LearningRateSchedule } from './learning-rate-schedule.js';
export { scheduleFactor } from './learning-rate-schedule.js';
export type { ParameterArray, Optimizer, OptimizerOptions, SignSgdOptions, AdamOptions } from './optimizer.js';
export { signSgd, adam } from './optimizer.js';

// AutoRound
export type { RoundingParameters, LearnableRounding, LearnableRoundingOptions } from './learnable-rounding.js';
export { learnableRounding } from './learnable-rounding.js';
export type { AutoRoundOptions } from './autoround.js';
export { autoRound } from './autoround.js';
export type { LearnableWeightClippingOptions } from './learnable-weight-clipping.js';
export { learnableWeightClipping } from './learnable-weight-clipping.js';
// Recipe step definitions (zod options schema + factory), assembled into registries by the CLI or by users.
export { autoRoundStep } from './autoround-step.js';
export { learnableWeightClippingStep } from './learnable-weight-clipping-step.js';

// OmniQuant's equivalent transform (learnable channel scales; `equivalentTransform: true` on autoRound / learnableWeightClipping)
export type { TransformGroup, LayerTransform } from './equivalent-transform.js';
export { transformGroups, layerTransforms, transformWeight, scalesOf, accumulateScaleGradients, normEdits } from './equivalent-transform.js';
