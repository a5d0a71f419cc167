import type { Matrix } from '@bitsmith/core';
import { ModelFileError } from './model-file-error.js';
import type { ModelFolder } from './model-folder.js';
import { readTfjsArtifactsFrom, tfjsStoredBytes } from './tfjs-graph-model-io.js';

/** One entry of a tfjs weights manifest. */
export interface TfjsWeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'float32' | 'int32' | 'bool' | 'string' | 'complex64';
  /** Present when the converter quantized the weight (`--quantize_uint8/uint16/float16`). */
  readonly quantization?: { readonly dtype: 'uint8' | 'uint16' | 'float16'; readonly min?: number; readonly scale?: number };
}

/** A decoded weight of a tfjs model. Quantized weights are dequantized to float32. */
export interface TfjsWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'float32' | 'int32' | 'bool';
  readonly data: Float32Array | Int32Array | Uint8Array;
}

/** A tfjs model: its `model.json` and every weight, decoded. */
export interface TfjsModel {
  readonly path: string;
  /** `modelTopology` of `model.json` (a GraphDef for graph models, a Keras config for layers models). */
  readonly topology: unknown;
  readonly weights: readonly TfjsWeight[];
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

function decodeWeight(spec: TfjsWeightSpec, bytes: Uint8Array, path: string): TfjsWeight {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const q = spec.quantization;
  if (q) {
    const out = new Float32Array(count);
    if (q.dtype === 'float16') for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
    else {
      const min = q.min ?? 0;
      const scale = q.scale ?? 1;
      for (let i = 0; i < count; i++) out[i] = (q.dtype === 'uint8' ? bytes[i]! : view.getUint16(2 * i, true)) * scale + min;
    }
    return { name: spec.name, shape: spec.shape, dtype: 'float32', data: spec.dtype === 'int32' ? Int32Array.from(out, Math.round) : out };
  }
  switch (spec.dtype) {
    case 'float32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      return { name: spec.name, shape: spec.shape, dtype: 'float32', data: out };
    }
    case 'int32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, true);
      return { name: spec.name, shape: spec.shape, dtype: 'int32', data: out };
    }
    case 'bool':
      return { name: spec.name, shape: spec.shape, dtype: 'bool', data: bytes.slice(0, count) };
    default:
      throw new ModelFileError(path, `weight '${spec.name}' has dtype '${spec.dtype}', which bitsmith does not read (expected float32, int32 or bool)`);
  }
}

/**
 * Reads a tfjs model (`model.json` with its weights manifest and binary shards, as written by tensorflowjs_converter)
 * from a {@link ModelFolder} (dropped `File`s, buffers, a URL; the `node` entry's `readTfjsModel` takes a path): the
 * shards are concatenated in manifest order and the weights decoded from that stream (quantized ones to float32). A
 * missing or truncated shard is a `ModelFileError` naming the file.
 *
 * @param modelJson The name of `model.json` in the folder. Default `'model.json'`.
 * @example
 * ```ts
 * const model = await readTfjsModelFrom(modelFolderFromFiles(event.dataTransfer.files));
 * for (const w of model.weights) console.log(w.name, w.shape);
 * ```
 */
export async function readTfjsModelFrom(folder: ModelFolder, modelJson = 'model.json'): Promise<TfjsModel> {
  const path = folder.path(modelJson);
  const artifacts = await readTfjsArtifactsFrom(folder, modelJson);
  const stream = new Uint8Array(artifacts.weightData as ArrayBuffer);
  const weights: TfjsWeight[] = [];
  let offset = 0;
  for (const spec of artifacts.weightSpecs as TfjsWeightSpec[]) {
    const length = tfjsStoredBytes(spec) ?? 0;
    weights.push(decodeWeight(spec, stream.subarray(offset, offset + length), path));
    offset += length;
  }
  return { path, topology: artifacts.modelTopology, weights };
}

/** A 2-D weight matrix of a tfjs model in bitsmith's `[outFeatures, inFeatures]` orientation. */
export interface TfjsWeightMatrix {
  readonly name: string;
  /** `kernel`: the right operand of a MatMul or a 1x1 Conv2D (stored `[in, out]`, transposed here); `table`: a Gather's lookup table (kept as `[rows, dim]`). */
  readonly role: 'kernel' | 'table';
  readonly weight: Matrix;
}

function gatherTables(topology: unknown): Set<string> {
  const tables = new Set<string>();
  const nodes = (topology as { node?: Array<{ op?: string; input?: string[] }> } | undefined)?.node;
  if (!Array.isArray(nodes)) return tables;
  for (const n of nodes) if (n.op && /^(GatherV2|Gather|ResourceGather)$/.test(n.op) && n.input?.[0]) tables.add(n.input[0]);
  return tables;
}

/**
 * The weight matrices of a tfjs model, oriented `[outFeatures, inFeatures]`: float32 weights that are 2-D after
 * dropping leading 1s (so 1x1 convolution kernels count) with both sides at least `minSide` (default 16, which
 * skips constant vectors such as position-signal rows). Kernels (`[in, out]` in TensorFlow) are transposed;
 * lookup tables of Gather ops keep their `[rows, dim]` layout.
 *
 * @example
 * ```ts
 * const matrices = tfjsWeightMatrices(await readTfjsModel(path));
 * ```
 */
export function tfjsWeightMatrices(model: TfjsModel, options: { minSide?: number } = {}): TfjsWeightMatrix[] {
  const minSide = options.minSide ?? 16;
  const tables = gatherTables(model.topology);
  const out: TfjsWeightMatrix[] = [];
  for (const w of model.weights) {
    if (w.dtype !== 'float32') continue;
    const dims = [...w.shape];
    while (dims.length > 2 && dims[0] === 1) dims.shift();
    if (dims.length !== 2 || dims[0]! < minSide || dims[1]! < minSide) continue;
    const [a, b] = dims as [number, number];
    const data = w.data as Float32Array;
    if (tables.has(w.name)) {
      out.push({ name: w.name, role: 'table', weight: { dtype: 'float32', shape: [a, b], data } });
      continue;
    }
    const t = new Float32Array(a * b);
    for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) t[j * a + i] = data[i * b + j]!;
    out.push({ name: w.name, role: 'kernel', weight: { dtype: 'float32', shape: [b, a], data: t } });
  }
  return out;
}
