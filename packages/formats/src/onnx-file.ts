import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { QuantizedTensor } from '@bitsmith/core';
import { readChecked } from './checked-read.js';
import { buildLlamaOnnx, type OnnxExportOptions, type OnnxExportResult, type OnnxStoredLayer, type SaveOnnxOptions } from './onnx-export.js';
import type { OnnxLlamaGraph } from './onnx-llama-graph.js';
import { decodeMatMulNBits as decodeWith, type ExternalDataReader } from './onnx-read.js';

// Node only (exported from the package's `node` entry): ONNX files on disk.

/**
 * Exports a Llama-family model to one ONNX file: the decoder of {@link buildLlamaOnnx} (key/value cache inputs and
 * outputs), MatMulNBits (com.microsoft; the q4 format of transformers.js and onnxruntime-genai) for every grid in
 * `stored`, float `MatMul` for the other layers. For the whole folder transformers.js loads, use
 * `saveTransformersJsModel`.
 *
 * @param graph A `LlamaGraph` (its config supplies the architecture).
 * @param stored Stored forms (or grid tensors) by layer name; empty for a float export.
 * @param path The `.onnx` file to write (its folder is created).
 * @param options `accuracyLevel` (0), `maxPositions`, `precision` (`'float32'`).
 * @example
 * ```ts
 * await exportOnnx(graph, storedByLayer, 'out/onnx/model_q4.onnx');
 * ```
 */
export async function exportOnnx(graph: OnnxLlamaGraph, stored: ReadonlyMap<string, OnnxStoredLayer>, path: string, options: OnnxExportOptions = {}): Promise<OnnxExportResult> {
  const { bytes, matMulNBits, floatLinears } = await buildLlamaOnnx(graph, stored, options);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  return { path, bytes: bytes.length, matMulNBits, floatLinears };
}

/**
 * Writes `outDir/model.onnx` (or `fileName`): the graph's current weights, with every grid in `stored` as a
 * `MatMulNBits` node (see {@link exportOnnx}). Config and tokenizer files are not copied; `saveTransformersJsModel`
 * writes the complete transformers.js folder.
 *
 * @param outDir Output folder (created when missing).
 * @param graph The quantized `LlamaGraph` (its float layers are written as float MatMul).
 * @param stored Stored forms (or grid tensors) by layer name.
 * @param options `fileName` (`'model.onnx'`), `accuracyLevel` (0), `maxPositions`, `precision`.
 * @example
 * ```ts
 * const { path } = await saveOnnxModel('out', graph, quantized);
 * ```
 */
export async function saveOnnxModel(outDir: string, graph: OnnxLlamaGraph, stored: ReadonlyMap<string, OnnxStoredLayer>, options: SaveOnnxOptions = {}): Promise<OnnxExportResult> {
  const { fileName = 'model.onnx', ...rest } = options;
  return exportOnnx(graph, stored, join(outDir, fileName), rest);
}

/**
 * Reads every `com.microsoft` `MatMulNBits` node of a decoded ONNX model into core `QuantizedTensor`s (see the default
 * entry's version); here the second argument may also be the model's folder, from which external data is read.
 *
 * @example
 * ```ts
 * const tensors = await decodeMatMulNBits(await readFile('out/model.onnx'), 'out');
 * ```
 */
export function decodeMatMulNBits(bytes: Uint8Array, external?: string | ExternalDataReader): Promise<Map<string, QuantizedTensor>> {
  return decodeWith(bytes, typeof external === 'string' ? (location) => readFile(join(external, location)) : external);
}

/**
 * Reads the MatMulNBits tensors of an `.onnx` file (see {@link decodeMatMulNBits}) into core `QuantizedTensor`s keyed
 * by layer name: codes, scales and zero points exactly as `exportOnnx` was given them.
 *
 * @example
 * ```ts
 * const tensors = await readMatMulNBits('out/model.onnx');
 * tensors.get('model.layers.0.self_attn.q_proj')!.codes;
 * ```
 */
export async function readMatMulNBits(path: string): Promise<Map<string, QuantizedTensor>> {
  return readChecked(path, 'an ONNX model (protobuf ModelProto) with MatMulNBits nodes', async () => decodeWith(await readFile(path), (location) => readFile(join(dirname(path), location))));
}
