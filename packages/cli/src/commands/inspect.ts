import { existsSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import type { Command } from 'commander';
import { bitsPerWeight, formatName, granularityLabel, InvalidFileError, type QuantizedTensor } from '@bitsmith/core';
import { decodeSafetensorsFile, readChecked, readCheckedSync, readCompressedTensorsCheckpoint, readGptqCheckpoint, readGguf, readJsonObject, readMatMulNBits, readSafetensorsFolder, SAFETENSORS_INDEX_FILE, type StoredTensor } from '@bitsmith/formats';
import { outputSinks, OptionError, type CommandOutput } from '../command-output.js';

/** Formats `bitsmith inspect` recognises. */
export type InspectedFormat = 'fake-quant' | 'safetensors' | 'compressed-tensors' | 'gptq' | 'gguf' | 'onnx' | 'tfjs';

/** One stored tensor. */
export interface InspectedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly bytes: number;
}

/** One quantized weight (a layer, or a GGUF / tfjs tensor), with its storage cost. */
export interface InspectedWeight {
  readonly name: string;
  readonly shape: readonly number[];
  /** For example `int4 g32 act-order`, `Q4_K`, `uint8 affine`. */
  readonly scheme: string;
  /** Stored bits (codes, scales, zero points, g_idx, padding) per weight element. */
  readonly bitsPerWeight: number;
}

/** What `bitsmith inspect` reports. */
export interface InspectResult {
  readonly path: string;
  readonly format: InspectedFormat;
  /** Summary of the scheme (quantization_config, GPTQ config, GGUF file type, ...). */
  readonly scheme: string;
  readonly tensors: readonly InspectedTensor[];
  readonly quantized: readonly InspectedWeight[];
  /** Stored bits per element over the quantized weights (null when there are none). */
  readonly quantizedBitsPerWeight: number | null;
  /** Stored bits per parameter over every tensor of the file (null when unknown, e.g. ONNX). */
  readonly overallBitsPerWeight: number | null;
}

const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function schemeOf(q: QuantizedTensor): string {
  return `${formatName(q.format)} ${granularityLabel(q.granularity)}${q.permutation ? ' act-order' : ''}`;
}

function summarize(path: string, format: InspectedFormat, scheme: string, tensors: InspectedTensor[], quantized: InspectedWeight[], overall: boolean): InspectResult {
  let qBits = 0;
  let qCount = 0;
  for (const w of quantized) {
    qBits += w.bitsPerWeight * count(w.shape);
    qCount += count(w.shape);
  }
  const totalBytes = tensors.reduce((a, t) => a + t.bytes, 0);
  // Parameters: quantized weights count their logical elements; every other tensor its own elements.
  const quantizedStored = new Set<string>();
  let params = qCount;
  for (const t of tensors) {
    const owner = quantized.find((w) => t.name === w.name || t.name.startsWith(`${w.name}.`));
    if (owner) quantizedStored.add(t.name);
    else params += count(t.shape);
  }
  return {
    path,
    format,
    scheme,
    tensors,
    quantized,
    quantizedBitsPerWeight: qCount > 0 ? qBits / qCount : null,
    overallBitsPerWeight: overall && params > 0 ? (totalBytes * 8) / params : null,
  };
}

function listStored(tensors: Map<string, StoredTensor>): InspectedTensor[] {
  return [...tensors].map(([name, t]) => ({ name, shape: [...t.shape], dtype: t.dtype, bytes: t.bytes.byteLength })).sort((a, b) => a.name.localeCompare(b.name));
}

function layerBits(layer: string, q: QuantizedTensor, tensors: Map<string, StoredTensor>): number {
  let bytes = 0;
  for (const [name, t] of tensors) if (name.startsWith(`${layer}.`)) bytes += t.bytes.byteLength;
  return (bytes * 8) / (q.shape[0] * q.shape[1]);
}

