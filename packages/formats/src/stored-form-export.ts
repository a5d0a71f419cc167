import {
  STORED_KINDS,
  StoredFormRefusedError,
  UnsupportedFormatError,
  InvalidArgumentError,
  describeStored,
  type QuantizedTensor,
  type StoredForm,
  type StoredKind,
} from '@bitsmith/core';
import { compressedTensorsNaiveWeightArgs } from './compressed-tensors-naive.js';
import { GGUF_REFUSAL } from './gguf-llama-export.js';
import { gptqLayerConfig } from './gptq.js';
import { requireIntFormat } from './hf-layer-common.js';
import { checkMatMulNBits } from './onnx-matmul-nbits.js';
import { checkOnnxStored } from './onnx-export.js';

/** The exporters that write a whole quantized model, by the name `bitsmith quantize --save` uses. */
export type ModelExporter = 'fake' | 'compressed-tensors' | 'gptq' | 'gptq-v2' | 'onnx' | 'gguf' | 'tfjs';

/**
 * Which stored kinds each exporter writes. `fake` writes every kind as its decoded float32 weight; `gguf` writes
 * grids from their codes and scales where the GGML type holds them (re-deriving k-quant sub-block scales, else
 * re-quantizing with a warning) and quantizes float layers (see `saveGgufModel`); compressed-tensors
 * writes uniform integer and FP8 E4M3 grids, GPTQ and ONNX `MatMulNBits` uniform integer grids (and leave `float` layers float); ONNX also writes a `low-rank` branch
 * over a grid as two extra `MatMul`s; a tfjs manifest quantizes float weights by itself and takes `float` layers only.
 * A kind missing here is refused with `StoredFormRefusedError`. The exporters of `RUN_EXPORTERS` (node entry) say the
 * same in their `accepts`.
 */
export const EXPORTER_STORED_KINDS: Readonly<Record<ModelExporter, readonly StoredKind[]>> = {
  fake: STORED_KINDS,
  gguf: ['grid', 'float'],
  'compressed-tensors': ['grid', 'float'],
  gptq: ['grid', 'float'],
  'gptq-v2': ['grid', 'float'],
  onnx: ['grid', 'low-rank', 'float'],
  tfjs: ['float'],
};

const WHY: Record<StoredKind, string> = {
  grid: '',
  float: '',
  lut: 'per-row lookup tables have no place in this format (use --save fake)',
  codebook: 'vector codebooks have no place in this format (use --save fake)',
  'low-rank': 'the low-rank branch would be dropped: this format holds the quantized grid only (use --save fake)',
  'sparse-outliers': 'the sparse outliers would be dropped: this format holds the quantized grid only (use --save fake)',
};

/** The reason an exporter gives for refusing a kind. */
function why(exporter: ModelExporter, kind: StoredKind): string {
  if (exporter === 'tfjs') return "tfjs manifests hold one affine uint8/uint16 grid per tensor, quantized from float weights; a recipe's result has no place in them (use --save fake)";
  return exporter === 'gguf' && kind !== 'grid' && kind !== 'float' ? GGUF_REFUSAL[kind] : WHY[kind];
}

/**
 * Refuses, before any work, a recipe whose steps declare (`Quantizer.stores`) a stored kind the exporter cannot write.
 * Steps that declare nothing are checked after the run by {@link exportableGrids}.
 *
 * @throws StoredFormRefusedError naming the exporter, the step and the kind.
 * @example
 * ```ts
 * refuseDeclaredKinds('onnx', [{ step: 'vq', stores: ['codebook'] }]); // throws: onnx cannot write the layers of step 'vq' stored as codebook
 * ```
 */
export function refuseDeclaredKinds(exporter: ModelExporter, steps: readonly { readonly step: string; readonly stores?: readonly StoredKind[] }[]): void {
  const accepted = EXPORTER_STORED_KINDS[exporter];
  if (!accepted) throw new InvalidArgumentError('exporter', `unknown exporter '${exporter}'; expected one of ${Object.keys(EXPORTER_STORED_KINDS).join(', ')}`);
  for (const { step, stores } of steps) {
    for (const kind of stores ?? []) if (!accepted.includes(kind)) throw new StoredFormRefusedError(exporter, { step }, kind, why(exporter, kind));
  }
}

/**
 * Checks every layer's stored form against what the exporter writes and returns the grid tensors it will pack, by
 * layer name (`float` layers are left out: they are written as float weights). Nothing is written: call it before
 * any file is opened.
 *
 * @throws StoredFormRefusedError for the first layer whose kind (or grid: format, bits, zero points, permutation) the
 *   exporter cannot write.
 * @example
 * ```ts
 * const grids = exportableGrids('compressed-tensors', storedByLayer);
 * await saveCompressedTensors(out, { tensors: graph.tensors(), quantized: grids, config });
 * ```
 */
export function exportableGrids(exporter: ModelExporter, stored: ReadonlyMap<string, StoredForm>): Map<string, QuantizedTensor> {
  const accepted = EXPORTER_STORED_KINDS[exporter];
  if (!accepted) throw new InvalidArgumentError('exporter', `unknown exporter '${exporter}'; expected one of ${Object.keys(EXPORTER_STORED_KINDS).join(', ')}`);
  const grids = new Map<string, QuantizedTensor>();
  for (const [layer, form] of stored) {
    if (!accepted.includes(form.kind)) throw new StoredFormRefusedError(exporter, { layer }, describeStored(form), why(exporter, form.kind));
    if (form.kind !== 'grid') continue;
    if (exporter === 'compressed-tensors' || exporter === 'gptq' || exporter === 'gptq-v2' || exporter === 'onnx') {
      try {
        // compressed-tensors: integer grids (packed, or unpacked beside quantized inputs) and FP8 E4M3 (float-quantized).
        if (exporter === 'compressed-tensors' && form.tensor.format.type === 'float') compressedTensorsNaiveWeightArgs(form.tensor);
        else if (exporter === 'compressed-tensors') requireIntFormat(form.tensor, 'compressed-tensors');
        else if (exporter === 'onnx') checkMatMulNBits(form.tensor, layer);
        else gptqLayerConfig(form.tensor, exporter === 'gptq' ? 'gptq' : 'gptq_v2');
      } catch (error) {
        if (UnsupportedFormatError.isInstance(error) || InvalidArgumentError.isInstance(error)) throw new StoredFormRefusedError(exporter, { layer }, 'grid', error.message);
        throw error;
      }
      grids.set(layer, form.tensor);
    }
  }
  return grids;
}

/**
 * Checks every layer's stored form against what the exporter writes and returns the forms it will write as such, by
 * layer name (`float` layers are left out: they are written as float weights). For `onnx` that keeps `low-rank`
 * branches over MatMulNBits grids (see `checkOnnxStored`); for the other exporters it is {@link exportableGrids}.
 * Nothing is written: call it before any file is opened.
 *
 * @throws StoredFormRefusedError for the first layer the exporter cannot write.
 * @example
 * ```ts
 * await saveTransformersJsModel(out, graph, exportableStoredForms('onnx', storedByLayer), { config });
 * ```
 */
export function exportableStoredForms(exporter: ModelExporter, stored: ReadonlyMap<string, StoredForm>): Map<string, StoredForm> {
  if (exporter !== 'onnx') return new Map([...exportableGrids(exporter, stored)].map(([name, tensor]) => [name, { kind: 'grid', tensor } as StoredForm]));
  const forms = new Map<string, StoredForm>();
  for (const [layer, form] of stored) {
    checkOnnxStored(form, layer);
    if (form.kind !== 'float') forms.set(layer, form);
  }
  return forms;
}
