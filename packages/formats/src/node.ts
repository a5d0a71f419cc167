// The `node` entry of @bitsmith/formats (what `import '@bitsmith/formats'` gives in Node, through the `node` export
// condition; also `@bitsmith/formats/node`): the browser-safe default entry plus reading and writing files.
export * from './index.js';
export { exportOnnx, saveOnnxModel, decodeMatMulNBits, readMatMulNBits } from './onnx-file.js';
export type { TransformersJsDtype, TransformersJsExportOptions, TransformersJsExportResult } from './onnx-transformers-js.js';
export { TRANSFORMERS_JS_FILES, saveTransformersJsModel } from './onnx-transformers-js.js';
export { saveCompressedTensors, saveGptq, loadCompressedTensors, loadGptq, readJsonObject, readSafetensorsFolder } from './hf-checkpoint-file.js';
export { saveTfjsModel } from './tfjs-manifest-file.js';
export { readGguf, writeGguf, ggufTokenizerMetadata, saveGgufModel } from './gguf-file.js';
export { readImatrix, writeImatrix } from './gguf-imatrix-file.js';
export type { RunExporter, RunExportResult, OnnxRunExportOptions, OnnxRunExportResult, GgufRunExportOptions, TfjsRunExportOptions } from './run-exporters.js';
export { RUN_EXPORTERS, compressedTensorsRunExporter, gptqRunExporter, gptqV2RunExporter, onnxRunExporter, ggufRunExporter, tfjsRunExporter } from './run-exporters.js';
