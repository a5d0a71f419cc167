import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, storedGrid, type StoredForm } from '@bitsmith/core';
import { buildLlamaOnnx, type OnnxExportOptions, type OnnxStoredLayer } from './onnx-export.js';
import type { OnnxLlamaGraph } from './onnx-llama-graph.js';

/**
 * A model file transformers.js picks by `dtype`: `fp32` (`onnx/model.onnx`, every layer float32 with its current,
 * decoded weight), `fp16` (`model_fp16.onnx`), `q4` / `q8` / `q2` (`model_q4.onnx`, `model_quantized.onnx`,
 * `model_q2.onnx`: MatMulNBits with float32 activations) and `q4f16` / `q2f16` (MatMulNBits with float16 activations).
 */
export type TransformersJsDtype = 'fp32' | 'fp16' | 'q4' | 'q4f16' | 'q8' | 'q2' | 'q2f16';

/** File name (under `onnx/`) transformers.js loads for each dtype (its `DEFAULT_DTYPE_SUFFIX_MAPPING`). */
export const TRANSFORMERS_JS_FILES: Readonly<Record<TransformersJsDtype, string>> = {
  fp32: 'model.onnx',
  fp16: 'model_fp16.onnx',
  q4: 'model_q4.onnx',
  q4f16: 'model_q4f16.onnx',
  q8: 'model_quantized.onnx',
  q2: 'model_q2.onnx',
  q2f16: 'model_q2f16.onnx',
};

/** Files copied from the source model folder when present. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

/** Options of {@link saveTransformersJsModel}. */
export interface TransformersJsExportOptions extends Omit<OnnxExportOptions, 'precision'> {
  /** The source model's `config.json` (parsed); written back with a `transformers.js_config` entry. */
  readonly config: Record<string, unknown>;
  /** Folder to copy `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json` and `generation_config.json` from. */
  readonly copyFrom?: string;
  /**
   * Which files to write. Default: the quantized dtype that names the stored grids (`q2` + `q2f16` when every grid
   * has 2 bits, `q8` when every grid has 8, otherwise `q4` + `q4f16`; transformers.js picks files by name only) and
   * `fp32`; with no quantized layer, `fp32` and `fp16`.
   */
  readonly dtypes?: readonly TransformersJsDtype[];
}

/** What {@link saveTransformersJsModel} wrote. */
export interface TransformersJsExportResult {
  /** Files written under `onnx/`, by dtype, with their sizes in bytes. */
  readonly files: Readonly<Partial<Record<TransformersJsDtype, { readonly path: string; readonly bytes: number }>>>;
  /** The dtype recorded as `transformers.js_config.dtype` (what `pipeline()` loads without a `dtype` option). */
  readonly defaultDtype: TransformersJsDtype;
  /** Layers written as MatMulNBits in the quantized files. */
  readonly matMulNBits: readonly string[];
}

/** The transformers.js dtype of a model whose grids have these bit widths. */
function quantizedDtypes(stored: ReadonlyMap<string, OnnxStoredLayer>): TransformersJsDtype[] {
  const widths = new Set<number>();
  for (const value of stored.values()) {
    const form: StoredForm = 'kind' in value ? value : { kind: 'grid', tensor: value };
    const grid = storedGrid(form) ?? (form.kind === 'low-rank' ? storedGrid(form.base) : undefined);
    if (grid && grid.format.type === 'int') widths.add(grid.format.bits);
  }
  if (widths.size === 0) return [];
  if ([...widths].every((b) => b <= 2)) return ['q2', 'q2f16'];
  if ([...widths].every((b) => b > 4)) return ['q8'];
  return ['q4', 'q4f16'];
}

