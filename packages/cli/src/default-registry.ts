<<<<<<< HEAD
import { llmInt8, parseFormat, rtn } from '@bitsmith/core';
import { defineStep, quantizationOptions, resolveQuantization, type StepRegistry } from '@bitsmith/recipe';
import { hadamardRotation } from '@bitsmith/rotation';
import { awq, outlierSuppressionPlus, smoothQuant, smoothQuantPlus } from '@bitsmith/smoothing';
import { gptq, hqq, quantEase } from '@bitsmith/solvers';
import { squeezeLlm, vectorQuantize } from '@bitsmith/codebook';
import { bitAllocation, type BitCandidate, type BitPlan } from '@bitsmith/allocate';
import { eora, lorc, lqer, lqLora, svdQuant } from '@bitsmith/lowrank';
import { autoRound, learnableWeightClipping } from '@bitsmith/learned';
=======
>>>>>>> main
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
<<<<<<< HEAD
  rtn: defineStep({
    description: 'round-to-nearest (@bitsmith/core): bits|format, groupSize|granularity, rangeSearch',
    options: quantizationOptions.extend({ rangeSearch: rangeSearchOption }),
    create: ({ rangeSearch, ...rest }) => rtn({ ...resolveQuantization(rest), ...withoutUndefined({ rangeSearch }) }),
  }),
  gptq: defineStep({
    description: 'GPTQ (@bitsmith/solvers): bits|format, groupSize|granularity, dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch',
    options: quantizationOptions.extend({
      dampening: z.number().positive().optional(),
      maxDampening: z.number().positive().optional(),
      blockSize: z.number().int().positive().optional(),
      actOrder: z.boolean().optional(),
      staticGroups: z.boolean().optional(),
      rangeSearch: z.union([z.boolean(), z.strictObject({ steps: z.number().int().positive().optional(), minShrink: z.number().gt(0).max(1).optional(), norm: z.number().positive().optional() })]).optional(),
    }),
    create: ({ dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch, ...rest }) =>
      gptq({ ...resolveQuantization(rest), ...withoutUndefined({ dampening, maxDampening, blockSize, actOrder, staticGroups, rangeSearch }) }),
  }),
  autoround: defineStep({
    description:
      'AutoRound (@bitsmith/learned): signed gradient descent on rounding offsets and min/max clipping against the block output; bits|format (uniform integers), groupSize|granularity, iterations (200), learningRate (1/iterations), batchSize (8), seed, optimizer sign-sgd|adam, learnClipping, bestIterate',
    options: quantizationOptions.extend({
      iterations: z.number().int().nonnegative().optional(),
      learningRate: z.number().positive().optional(),
      scaleLearningRate: z.number().positive().optional(),
      batchSize: z.number().int().positive().optional(),
      seed: z.number().int().nonnegative().optional(),
      optimizer: z.enum(['sign-sgd', 'adam']).optional(),
      schedule: z.enum(['constant', 'linear', 'cosine']).optional(),
      learnClipping: z.boolean().optional(),
      bestIterate: z.boolean().optional(),
    }),
    create: ({ iterations, learningRate, scaleLearningRate, batchSize, seed, optimizer, schedule, learnClipping, bestIterate, ...rest }) =>
      autoRound({ ...resolveQuantization(rest), ...withoutUndefined({ iterations, learningRate, scaleLearningRate, batchSize, seed, optimizer, schedule, learnClipping, bestIterate }) }),
  }),
  lwc: defineStep({
    description: 'OmniQuant-style learnable weight clipping (@bitsmith/learned): min/max clipping per group learned against the block output with Adam; bits|format, groupSize|granularity, iterations (200), learningRate (5e-3), batchSize (8), seed',
    options: quantizationOptions.extend({
      iterations: z.number().int().nonnegative().optional(),
      learningRate: z.number().positive().optional(),
      batchSize: z.number().int().positive().optional(),
      seed: z.number().int().nonnegative().optional(),
    }),
    create: ({ iterations, learningRate, batchSize, seed, ...rest }) =>
      learnableWeightClipping({ ...resolveQuantization(rest), ...withoutUndefined({ iterations, learningRate, batchSize, seed }) }),
  }),
  awq: defineStep({
    description: 'AWQ scale and clip search (@bitsmith/smoothing), folded into the model: bits|format, groupSize|granularity, grid, duoScaling, clipSearch, clipSkip, maxTokens; follow with rtn or gptq of the same format',
    options: quantizationOptions.extend({
      grid: z.number().int().positive().optional(),
      duoScaling: z.boolean().optional(),
      clipSearch: z.union([z.boolean(), z.strictObject({ steps: z.number().int().positive().optional(), minShrink: z.number().gt(0).max(1).optional(), maxTokens: z.number().int().positive().optional() })]).optional(),
      clipSkip: z.array(z.string().min(1)).optional(),
      maxTokens: z.number().int().positive().optional(),
    }),
    create: ({ grid, duoScaling, clipSearch, clipSkip, maxTokens, ...rest }) => awq({ ...resolveQuantization(rest), ...withoutUndefined({ grid, duoScaling, clipSearch, clipSkip, maxTokens }) }),
  }),
  smoothquant: defineStep({
    description: 'SmoothQuant (@bitsmith/smoothing): alpha (default 0.5)',
    options: z.strictObject({ alpha: z.number().min(0).max(1).optional() }),
    create: (o) => smoothQuant(withoutUndefined(o)),
  }),
  'smoothquant-plus': defineStep({
    description: 'SmoothQuant+ (@bitsmith/smoothing): alpha searched on calibration loss for the given bits|format',
    options: quantizationOptions.extend({ alphas: z.array(z.number().min(0).max(1)).min(1).optional(), maxTokens: z.number().int().positive().optional() }),
    create: ({ alphas, maxTokens, ...rest }) => smoothQuantPlus({ ...resolveQuantization(rest), ...withoutUndefined({ alphas, maxTokens }) }),
  }),
  'llm-int8': defineStep({
    description:
      'LLM.int8() decomposition (@bitsmith/core): outlier input columns (calibration max|x| >= threshold, default 6, or the topK largest) kept in 16 bits for weights and activations, the rest int8 (bits|format, per output channel) with int8 per-token inputs (activations { format, granularity token|tensor })',
    options: z.strictObject({
      threshold: z.number().positive().optional(),
      topK: z.number().int().nonnegative().optional(),
      bits: z.number().int().min(2).max(8).optional(),
      activations: z.strictObject({ format: z.string(), granularity: z.enum(['tensor', 'token']).optional() }).optional(),
    }),
    create: ({ threshold, topK, bits, activations }) =>
      llmInt8({
        ...withoutUndefined({ threshold, topK }),
        ...(bits !== undefined ? { format: `int${bits}` } : {}),
        ...(activations ? { activations: { format: parseFormat(activations.format), granularity: { type: activations.granularity ?? 'token' }, dynamic: true } } : {}),
      }),
  }),
  'outlier-suppression-plus': defineStep({
    description:
      'Outlier Suppression+ (@bitsmith/smoothing): channel shift (a run-time transform compensated by a bias) and outlier scale searched on the quantized output error; bits|format, groupSize|granularity of the weight quantize step that follows, activations { format, granularity tensor|token } (int8 per tensor), shift, scale, candidates (20), maxTokens (2048)',
    options: quantizationOptions.extend({
      activations: z.strictObject({ format: z.string(), granularity: z.enum(['tensor', 'token']).optional() }).optional(),
      shift: z.boolean().optional(),
      scale: z.boolean().optional(),
      candidates: z.number().int().positive().optional(),
      maxTokens: z.number().int().positive().optional(),
    }),
    create: ({ activations, shift, scale, candidates, maxTokens, ...rest }) =>
      outlierSuppressionPlus({ ...resolveQuantization(rest), ...withoutUndefined({ activations, shift, scale, candidates, maxTokens }) }),
  }),
  rotation: defineStep({
    description: 'QuaRot-style rotation (@bitsmith/rotation): rotation hadamard|orthogonal, seed, residual (rotate the residual stream, default true), onlineHadamard true (down_proj) | all (every linear) | false, valueHadamard',
    options: z.strictObject({
      rotation: z.enum(['hadamard', 'orthogonal']).optional(),
      seed: z.number().int().nonnegative().optional(),
      residual: z.boolean().optional(),
      onlineHadamard: z.union([z.boolean(), z.literal('all')]).optional(),
      valueHadamard: z.boolean().optional(),
    }),
    create: (o) => hadamardRotation(withoutUndefined(o)),
  }),
  squeezellm: defineStep({
    description: 'SqueezeLLM per-row lookup tables (@bitsmith/codebook): bits, sensitivity hessian-diagonal|fisher|none, outlierFraction, errorFeedback, seed',
    options: z.strictObject({
      bits: z.number().int().min(1).max(8),
      sensitivity: z.enum(['hessian-diagonal', 'fisher', 'none']).optional(),
      outlierFraction: z.number().min(0).max(0.5).optional(),
      errorFeedback: z.boolean().optional(),
      seed: z.number().int().nonnegative().optional(),
      maxIterations: z.number().int().positive().optional(),
      dampening: z.number().positive().optional(),
    }),
    create: (o) => squeezeLlm(withoutUndefined(o)),
  }),
  vq: defineStep({
    description: 'vector quantization with Hessian error feedback (@bitsmith/codebook): dimension, codebookBits, residual, residualCodebookBits, groupRows, normalize, errorFeedback, seed',
    options: z.strictObject({
      dimension: z.number().int().min(1).max(8),
      codebookBits: z.number().int().min(1).max(16),
      residual: z.boolean().optional(),
      residualCodebookBits: z.number().int().min(1).max(16).optional(),
      groupRows: z.number().int().positive().optional(),
      normalize: z.boolean().optional(),
      errorFeedback: z.boolean().optional(),
      seed: z.number().int().nonnegative().optional(),
      maxIterations: z.number().int().positive().optional(),
      dampening: z.number().positive().optional(),
      blockSize: z.number().int().positive().optional(),
    }),
    create: (o) => vectorQuantize(withoutUndefined(o)),
  }),
  hqq: defineStep({
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
    create: ({ groupSize, granularity, ...rest }) =>
      hqq({ ...withoutUndefined(rest), ...(groupSize !== undefined ? { granularity: { type: 'group' as const, size: groupSize } } : granularity ? { granularity: { type: granularity } } : {}) }),
  }),
  quantease: defineStep({
    description: 'QuantEase coordinate descent on the layer objective (@bitsmith/solvers): bits|format, groupSize|granularity, passes, init gptq|rtn, dampening',
    options: quantizationOptions.extend({
      passes: z.number().int().nonnegative().optional(),
      init: z.enum(['gptq', 'rtn']).optional(),
      dampening: z.number().positive().optional(),
    }),
    create: ({ passes, init, dampening, ...rest }) => quantEase({ ...resolveQuantization(rest), ...withoutUndefined({ passes, init, dampening }) }),
  }),
  lorc: defineStep({
    description: 'LoRC low-rank compensation of the quantization error (@bitsmith/lowrank): rank, factorStorage float16|int8, svd; after a quantize step',
    options: z.strictObject(lowRankOptions),
    create: (o) => lorc(withoutUndefined(o)),
  }),
  lqer: defineStep({
    description: 'LQER activation-scaled low-rank compensation (@bitsmith/lowrank): rank, factorStorage, svd; after a quantize step',
    options: z.strictObject(lowRankOptions),
    create: (o) => lqer(withoutUndefined(o)),
  }),
  eora: defineStep({
    description: 'EoRA eigenspace low-rank compensation (@bitsmith/lowrank): rank, dampening, factorStorage, svd; after a quantize step',
    options: z.strictObject({ ...lowRankOptions, dampening: z.number().nonnegative().optional() }),
    create: (o) => eora(withoutUndefined(o)),
  }),
  svdquant: defineStep({
    description: 'SVDQuant (@bitsmith/lowrank): 16-bit low-rank branch of rank `rank`, residual rounded to bits|format, groupSize|granularity',
    options: quantizationOptions.extend(lowRankOptions),
    create: ({ rank, factorStorage, svd, ...rest }) => svdQuant({ ...resolveQuantization(rest), ...withoutUndefined({ rank, factorStorage, svd }) }),
  }),
  lqlora: defineStep({
    description: 'LQ-LoRA-style alternation W ≈ Q + L (@bitsmith/lowrank): bits|format, groupSize|granularity, rank, iterations, factorStorage',
    options: quantizationOptions.extend({ ...lowRankOptions, iterations: z.number().int().positive().optional() }),
    create: ({ rank, factorStorage, svd, iterations, ...rest }) => lqLora({ ...resolveQuantization(rest), ...withoutUndefined({ rank, factorStorage, svd, iterations }) }),
  }),
  'bit-allocation': defineStep({
    description:
      'mixed-precision bit plan (@bitsmith/allocate): candidates [int3 | { bits, groupSize }], budget (stored bits per weight) or { codeBitsPerWeight } (bits of the codes alone: int3 = 3) or { bytes }, allocator greedy|knapsack|ilp|baq, sensitivity hessian-trace|output-error, plan (JSON file from computeBitPlan, path relative to the working directory)',
    options: z.strictObject({
      candidates: z.array(candidateOption).min(1).optional(),
      budget: z.union([z.number().positive(), z.strictObject({ bitsPerWeight: z.number().positive() }), z.strictObject({ codeBitsPerWeight: z.number().positive() }), z.strictObject({ bytes: z.number().positive() })]).optional(),
      allocator: z.enum(['greedy', 'knapsack', 'ilp', 'baq']).optional(),
      sensitivity: z.enum(['hessian-trace', 'output-error']).optional(),
      plan: z.string().optional(),
    }),
    create: ({ candidates, budget, allocator, sensitivity, plan }) => {
      if (!plan && !candidates) throw new Error('bit-allocation needs candidates or a plan file');
      return bitAllocation({
        ...(candidates ? { candidates: candidates.map(toCandidate) } : {}),
        ...(budget !== undefined ? { budget: typeof budget === 'number' ? { bitsPerWeight: budget } : budget } : {}),
        ...withoutUndefined({ allocator, sensitivity }),
        ...(plan ? { plan: JSON.parse(readFileSync(plan, 'utf8')) as BitPlan } : {}),
      });
    },
  }),
=======
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
>>>>>>> main
};
