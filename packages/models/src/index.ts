// The default entry of @bitsmith/models: everything that runs in browsers and workers as well as in Node. Node's
// `node` condition (and the explicit `@bitsmith/models/node` entry) adds file access: see node.ts.

// Errors
export { ModelFileError } from './model-file-error.js';

// Number conversion
export type { Float8Format } from './float-conversion.js';
export {
  float16ToFloat32,
  bfloat16ToFloat32,
  float32ToFloat16,
  float32ToBfloat16,
  float32ToFloat8,
  float8Table,
  decodeFloat16Array,
  decodeBfloat16Array,
} from './float-conversion.js';

// safetensors
export type { SafetensorsDType } from './safetensors-dtype.js';
export { SAFETENSORS_DTYPE_BYTES, isSafetensorsDType, decodeToFloat32, encodeFromNumbers } from './safetensors-dtype.js';
export type { SafetensorsEntry, SafetensorsHeader, SafetensorsLayout, SafetensorsLayoutInput } from './safetensors-header.js';
export { MAX_SAFETENSORS_HEADER_BYTES, parseSafetensorsHeader, readSafetensorsHeaderLength, planSafetensorsLayout } from './safetensors-header.js';
export type { RawSafetensor, TensorByteReader } from './safetensors-reader.js';
export { SafetensorsFile, readSafetensorsBytes, readSafetensorsBlob } from './safetensors-reader.js';
export type { WritableTensor, WriteSafetensorsOptions } from './safetensors-writer.js';
export { encodeSafetensors } from './safetensors-writer.js';

// Model folders (dropped files, buffers, URLs; directories through the `node` entry), text files and tokenizers
export type { ModelFolder, ModelFileContents, ModelFileMap, ModelFolderFromUrlOptions } from './model-folder.js';
export { modelFolderFromFiles, modelFolderFromUrl } from './model-folder.js';
export { decodeTextFile, decodeJsonFile } from './text-file.js';
export type { TextTokenizer } from './tokenizer.js';
export { createTokenizer, loadTokenizer } from './tokenizer.js';

// Llama-family graphs
export type { LlamaFamily, LlamaConfig, RopeScaling, MoeConfig } from './llama-config.js';
export { parseLlamaConfig, SUPPORTED_MODEL_TYPES } from './llama-config.js';
export { LLAMA_MAPPING, PHI3_MAPPING, GEMMA_MAPPING, QWEN2_MOE_MAPPING, architectureMapping } from './architecture-mappings.js';
export { gatedActivation } from './gated-activation.js';
export type { GatedMlp, MoeMlp, MoeCalibration, MoeRouting } from './moe-mlp.js';
export { routeTokens, runMoeMlp } from './moe-mlp.js';
export type { RopeTables } from './rope.js';
export { ropeInverseFrequencies, ropeTables, applyRope } from './rope.js';
export { rmsNorm } from './rms-norm.js';
export type { AttentionShape } from './attention.js';
export { causalAttention } from './attention.js';
export type { AttentionGemmOptions } from './attention-gemm.js';
export { causalAttentionGemm } from './attention-gemm.js';
export type { LinearKind, InputTransform, LinearLayer, LinearInputEvent, LinearInputObserver } from './linear-layer.js';
export { createLinearLayer, applyLinear } from './linear-layer.js';
export type { RmsNormLayer, HiddenStates, LlamaBlock, RunOptions, LlamaGraphOptions, WeightLookup } from './llama-graph.js';
export { LlamaGraph, createLlamaGraph } from './llama-graph.js';
export { sliceHiddenStates, sequenceBatches } from './hidden-states.js';
export type { LlamaModel, LoadLlamaOptions, ModelLoadWarning, ModelSource } from './load-llama.js';
export { loadLlamaConfig, loadSafetensorsWeights, loadLlamaGraph, loadLlamaModel } from './load-llama.js';
export type { LlamaQuantizableModelOptions } from './quantizable-model.js';
export { residentBlockHessians, runBlockOnWebgpu, webgpuBlockUnsupported, WEBGPU_BLOCK_CHUNK_TOKENS, type WebgpuBlockRunOptions, type WebgpuBlockRunResult } from './webgpu-block-run.js';
export { llamaQuantizableModel } from './quantizable-model.js';