async function inspectSafetensorsFolder(dir: string, single?: string): Promise<InspectResult> {
  // One checked reader (core's safetensors header parser): truncation, overlaps, bad shapes and bad JSON are named errors;
  // a folder is read as formats' loaders read it (model.safetensors, or the shards its index names).
  const { tensors, file } = single
    ? { tensors: (await readChecked(single, 'a safetensors file', async () => decodeSafetensorsFile(new Uint8Array(await readFile(single)), single))).tensors, file: single }
    : await readSafetensorsFolder(dir);
  const configPath = join(dir, 'config.json');
  const config = existsSync(configPath) ? await readJsonObject(configPath) : {};
  let qc = config.quantization_config as Record<string, unknown> | undefined;
  if (!qc && existsSync(join(dir, 'quantize_config.json'))) qc = await readJsonObject(join(dir, 'quantize_config.json'));
  const list = listStored(tensors);
  if (qc?.quant_method === 'compressed-tensors' || qc?.quant_method === 'gptq') {
    const ct = qc.quant_method === 'compressed-tensors';
    const loaded = readCheckedSync(file, `a ${ct ? 'compressed-tensors pack-quantized' : 'GPTQ'} checkpoint matching ${configPath}'s quantization config`, () =>
      ct ? readCompressedTensorsCheckpoint(tensors, qc!, config) : readGptqCheckpoint(tensors, qc!, config),
    );
    const quantized = [...loaded.quantized].map(([name, q]) => ({ name, shape: [...q.shape], scheme: schemeOf(q), bitsPerWeight: layerBits(name, q, tensors) }));
    const scheme = ct
      ? `compressed-tensors ${String(qc.format)}: ${Object.values(qc.config_groups as Record<string, { weights: Record<string, unknown> }>)
          .map((g) => `int${g.weights.num_bits}${g.weights.symmetric ? '' : '-asym'} ${g.weights.strategy}${g.weights.group_size ? ` ${g.weights.group_size}` : ''}${g.weights.actorder ? ` actorder=${g.weights.actorder}` : ''}`)
          .join('; ')}`
      : `GPTQ ${String(qc.checkpoint_format ?? 'gptq')}: ${qc.bits} bits, group_size ${qc.group_size}, sym ${qc.sym}, desc_act ${qc.desc_act}`;
    return summarize(file, ct ? 'compressed-tensors' : 'gptq', scheme, list, quantized, true);
  }
  if (qc?.quant_method === 'bitsmith') {
    const scheme = `bitsmith fake-quant (float weights on the grid): recipe ${String(qc.recipe)}, ${Number(qc.average_bits_per_weight).toFixed(3)} bits/weight when packed`;
    // The report beside it tells the effective bits of each quantized layer.
    const quantized: InspectedWeight[] = [];
    const reportPath = join(dir, 'quantization.json');
    if (existsSync(reportPath)) {
      const report = (await readJsonObject(reportPath)) as { report?: { layers?: { name: string; bitsPerWeight: number; steps: string[] }[] } };
      for (const l of report.report?.layers ?? []) {
        const t = tensors.get(`${l.name}.weight`);
        if (t && l.steps.length > 0) quantized.push({ name: l.name, shape: [...t.shape], scheme: `fake-quant (${l.steps.join('+')})`, bitsPerWeight: l.bitsPerWeight });
      }
    }
    return summarize(file, 'fake-quant', scheme, list, quantized, true);
  }
  return summarize(file, 'safetensors', 'unquantized safetensors', list, [], true);
}

type TfjsManifest = { weightsManifest?: { weights: { name: string; shape: number[]; dtype: string; quantization?: { dtype: string; min?: number; scale?: number } }[] }[] };

const TFJS_DTYPES = ['float32', 'int32', 'bool', 'string', 'complex64'];
const TFJS_QUANTIZED = ['uint8', 'uint16', 'float16'];

