// The default entry of @bitsmith/formats: every encoder and decoder, in memory, for browsers and Node alike. Node's
// `node` condition (and `@bitsmith/formats/node`) adds reading and writing files: see node.ts.
// ONNX (MatMulNBits)
export type { MatMulNBitsWeights, MatMulNBitsTensorInfo } from './onnx-matmul-nbits.js';
export { MATMUL_NBITS_BITS, MATMUL_NBITS_MIN_BLOCK_SIZE, MATMUL_NBITS_MAX_BLOCK_SIZE, matMulNBitsBlockSize, checkMatMulNBits, packMatMulNBits, unpackMatMulNBits } from './onnx-matmul-nbits.js';
export type { OnnxRopeScaling, OnnxLlamaConfig, OnnxLinearLayer, OnnxRmsNorm, OnnxLlamaBlock, OnnxLlamaGraph } from './onnx-llama-graph.js';
export { onnxRopeInverseFrequencies } from './onnx-llama-graph.js';
export type { OnnxExportOptions, OnnxExportResult, OnnxStoredLayer, SaveOnnxOptions } from './onnx-export.js';
export { MATMUL_NBITS_METADATA_KEY, buildLlamaOnnx, checkOnnxStored, foldActOrder } from './onnx-export.js';
export type { KroneckerFactor, OnnxTransformDescription } from './onnx-input-transform.js';
export { hadamardKroneckerFactors, onnxActivationQuantizer, onnxInputTransform } from './onnx-input-transform.js';
export type { OnnxDecoderFeedsOptions, OnnxDecoderShape, OrtTensorConstructor } from './onnx-decoder-feeds.js';
export { onnxDecoderFeeds } from './onnx-decoder-feeds.js';
export type { ExternalDataReader } from './onnx-read.js';
export { decodeMatMulNBits } from './onnx-read.js';

// Hugging Face checkpoints (compressed-tensors pack-quantized, GPTQ v1/v2) and tfjs weight manifests
export type { WordPacking } from './packed-words.js';
export { codesPerWord, packedWordCount, packWords, unpackWords } from './packed-words.js';
export type { StoredDType, StoredTensor } from './stored-tensor.js';
export type { SafetensorsFileLayout, SafetensorsSink, SafetensorsShard, SafetensorsShardPlan } from './safetensors-shards.js';
export { DEFAULT_MAX_SHARD_BYTES, SAFETENSORS_INDEX_FILE, safetensorsFileLayout, writeSafetensorsStream, planSafetensorsShards } from './safetensors-shards.js';
export { STORED_DTYPE_BYTES, int32Tensor, int64Tensor, floatTensor, storedValues, storedFloat32, encodeSafetensorsFile, decodeSafetensorsFile } from './stored-tensor.js';
export { permutationFromGroupIndex } from './hf-layer-common.js';
export type { CompressedTensorsWeightArgs, CompressedTensorsLayer } from './compressed-tensors.js';
export { compressedTensorsWeightArgs, packCompressedTensors, unpackCompressedTensors, compressedTensorsPackedColumns } from './compressed-tensors.js';
export type { CompressedTensorsNaiveFormat, CompressedTensorsQuantizationArgs, CompressedTensorsNaiveLayer } from './compressed-tensors-naive.js';
export { compressedTensorsNaiveWeightArgs, packCompressedTensorsNaive, unpackCompressedTensorsNaive } from './compressed-tensors-naive.js';
export type { ExportedActivationQuantization, ExportedKvCacheQuantization, ActivationExportRequest } from './compressed-tensors-activations.js';
export {
  compressedTensorsActivationArgs,
  compressedTensorsKvCacheArgs,
  refuseCompressedTensorsActivations,
  activationTensors,
  activationSchemeFromCompressedTensors,
  readActivationQuantization,
} from './compressed-tensors-activations.js';
export type { GptqCheckpointFormat, GptqLayer, GptqLayerConfig, FormatWarning } from './gptq.js';
export { GPTQ_BITS, gptqLayerConfig, packGptq, unpackGptq } from './gptq.js';
export type { QuantizedModelExport, CheckpointOptions, Checkpoint, LoadedCheckpoint, SavedCheckpoint, GptqOptions, EncodeCheckpointOptions } from './hf-checkpoint.js';
export {
  COMPRESSED_TENSORS_VERSION,
  compressedTensorsCheckpoint,
  gptqCheckpoint,
  encodeCheckpointFiles,
  compressedTensorsTargetMatches,
  readCompressedTensorsCheckpoint,
  readGptqCheckpoint,
} from './hf-checkpoint.js';
export type { TfjsWeightInput, TfjsManifestEntry, TfjsQuantizedWeight, TfjsQuantizeOptions } from './tfjs-manifest.js';
export { quantizeTfjsWeight, tfjsWeightToQuantizedTensor, quantizeTfjsWeights, readTfjsQuantizedWeight } from './tfjs-manifest.js';