// Gradients through a decoder block (learned quantization)
export type { GradientArray } from './block-backward-ops.js';
export { rmsNormBackward, ropeBackward, causalAttentionBackward, swigluBackward } from './block-backward-ops.js';
export { causalAttentionBackwardGemm, type AttentionBackwardOptions } from './attention-backward-gemm.js';
export type { BlockPassOptions, BlockBackwardResult } from './llama-block-backward.js';
export { llamaBlockForward, llamaBlockBackward, BlockWorkspace, ARENA_INITIAL_BYTES } from './llama-block-backward.js';
export { llamaBlockGradients, TARGET_BATCH_TOKENS } from './llama-block-gradients.js';
export type { BlockGradientsMemory, LlamaBlockGradientsOptions } from './llama-block-gradients.js';

// Calibration, generation, evaluation
export type { CalibrationOptions, CalibrationBlock } from './calibration.js';
export { calibrationBlocks, captureCalibration } from './calibration.js';
export type { InputSquareSums } from './input-square-sums.js';
export { linearInputSquareSums } from './input-square-sums.js';
export type { CalibrationProtocol } from './calibration-sequences.js';
export { calibrationSequences } from './calibration-sequences.js';
export type { GenerateOptions } from './generate.js';
export { generateGreedy } from './generate.js';
export type { EvaluateOptions, EvaluationResult } from './evaluate.js';
export { evaluateLanguageModel, evaluationWindows, evaluationProtocol } from './evaluate.js';
export type { PerplexityIntervalOptions, PerplexityRatioInterval } from './perplexity-interval.js';
export { perplexityRatioInterval } from './perplexity-interval.js';

// tfjs graph models (from a ModelFolder: dropped files, buffers, a URL; run, capture, replace weights, encode back to
// files in memory), their kernels, the quantizable view, and sentence encoders. The `node` entry adds paths on disk.
export type { TfjsWeightSpec, TfjsWeight, TfjsModel, TfjsWeightMatrix } from './tfjs-weights.js';
export { readTfjsModelFrom, tfjsWeightMatrices } from './tfjs-weights.js';
export type { TfjsModelJson, TfjsWeightToWrite, WriteTfjsModelOptions, TfjsModelFiles } from './tfjs-graph-model-io.js';
export { readTfjsModelJsonFrom, readTfjsArtifactsFrom, folderIOHandler, encodeTfjsModel } from './tfjs-graph-model-io.js';
export type { GraphNodeJson } from './tfjs-graph-model-kernels.js';
export { BITSMITH_MATMUL_OP, BITSMITH_CONV1X1_OP, registerFastKernels, rewriteForFastKernels, isPointwiseConv2D } from './tfjs-graph-model-kernels.js';
export type { TfjsGraphLinear, LoadTfjsGraphModelOptions, TfjsModelSource } from './tfjs-graph-model.js';
export { TfjsGraphModel } from './tfjs-graph-model.js';
export type { TfjsGraphInputEncoder, TfjsQuantizableModelOptions } from './tfjs-graph-model-quantizable.js';
export { tfjsQuantizableModel, lengthBatches, tokenRows } from './tfjs-graph-model-quantizable.js';
export type { SentenceEncoder } from './tfjs-graph-model-sentence-encoder.js';
export { sentenceEncoderInputs, loadSentenceEncoder, createSentenceEncoder } from './tfjs-graph-model-sentence-encoder.js';
export type { SentencePieceVocabulary, SentencePieceTokenizerOptions, SentencePieceTokenizer } from './sentence-piece-tokenizer.js';
export { createSentencePieceTokenizer } from './sentence-piece-tokenizer.js';

// Encoder evaluation
export type { EmbeddingFidelity } from './embedding-fidelity.js';
export { embeddingFidelity, cosineSimilarity, spearmanCorrelation, pearsonCorrelation, fractionalRanks, pairwiseCosines } from './embedding-fidelity.js';
// Weights held in their stored dtype (or as a stored form) until used
export type { WeightSource } from './lazy-weight.js';
export { lazyLinearLayer, releaseLinearWeight, holdLinearWeight, peekLinearWeight, isWeightResident, isLazyLinearLayer } from './lazy-weight.js';
