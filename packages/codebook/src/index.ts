export type { WeightedKMeansOptions, WeightedKMeansResult } from './weighted-kmeans.js';
export { weightedKMeans, kMeansPlusPlus } from './weighted-kmeans.js';
export type { ChunkQuantizer, ErrorFeedbackOptions, ErrorFeedbackResult } from './error-feedback.js';
export { errorFeedbackQuantize } from './error-feedback.js';
export { roundToFloat16 } from './float16.js';
export type { SqueezeLlmLayerOptions, SqueezeLlmLayerResult } from './squeeze-llm-quantize-layer.js';
export { squeezeLlmQuantizeLayer } from './squeeze-llm-quantize-layer.js';
export type { SqueezeLlmOptions } from './squeeze-llm.js';
export { squeezeLlm } from './squeeze-llm.js';
export type { VectorQuantizeLayerOptions, VectorQuantizeLayerResult } from './vector-quantize-layer.js';
export { vectorQuantizeLayer } from './vector-quantize-layer.js';
export type { VectorQuantizeOptions } from './vector-quantize.js';
export { vectorQuantize } from './vector-quantize.js';
// Recipe step definitions (zod options schema + factory), assembled into registries by the CLI or by users.
export { squeezeLlmStep } from './squeeze-llm-step.js';
export { vectorQuantizeStep } from './vector-quantize-step.js';
