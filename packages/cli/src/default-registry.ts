import { readFileSync } from 'node:fs';
import { defineStep, rtnStep, type StepRegistry } from '@bitsmith/core';
import { bitAllocationStep, type BitPlan } from '@bitsmith/allocate';
import { squeezeLlmStep, vectorQuantizeStep } from '@bitsmith/codebook';
import { autoRoundStep, learnableWeightClippingStep } from '@bitsmith/learned';
import { eoraStep, lorcStep, lqerStep, lqLoraStep, svdQuantStep } from '@bitsmith/lowrank';
import { hadamardRotationStep } from '@bitsmith/rotation';
import { awqStep, smoothQuantPlusStep, smoothQuantStep } from '@bitsmith/smoothing';
import { gptaqStep, gptqStep, hqqStep, quantEaseStep } from '@bitsmith/solvers';
import { z } from 'zod';

/**
 * `bit-allocation` as recipe files write it: as the allocate package defines it, except that `plan` is the path of a
 * JSON bit plan (from `computeBitPlan`), relative to the working directory, which is read here (file access stays in
 * the CLI so the algorithm packages run in browsers).
 */
const bitAllocationFileStep = defineStep({
  description: bitAllocationStep.description.replace('plan (a bit plan from computeBitPlan)', 'plan (JSON file from computeBitPlan, path relative to the working directory)'),
  options: (bitAllocationStep.options as z.ZodObject).extend({ plan: z.string().optional() }),
  create: ({ plan, ...rest }: { plan?: string } & Record<string, unknown>) => {
    let parsed: BitPlan | undefined;
    if (plan !== undefined) {
      try {
        parsed = JSON.parse(readFileSync(plan, 'utf8')) as BitPlan;
      } catch (cause) {
        throw new Error(`plan: cannot read the bit plan ${plan} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}); expected a JSON file written by computeBitPlan`);
      }
    }
    return bitAllocationStep.create(bitAllocationStep.options.parse({ ...rest, ...(parsed ? { plan: parsed } : {}) }));
  },
});

/**
 * The steps that `bitsmith quantize` recipe files can name. Each definition (options schema + factory) lives beside
 * its algorithm in its package; this registry only assembles them. Explicit: spread it into your own registry to add
 * steps (`{ ...defaultRegistry, mine: myStep }`).
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
  rotation: hadamardRotationStep,
  squeezellm: squeezeLlmStep,
  vq: vectorQuantizeStep,
  hqq: hqqStep,
  quantease: quantEaseStep,
  lorc: lorcStep,
  lqer: lqerStep,
  eora: eoraStep,
  svdquant: svdQuantStep,
  lqlora: lqLoraStep,
  'bit-allocation': bitAllocationFileStep,
};
