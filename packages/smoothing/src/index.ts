// Steps (block-level transforms; they do not quantize: follow them with rtn or gptq)
export type { AwqOptions, AwqClipSearchOptions } from './awq.js';
export { awq } from './awq.js';
export type { SmoothQuantOptions } from './smooth-quant.js';
export { smoothQuant } from './smooth-quant.js';
export type { SmoothQuantPlusOptions } from './smooth-quant-plus.js';
export { smoothQuantPlus, SMOOTHQUANT_PLUS_ALPHAS } from './smooth-quant-plus.js';

// Building blocks
export type { QuantizationTarget } from './quantization-target.js';
export { resolveQuantizationTarget, fakeQuantize } from './quantization-target.js';
export { foldInputScales, scaleColumns } from './fold-scales.js';
export { inputAbsMean, inputAbsMax, weightColumnAbsMax, normalizedWeightMean } from './channel-statistics.js';
export { awqScales } from './awq-scales.js';
export { smoothQuantScales } from './smooth-quant-scales.js';
export type { OutputErrorMeter, OutputErrorMeterOptions } from './output-error-meter.js';
export { createOutputErrorMeter } from './output-error-meter.js';
export type { SmoothingSearchResult } from './smoothing-loss.js';
export { smoothingLoss, searchSmoothingScales } from './smoothing-loss.js';
export type { AwqClipOptions, AwqClipResult } from './awq-clip.js';
export { searchAwqClip } from './awq-clip.js';
export { selectFoldableGroups, groupInputs, layerStatesFromBlock, throwIfAborted } from './block-step.js';
// Recipe step definitions (zod options schema + factory), assembled into registries by the CLI or by users.
export { awqStep } from './awq-step.js';
export { smoothQuantStep } from './smooth-quant-step.js';
export { smoothQuantPlusStep } from './smooth-quant-plus-step.js';
