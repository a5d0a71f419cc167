import { copyFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ActivationSchemeRefusedError, describeStored, InvalidArgumentError, StoredFormRefusedError, UnsupportedFormatError, type StoredKind } from '@bitsmith/core';
import type { FormatWarning } from './gptq.js';
import { saveGgufModel } from './gguf-file.js';
import { GGUF_ARCHITECTURES, type GgufModelType, type SaveGgufResult } from './gguf-llama-export.js';
import type { CheckpointOptions, SavedCheckpoint } from './hf-checkpoint.js';
import { saveCompressedTensors, saveGptq } from './hf-checkpoint-file.js';
import { saveTransformersJsModel, type TransformersJsExportOptions, type TransformersJsExportResult } from './onnx-transformers-js.js';
import { runActivationQuantization, type QuantizedRun } from './quantized-run.js';
import { EXPORTER_STORED_KINDS, exportableGrids, exportableStoredForms, type ModelExporter } from './stored-form-export.js';
import { saveTfjsModel } from './tfjs-manifest-file.js';
import type { TfjsQuantizedWeight, TfjsQuantizeOptions } from './tfjs-manifest.js';

// Node only (exported from the package's `node` entry): every exporter takes one QuantizedRun.

/** What every {@link RunExporter} returns: the files it wrote and its warnings. */
export interface RunExportResult {
  readonly files: readonly string[];
  readonly warnings: readonly FormatWarning[];
}

/**
 * An exporter of a {@link QuantizedRun}: its name, the stored kinds it accepts, a check that refuses (before any work,
 * with a named error) what it cannot write, and `save`, which runs the check first and writes nothing when it fails.
 */
export interface RunExporter<Options = Record<string, never>, Result extends RunExportResult = RunExportResult> {
  /** The exporter, as `bitsmith quantize --save` names it. */
  readonly name: ModelExporter;
  /** The stored kinds it writes (`EXPORTER_STORED_KINDS`); every other kind is refused with `StoredFormRefusedError`. */
  readonly accepts: readonly StoredKind[];
  /**
   * Refuses what the format cannot hold, reading only the run's stored forms, transforms and cache records:
   * `StoredFormRefusedError` for a stored kind (or grid) it cannot write, `ActivationSchemeRefusedError` for run-time
   * transforms or a cache quantization it cannot express, `InvalidArgumentError` for a run it has nothing to write of.
   */
  check(run: QuantizedRun, options?: Options): void;
  /** Checks the run ({@link RunExporter.check}), then writes it into `outDir` (created when missing). */
  save(outDir: string, run: QuantizedRun, options?: Options): Promise<Result>;
}

/** Files copied from the run's source folder when present: the tokenizer and the generation config. */
const SOURCE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

async function copySourceFiles(run: QuantizedRun, outDir: string): Promise<string[]> {
  if (run.source === undefined) return [];
  const copied: string[] = [];
  for (const name of SOURCE_FILES) {
    if (!existsSync(join(run.source, name))) continue;
    await copyFile(join(run.source, name), join(outDir, name));
    copied.push(join(outDir, name));
  }
  return copied;
}

/** Refuses run-time transforms and cache quantization in a format that stores weights only. */
function refuseRunTime(exporter: ModelExporter, run: QuantizedRun): void {
  const first = run.transforms[0];
  if (first) {
    throw new ActivationSchemeRefusedError(
      exporter,
      'onlineTransforms',
      `${exporter} cannot express run-time input transforms (${run.transforms.length} layers have one, e.g. ${first.layer}); use --save fake or a recipe whose rotations fuse into the weights`,
    );
  }
  if (run.kvCache.length > 0) throw new ActivationSchemeRefusedError(exporter, 'kvCache', `${exporter} cannot express a quantized key/value cache (block ${run.kvCache[0]!.block}); use --save fake`);
}

function requireGrids(exporter: ModelExporter, count: number): void {
  if (count === 0) throw new InvalidArgumentError('run.stored', `${exporter} writes quantized layers, and the run has no grid-quantized layer (a recipe with a quantize step whose result is the final weight)`);
}

