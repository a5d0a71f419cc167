// Hadamard matrices
export type { HadamardConstruction, HadamardFactorization } from './hadamard-orders.js';
export {
  QUAROT_BASE_ORDERS,
  MAX_BASE_ORDER,
  isPowerOfTwo,
  baseHadamardConstruction,
  hadamardFactorization,
  isHadamardOrder,
  hadamardOrders,
  describeFactorization,
  requireHadamardFactorization,
} from './hadamard-orders.js';
export type { GaloisField } from './galois-field.js';
export { galoisField, primePower } from './galois-field.js';
export { paleyHadamardI, paleyHadamardII } from './paley-hadamard.js';
export { williamsonHadamard, WILLIAMSON_ORDERS } from './williamson-hadamard.js';
export { hadamardMatrix } from './hadamard-matrix.js';
export type { ApplyHadamardOptions } from './apply-hadamard.js';
export { applyHadamard } from './apply-hadamard.js';

// Random rotations
export { randomSigns, randomHadamard } from './random-hadamard.js';
export { randomOrthogonal } from './random-orthogonal.js';

// Model rotation
export type { HadamardInputTransformOptions } from './hadamard-input-transform.js';
export { hadamardInputTransform } from './hadamard-input-transform.js';
export type { RotateModelOptions, RotateModelResult } from './rotate-model.js';
export { rotateModel } from './rotate-model.js';
export type { HadamardRotationOptions } from './hadamard-rotation.js';
export { hadamardRotation, quarot } from './hadamard-rotation.js';
// Recipe step definitions (zod options schema + factory), assembled into registries by the CLI or by users.
export { hadamardRotationStep } from './hadamard-rotation-step.js';

// Learned rotation (SpinQuant-style)
export type { CayleySgdOptions, StiefelOptimizer } from './cayley-sgd.js';
export { cayleySgd, nearestOrthogonal } from './cayley-sgd.js';
export { orthogonalityError } from './rotate-model.js';
export type { BlockProblem, LearnRotationOptions, LearnRotationResult, RotatedLinear, RotationLossSettings } from './learned-rotation.js';
export { addAbsmaxScalePath, learnRotation, rotationBlockLoss, rotationProblem } from './learned-rotation.js';
export type { LearnedRotationOptions } from './learned-rotation-step.js';
export { learnedRotation, learnedRotationStep } from './learned-rotation-step.js';