/** Checks a tfjs model.json's weights manifest: groups with paths and weights, names, non-negative integer shapes, known dtypes. */
function checkTfjsManifest(path: string, json: TfjsManifest): void {
  const fail = (what: string): never => {
    throw new InvalidFileError(path, `${what}; expected a tfjs model.json whose weightsManifest lists groups of { paths, weights: [{ name, shape, dtype }] }`);
  };
  if (!Array.isArray(json.weightsManifest)) fail('has no weightsManifest array');
  json.weightsManifest!.forEach((group, g) => {
    if (typeof group !== 'object' || group === null || !Array.isArray(group.weights)) fail(`weightsManifest[${g}] has no weights array`);
    group.weights.forEach((w, i) => {
      const where = `weightsManifest[${g}].weights[${i}]`;
      if (typeof w !== 'object' || w === null || typeof w.name !== 'string') fail(`${where} has no name`);
      if (!Array.isArray(w.shape) || !w.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`${where} (${w.name}) has shape ${JSON.stringify(w.shape)}, not non-negative integers`);
      if (!TFJS_DTYPES.includes(w.dtype)) fail(`${where} (${w.name}) has dtype ${JSON.stringify(w.dtype)}, not one of ${TFJS_DTYPES.join(', ')}`);
      if (w.quantization !== undefined && !TFJS_QUANTIZED.includes(w.quantization?.dtype)) fail(`${where} (${w.name}) has quantization dtype ${JSON.stringify(w.quantization?.dtype)}, not one of ${TFJS_QUANTIZED.join(', ')}`);
    });
  });
}

async function inspectTfjs(path: string): Promise<InspectResult> {
  const json = (await readJsonObject(path)) as TfjsManifest;
  checkTfjsManifest(path, json);
  const tensors: InspectedTensor[] = [];
  const quantized: InspectedWeight[] = [];
  for (const group of json.weightsManifest ?? []) {
    for (const w of group.weights) {
      const q = w.quantization;
      const bits = q ? (q.dtype === 'uint8' ? 8 : 16) : w.dtype === 'bool' ? 8 : 32;
      tensors.push({ name: w.name, shape: w.shape, dtype: q ? `${w.dtype} as ${q.dtype}` : w.dtype, bytes: (count(w.shape) * bits) / 8 });
      if (q) quantized.push({ name: w.name, shape: w.shape, scheme: q.dtype === 'float16' ? 'float16' : `${q.dtype} affine per tensor`, bitsPerWeight: bits });
    }
  }
  const dtypes = [...new Set(quantized.map((q) => q.scheme))];
  return summarize(path, 'tfjs', dtypes.length ? `tfjs weights manifest, quantization: ${dtypes.join(', ')}` : 'tfjs weights manifest, float', tensors, quantized, true);
}

async function inspectGguf(path: string): Promise<InspectResult> {
  const file = await readGguf(path);
  const tensors = file.tensors.map((t) => ({ name: t.name, shape: [...t.shape], dtype: t.type, bytes: file.tensorBytes(t.name).byteLength }));
  const quantized = tensors.filter((t) => !['F32', 'F16', 'BF16', 'F64', 'I8', 'I16', 'I32'].includes(t.dtype)).map((t) => ({ name: t.name, shape: t.shape, scheme: t.dtype, bitsPerWeight: (t.bytes * 8) / count(t.shape) }));
  const fileType = file.metadata.get('general.file_type');
  return summarize(path, 'gguf', `GGUF v${file.version}${fileType !== undefined ? `, general.file_type ${JSON.stringify(fileType)}` : ''}`, tensors, quantized, true);
}

async function inspectOnnx(path: string): Promise<InspectResult> {
  const layers = await readMatMulNBits(path);
  const quantized = [...layers].map(([name, q]) => ({ name, shape: [...q.shape], scheme: `MatMulNBits ${schemeOf(q)}`, bitsPerWeight: bitsPerWeight(q) }));
  return summarize(path, 'onnx', `ONNX, ${quantized.length} MatMulNBits layers (float initializers not listed)`, [], quantized, false);
}