function checkpointExporter(name: 'gptq' | 'gptq-v2' | 'compressed-tensors'): RunExporter<CheckpointOptions, SavedCheckpoint> {
  const prepare = (run: QuantizedRun) => {
    const quantized = exportableGrids(name, run.stored);
    const activations = name === 'compressed-tensors' ? runActivationQuantization(run, name) : (refuseRunTime(name, run), undefined);
    requireGrids(name, quantized.size);
    return { quantized, activations };
  };
  return {
    name,
    accepts: EXPORTER_STORED_KINDS[name],
    check: (run) => void prepare(run),
    async save(outDir, run, options = {}) {
      const { quantized, activations } = prepare(run);
      const model = { tensors: run.graph.tensors(), quantized, config: run.config, ...(activations ?? {}) };
      const saved = name === 'compressed-tensors' ? await saveCompressedTensors(outDir, model, options) : await saveGptq(outDir, model, { ...options, checkpointFormat: name === 'gptq' ? 'gptq' : 'gptq_v2' });
      return { ...saved, files: [...saved.files, ...(await copySourceFiles(run, outDir))] };
    },
  };
}

/** Options of {@link onnxRunExporter}: those of `saveTransformersJsModel` but the config (the run's) and `copyFrom` (the run's source). */
export type OnnxRunExportOptions = Omit<TransformersJsExportOptions, 'config' | 'copyFrom'>;

/** What {@link onnxRunExporter} wrote: `saveTransformersJsModel`'s result, its files by dtype as `dtypeFiles`. */
export interface OnnxRunExportResult extends Omit<TransformersJsExportResult, 'files'>, RunExportResult {
  /** The `.onnx` files written, by transformers.js dtype, with their sizes in bytes. */
  readonly dtypeFiles: TransformersJsExportResult['files'];
}

/** Options of {@link ggufRunExporter}. */
export interface GgufRunExportOptions {
  /** Type of the 2-D weights. Default `Q4_K`. */
  readonly type?: GgufModelType;
  /** llama.cpp importance matrix by GGUF tensor name (`imatrixImportance(await readImatrix(path))`). */
  readonly importance?: ReadonlyMap<string, Float32Array>;
  /** `general.name`. Default: the source folder's name. */
  readonly name?: string;
  /** Folder with `tokenizer.json`. Default: the run's source folder. */
  readonly tokenizerDir?: string;
  /** File name in the output folder. Default `model.gguf`. */
  readonly fileName?: string;
}

/** Options of {@link tfjsRunExporter}: how `saveTfjsModel` quantizes, and the model's topology and format fields. */
export interface TfjsRunExportOptions extends TfjsQuantizeOptions {
  readonly modelTopology?: unknown;
  readonly format?: string;
}

/**
 * compressed-tensors (`pack-quantized` integer grids, FP8 `float-quantized`, W8A8 `int-quantized` with input
 * activations, FP8 KV cache): `grid` and `float` layers; online Hadamards are refused.
 */
export const compressedTensorsRunExporter: RunExporter<CheckpointOptions, SavedCheckpoint> = checkpointExporter('compressed-tensors');
/** GPTQ v1 (AutoGPTQ: stores `z - 1`): 2/3/4/8-bit integer grids and `float` layers; weights only. */
export const gptqRunExporter: RunExporter<CheckpointOptions, SavedCheckpoint> = checkpointExporter('gptq');
/** GPTQ v2 (GPTQModel: stores `z`): as {@link gptqRunExporter}. */
export const gptqV2RunExporter: RunExporter<CheckpointOptions, SavedCheckpoint> = checkpointExporter('gptq-v2');

/**
 * ONNX in the transformers.js layout (`saveTransformersJsModel`): `grid` layers as MatMulNBits, `low-rank` branches
 * over them as two float MatMuls, `float` layers as MatMul; online Hadamards and integer activation quantizers as graph
 * nodes. A quantized cache is refused before any work; a run-time transform with no ONNX form is refused with
 * `ActivationSchemeRefusedError` while the files are built in memory, before anything is written.
 */