// GGUF (llama.cpp)
export type { GgmlTypeName, GgufValueTypeName } from './gguf-constants.js';
export { GGUF_MAGIC, GGUF_VERSION, GGUF_DEFAULT_ALIGNMENT, GGUF_VALUE_TYPE, GGML_TYPE_ID, GGML_BLOCK, GGML_BLOCK_SIZES, LLAMA_FILE_TYPE, GGUF_TOKEN_TYPE, ggmlTypeName } from './gguf-constants.js';
export { float32ToFloat16Bits, float16BitsToFloat32 } from './gguf-float16.js';
export type { GgufValue, GgufArrayValue, GgufMetadata } from './gguf-metadata.js';
export { gguf, ggufPlainValue } from './gguf-metadata.js';
export { quantizeQ8_0, dequantizeQ8_0, quantizeQ4_0, dequantizeQ4_0, quantizeQ4_1, dequantizeQ4_1, quantizeQ5_0, dequantizeQ5_0 } from './gguf-legacy-blocks.js';
export type { KQuantImportance } from './gguf-k-quant-blocks.js';
export { quantizeQ4_K, dequantizeQ4_K, quantizeQ5_K, dequantizeQ5_K, quantizeQ6_K, dequantizeQ6_K } from './gguf-k-quant-blocks.js';
export type { Iq4Importance } from './gguf-iq4-blocks.js';
export { quantizeIq4Nl, dequantizeIq4Nl, quantizeIq4Xs, dequantizeIq4Xs, IQ4_NL_VALUES } from './gguf-iq4-blocks.js';
export type { GgmlEncodeOptions } from './gguf-tensor-codec.js';
export { ggmlTensorBytes, encodeGgmlTensor, decodeGgmlTensor, GGML_IMPORTANCE_TYPES } from './gguf-tensor-codec.js';
export type { GgufTensorPath, GgufGridEncoding, GridElements } from './gguf-stored-encode.js';
export type { Imatrix, ImatrixEntry } from './gguf-imatrix.js';
export { imatrixImportance, imatrixFromSquareSums, encodeImatrixGguf, encodeImatrixDat, parseImatrix } from './gguf-imatrix.js';
export { gridElements, reorderGridRows, encodeGridForGguf } from './gguf-stored-encode.js';
export type { GgufTensorInput, GgufFileInput } from './gguf-writer.js';
export { encodeGguf } from './gguf-writer.js';
export type { GgufTensorInfo, GgufFile } from './gguf-reader.js';
export { parseGguf } from './gguf-reader.js';
export type { GgufGroupType } from './gguf-quantized-tensor.js';
export { ggufBlocksToQuantizedTensor, quantizedTensorToGgufBlocks } from './gguf-quantized-tensor.js';
export type { GgufTokenizerMetadata } from './gguf-llama-tokenizer.js';
export { ggufTokenizerMetadataFromJson } from './gguf-llama-tokenizer.js';
export type { GgufLlamaConfig, GgufLlamaSource, GgufModelType, SaveGgufOptions, SaveGgufResult, SavedGgufTensor } from './gguf-llama-export.js';
export { permuteForGgmlRope, ggufLlamaTensorName, ggufLlamaMetadata, ggufTensorType, ggufQ4KMHighBitLayers, ggufLlamaFile, refuseGgufStored, GGUF_MODEL_TYPES, GGUF_ARCHITECTURES, GGUF_STORED_KINDS, GGUF_REFUSAL } from './gguf-llama-export.js';
export { readChecked, readCheckedSync } from './checked-read.js';

// Stored forms: which kinds each model exporter writes
export type { ModelExporter } from './stored-form-export.js';
export { EXPORTER_STORED_KINDS, refuseDeclaredKinds, exportableGrids, exportableStoredForms } from './stored-form-export.js';
// The one result of a quantization run that every exporter takes (the exporters themselves: node entry, RUN_EXPORTERS)
export type { QuantizedRun, QuantizedRunGraph, QuantizedRunLinear, QuantizedRunBlock, QuantizedRunTransform, QuantizedRunReport, RunTimeTransformRecord, KvCacheRecord } from './quantized-run.js';
export { quantizedRun, runActivationQuantization, runTimeRecords } from './quantized-run.js';
export type { OnnxruntimeBlockwiseRtnOptions } from './onnxruntime-blockwise-rtn.js';
export { onnxruntimeBlockwiseRtn } from './onnxruntime-blockwise-rtn.js';
export type { TableFormat, StoredKindRow } from './stored-kind-table.js';
export { storedKindTable, storedKindCell, STORED_KIND_ROWS, TABLE_FORMATS } from './stored-kind-table.js';