/**
 * Inspects a model file or folder: detects the format (bitsmith fake-quant safetensors, plain safetensors,
 * compressed-tensors `pack-quantized`, GPTQ v1/v2, GGUF, ONNX MatMulNBits, tfjs weights manifest), lists tensors with
 * shapes and dtypes, the quantization scheme, and stored bits per weight per quantized weight and overall.
 *
 * @example
 * ```ts
 * const result = await inspectModel('out/gptq');
 * ```
 */
export async function inspectModel(path: string): Promise<InspectResult> {
  if (!existsSync(path)) throw new OptionError('path', `${path} does not exist`);
  if (statSync(path).isDirectory()) {
    if (existsSync(join(path, 'model.safetensors')) || existsSync(join(path, SAFETENSORS_INDEX_FILE))) return inspectSafetensorsFolder(path);
    if (existsSync(join(path, 'model.json'))) return inspectTfjs(join(path, 'model.json'));
    const names = await readdir(path);
    const gguf = names.find((n) => n.endsWith('.gguf'));
    if (gguf) return inspectGguf(join(path, gguf));
    const onnx = names.find((n) => n.endsWith('.onnx'));
    if (onnx) return inspectOnnx(join(path, onnx));
    throw new OptionError('path', `${path} holds no model.safetensors (nor ${SAFETENSORS_INDEX_FILE}), model.json, .gguf or .onnx file`);
  }
  const ext = extname(path).toLowerCase();
  const head = new Uint8Array((await readFile(path)).subarray(0, 4));
  if (ext === '.gguf' || String.fromCharCode(...head) === 'GGUF') return inspectGguf(path);
  if (ext === '.onnx') return inspectOnnx(path);
  if (ext === '.json') return inspectTfjs(path);
  if (ext === '.safetensors') return inspectSafetensorsFolder(dirname(path), path);
  throw new OptionError('path', `cannot tell the format of ${basename(path)} (expected a folder, .safetensors, .gguf, .onnx or a tfjs model.json)`);
}

/** Formats an inspection as text: the scheme, one line per tensor, quantized weights with bits, and totals. */
export function formatInspection(r: InspectResult): string {
  const lines = [`${r.path}: ${r.format}`, `scheme: ${r.scheme}`];
  if (r.tensors.length) {
    lines.push(`tensors (${r.tensors.length}):`);
    const width = Math.max(...r.tensors.map((t) => t.name.length));
    for (const t of r.tensors) lines.push(`  ${t.name.padEnd(width)}  ${t.dtype.padEnd(8)} [${t.shape.join(', ')}]`);
  }
  if (r.quantized.length) {
    lines.push(`quantized weights (${r.quantized.length}):`);
    const width = Math.max(...r.quantized.map((t) => t.name.length));
    for (const q of r.quantized) lines.push(`  ${q.name.padEnd(width)}  [${q.shape.join(', ')}]  ${q.scheme}  ${q.bitsPerWeight.toFixed(3)} bits/weight`);
  }
  if (r.quantizedBitsPerWeight !== null) lines.push(`quantized weights: ${r.quantizedBitsPerWeight.toFixed(3)} bits/weight`);
  if (r.overallBitsPerWeight !== null) lines.push(`overall: ${r.overallBitsPerWeight.toFixed(3)} bits/parameter`);
  return lines.join('\n');
}

/** Registers `bitsmith inspect FILE|DIR [--json]`. */
export function registerInspect(program: Command, output: CommandOutput = {}): void {
  program
    .command('inspect')
    .description('detect a model file’s format and list tensors, quantization scheme and bits per weight')
    .argument('<path>', 'model folder or file (.safetensors, .gguf, .onnx, tfjs model.json)')
    .option('--json', 'print JSON')
    .action(async (path: string, options: { json?: boolean }) => {
      const { stdout } = outputSinks(output);
      const result = await inspectModel(path);
      stdout(options.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatInspection(result)}\n`);
    });
}