export const onnxRunExporter: RunExporter<OnnxRunExportOptions, OnnxRunExportResult> = {
  name: 'onnx',
  accepts: EXPORTER_STORED_KINDS.onnx,
  check(run) {
    exportableStoredForms('onnx', run.stored);
    if (run.kvCache.length > 0) throw new ActivationSchemeRefusedError('onnx', 'kvCache', `onnx cannot express a quantized key/value cache (block ${run.kvCache[0]!.block}); use --save fake`);
  },
  async save(outDir, run, options = {}) {
    this.check(run);
    const forms = exportableStoredForms('onnx', run.stored);
    const saved = await saveTransformersJsModel(outDir, run.graph, forms, { ...options, config: { ...run.config }, ...(run.source !== undefined ? { copyFrom: run.source } : {}) }).catch((error: unknown) => {
      if (UnsupportedFormatError.isInstance(error) && run.transforms.length > 0) throw new ActivationSchemeRefusedError('onnx', 'onlineTransforms', error.message);
      throw error;
    });
    const { files: dtypeFiles, ...rest } = saved;
    return { ...rest, dtypeFiles, files: [...Object.values(dtypeFiles).map((f) => f!.path), join(outDir, 'config.json')], warnings: [] };
  },
};

/**
 * GGUF (llama.cpp, `saveGgufModel`): `grid` layers from their codes where the GGML type holds them (else re-derived or
 * re-quantized, with a warning), `float` layers quantized to the type; Llama and Mistral only; weights only.
 */
export const ggufRunExporter: RunExporter<GgufRunExportOptions, SaveGgufResult & RunExportResult> = {
  name: 'gguf',
  accepts: EXPORTER_STORED_KINDS.gguf,
  check(run, options = {}) {
    exportableGrids('gguf', run.stored);
    refuseRunTime('gguf', run);
    if (!GGUF_ARCHITECTURES.includes(run.graph.config.modelType)) throw new UnsupportedFormatError(`gguf writes ${GGUF_ARCHITECTURES.join(' and ')} models; this one is ${run.graph.config.modelType}`);
    if ((options.tokenizerDir ?? run.source) === undefined) throw new InvalidArgumentError('tokenizerDir', 'GGUF embeds the tokenizer: give the run a source folder or options.tokenizerDir');
  },
  async save(outDir, run, options = {}) {
    this.check(run, options);
    const path = join(outDir, options.fileName ?? 'model.gguf');
    await mkdir(outDir, { recursive: true });
    const result = await saveGgufModel(path, run.graph, (options.tokenizerDir ?? run.source)!, {
      type: options.type ?? 'Q4_K',
      stored: run.stored,
      ...(options.importance ? { importance: options.importance } : {}),
      ...(options.name !== undefined ? { name: options.name } : {}),
    });
    return { ...result, files: [path] };
  },
};

const TFJS_REFUSAL = "tfjs manifests hold one affine uint8/uint16 grid per tensor, quantized from float weights; a recipe's result has no place in them (use --save fake)";

/**
 * A tfjs weights manifest (`saveTfjsModel`): every float32 tensor of the graph quantized to uint8/uint16 by the
 * manifest itself. It accepts `float` layers only: any layer a recipe quantized is refused, as are run-time transforms.
 */
export const tfjsRunExporter: RunExporter<TfjsRunExportOptions, { files: string[]; quantized: Map<string, TfjsQuantizedWeight>; warnings: FormatWarning[] }> = {
  name: 'tfjs',
  accepts: EXPORTER_STORED_KINDS.tfjs,
  check(run) {
    for (const [layer, form] of run.stored) if (!EXPORTER_STORED_KINDS.tfjs.includes(form.kind)) throw new StoredFormRefusedError('tfjs', { layer }, describeStored(form), TFJS_REFUSAL);
    refuseRunTime('tfjs', run);
  },
  async save(outDir, run, options = {}) {
    this.check(run);
    const { modelTopology, format, ...quantize } = options;
    const weights = [...run.graph.tensors()].map(([name, t]) => ({ name, shape: t.shape, dtype: 'float32' as const, data: t.data }));
    const saved = await saveTfjsModel(outDir, { weights, ...(modelTopology !== undefined ? { modelTopology } : {}), ...(format !== undefined ? { format } : {}) }, quantize);
    return { ...saved, warnings: [] };
  },
};

/** Every exporter of a {@link QuantizedRun} but `fake` (which `bitsmith quantize` writes itself), by `--save` name. */
export const RUN_EXPORTERS = {
  'compressed-tensors': compressedTensorsRunExporter,
  gptq: gptqRunExporter,
  'gptq-v2': gptqV2RunExporter,
  onnx: onnxRunExporter,
  gguf: ggufRunExporter,
  tfjs: tfjsRunExporter,
} as const;
