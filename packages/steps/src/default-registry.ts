import { llmInt8Step, rtnStep, type StepRegistry } from '@bitsmith/core';
import { bitAllocationStep } from '@bitsmith/allocate';
import { squeezeLlmStep, vectorQuantizeStep } from '@bitsmith/codebook';
import { autoRoundStep, learnableWeightClippingStep } from '@bitsmith/learned';
import { eoraStep, lorcStep, lqerStep, lqLoraStep, svdQuantStep } from '@bitsmith/lowrank';
import { hadamardRotationStep, learnedRotationStep } from '@bitsmith/rotation';
import { awqStep, outlierSuppressionPlusStep, smoothQuantPlusStep, smoothQuantStep } from '@bitsmith/smoothing';
import { gptaqStep, gptqStep, hqqStep, quantEaseStep } from '@bitsmith/solvers';

/**
 * The steps recipe files can name, as the algorithm packages define them (options schema + factory beside each
 * algorithm); this object only assembles them. Browser-safe: `bit-allocation` takes its `plan` as an object here (a
 * bit plan from `computeBitPlan`); in Node, `import { defaultRegistry } from '@bitsmith/steps'` gives the variant
 * whose `plan` may also be a JSON file path. Explicit: spread it to add your own steps.
 *
 * @example
 * ```ts
 * import { parseRecipe } from '@bitsmith/recipe';
 * import { defaultRegistry } from '@bitsmith/steps';
 * const recipe = parseRecipe('steps:\n  - gptq: { bits: 4, groupSize: 128 }\n', { ...defaultRegistry, mine: myStep });
 * ```
 */
export const defaultRegistry: StepRegistry = {
  rtn: rtnStep,
  gptq: gptqStep,
  gptaq: gptaqStep,
  autoround: autoRoundStep,
  lwc: learnableWeightClippingStep,
  awq: awqStep,
  smoothquant: smoothQuantStep,
  'smoothquant-plus': smoothQuantPlusStep,
  'outlier-suppression-plus': outlierSuppressionPlusStep,
  'llm-int8': llmInt8Step,
  rotation: hadamardRotationStep,
  'learned-rotation': learnedRotationStep,
  squeezellm: squeezeLlmStep,
  vq: vectorQuantizeStep,
  hqq: hqqStep,
  quantease: quantEaseStep,
  lorc: lorcStep,
  lqer: lqerStep,
  eora: eoraStep,
  svdquant: svdQuantStep,
  lqlora: lqLoraStep,
  'bit-allocation': bitAllocationStep,
};