/**
 * Writes a model folder that transformers.js (`@huggingface/transformers` 3.x/4.x) loads with
 * `pipeline('text-generation', folder)` or `AutoModelForCausalLM.from_pretrained(folder)`: `onnx/model*.onnx` (the
 * decoder of {@link buildLlamaOnnx} with `input_ids`, `attention_mask`, `position_ids`, `past_key_values.N.key/value`
 * in, `logits` and `present.N.key/value` out), `config.json` with `transformers.js_config` (`dtype`: the quantized
 * file is the default; float16 files declare a float16 key/value cache), and the tokenizer and generation config
 * copied from `copyFrom`. The quantized files carry the stored forms' own codes, scales and zero points.
 *
 * @param outDir Output folder (created when missing).
 * @param graph The quantized `LlamaGraph` (its weights are the decoded stored forms; float layers as they are).
 * @param stored Stored forms (or grid tensors) by layer name, as the recipe runner reported them.
 * @param options `config` (required), `copyFrom`, `dtypes`, `accuracyLevel` (0), `maxPositions`.
 * @throws StoredFormRefusedError before anything is written when a layer's stored form has no ONNX form.
 * @example
 * ```ts
 * await saveTransformersJsModel('out', graph, stored, { config: JSON.parse(await readFile('model/config.json', 'utf8')), copyFrom: 'model' });
 * // in transformers.js: await pipeline('text-generation', 'out', { dtype: 'q4' })
 * ```
 */
export async function saveTransformersJsModel(outDir: string, graph: OnnxLlamaGraph, stored: ReadonlyMap<string, OnnxStoredLayer>, options: TransformersJsExportOptions): Promise<TransformersJsExportResult> {
  const quantized = quantizedDtypes(stored);
  const dtypes = options.dtypes ?? (quantized.length > 0 ? [...quantized, 'fp32'] : ['fp32', 'fp16']);
  if (dtypes.length === 0) throw new InvalidArgumentError('dtypes', 'expected at least one dtype');
  const { config, copyFrom, dtypes: _dtypes, ...exportOptions } = options;
  // Build every file in memory first: a refused stored form leaves the folder untouched.
  const built: { dtype: TransformersJsDtype; bytes: Uint8Array; matMulNBits: string[] }[] = [];
  for (const dtype of dtypes) {
    if (!(dtype in TRANSFORMERS_JS_FILES)) throw new InvalidArgumentError('dtypes', `unknown dtype '${dtype}'; expected ${Object.keys(TRANSFORMERS_JS_FILES).join(', ')}`);
    const float = dtype === 'fp32' || dtype === 'fp16';
    if (!float && quantized.length === 0) throw new InvalidArgumentError('dtypes', `${dtype} needs quantized layers; none of the stored forms is an integer grid`);
    const precision = dtype === 'fp16' || dtype.endsWith('f16') ? 'float16' : 'float32';
    const r = await buildLlamaOnnx(graph, float ? new Map() : stored, { ...exportOptions, precision });
    built.push({ dtype, bytes: r.bytes, matMulNBits: r.matMulNBits });
  }
  await mkdir(join(outDir, 'onnx'), { recursive: true });
  const files: Partial<Record<TransformersJsDtype, { path: string; bytes: number }>> = {};
  for (const { dtype, bytes } of built) {
    const path = join(outDir, 'onnx', TRANSFORMERS_JS_FILES[dtype]);
    await writeFile(path, bytes);
    files[dtype] = { path, bytes: bytes.length };
  }
  const defaultDtype = dtypes.find((d) => d !== 'fp32' && d !== 'fp16' && !d.endsWith('f16')) ?? dtypes[0]!;
  const halfDtypes = dtypes.filter((d) => d === 'fp16' || d.endsWith('f16'));
  const existing = (config['transformers.js_config'] ?? {}) as Record<string, unknown>;
  const out = {
    ...config,
    'transformers.js_config': {
      ...existing,
      dtype: defaultDtype,
      ...(halfDtypes.length > 0 ? { kv_cache_dtype: Object.fromEntries(halfDtypes.map((d) => [d, 'float16'])) } : {}),
    },
  };
  await writeFile(join(outDir, 'config.json'), `${JSON.stringify(out, null, 2)}\n`);
  if (copyFrom !== undefined) {
    for (const name of TOKENIZER_FILES) if (existsSync(join(copyFrom, name))) await copyFile(join(copyFrom, name), join(outDir, name));
  }
  if (!existsSync(join(outDir, 'generation_config.json'))) {
    const generation = { bos_token_id: config.bos_token_id, eos_token_id: config.eos_token_id, pad_token_id: config.pad_token_id };
    await writeFile(join(outDir, 'generation_config.json'), `${JSON.stringify(Object.fromEntries(Object.entries(generation).filter(([, v]) => v !== undefined)), null, 2)}\n`);
  }
  return { files, defaultDtype, matMulNBits: built.find((b) => b.matMulNBits.length > 0)?.matMulNBits ?? [] };
}
