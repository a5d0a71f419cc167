import { ModelFileError } from './model-file-error.js';
import { readSafetensorsBlob, readSafetensorsBytes, type SafetensorsFile } from './safetensors-reader.js';

/**
 * The files of a Hugging Face model folder (`config.json`, `model.safetensors` or its shards with
 * `model.safetensors.index.json`, `tokenizer.json`, ...), wherever they are: a directory on disk (Node:
 * `modelFolderFromDirectory` of the `node` entry), files a user dropped or picked in a browser, buffers, or a URL
 * (`fetch`). Every loader of this package (`loadLlamaModel`, `loadTokenizer`, ...) reads through one.
 */
export interface ModelFolder {
  /** Where the files are (a path, a URL or a label such as `'dropped files'`), for messages. */
  readonly label: string;
  /** How a file of the folder is named in error messages (`dir/config.json`). */
  path(name: string): string;
  /** Whether the folder has a file of that name. */
  has(name: string): Promise<boolean>;
  /** The whole file; throws `ModelFileError` ("file not found") when absent. */
  readBytes(name: string): Promise<Uint8Array>;
  /**
   * A safetensors file, for reading one tensor at a time. Sources that allow it read tensors on demand (a file
   * handle, `Blob.slice`), so memory holds one tensor at a time. Close it when done.
   */
  openSafetensors(name: string): Promise<SafetensorsFile>;
}

/** The contents of one file given to {@link modelFolderFromFiles}. */
export type ModelFileContents = ArrayBuffer | ArrayBufferView | Blob | string;

/** Files of a model folder, by name, as {@link modelFolderFromFiles} takes them. */
export type ModelFileMap = ReadonlyMap<string, ModelFileContents> | Readonly<Record<string, ModelFileContents>> | Iterable<File>;

function isBlob(v: unknown): v is Blob {
  return typeof Blob !== 'undefined' && v instanceof Blob;
}

function toBytes(value: Exclude<ModelFileContents, Blob>): Uint8Array {
  if (typeof value === 'string') return new TextEncoder().encode(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return new Uint8Array(value);
}

/** The base name of a dropped file (`webkitRelativePath` holds `folder/config.json` for a dropped folder). */
function baseName(name: string): string {
  return name.replace(/^.*[\\/]/, '');
}

function entriesOf(files: ModelFileMap): [string, ModelFileContents][] {
  if (files instanceof Map) return [...files.entries()];
  if (typeof (files as Iterable<File>)[Symbol.iterator] === 'function') return [...(files as Iterable<File>)].map((f) => [baseName(f.name), f]);
  return Object.entries(files as Record<string, ModelFileContents>);
}

/**
 * A {@link ModelFolder} over files held in memory or picked by a user: a map (or plain object) from file name to
 * `ArrayBuffer`, typed array, `Blob`/`File` or text, or the `File`s of a drop or `<input type="file" multiple>` (named
 * by their base names, so a dropped folder works too). `Blob`s are read lazily: a safetensors file given as a `File`
 * is read one tensor at a time with `Blob.slice`, so a large checkpoint is never copied whole into memory.
 *
 * @param label Names the folder in error messages. Default `'model files'`.
 * @example
 * ```ts
 * // In a browser, from a drop event:
 * const folder = modelFolderFromFiles(event.dataTransfer.files, 'dropped folder');
 * const { graph, tokenizer } = await loadLlamaModel(folder);
 * // From buffers:
 * const model = await loadLlamaModel(modelFolderFromFiles({ 'config.json': configText, 'model.safetensors': bytes, 'tokenizer.json': tokenizerText }));
 * ```
 */
export function modelFolderFromFiles(files: ModelFileMap, label = 'model files'): ModelFolder {
  const byName = new Map<string, ModelFileContents>();
  for (const [name, value] of entriesOf(files)) byName.set(baseName(name), value);
  const path = (name: string) => `${label}/${name}`;
  const get = (name: string): ModelFileContents => {
    const value = byName.get(name);
    if (value === undefined) throw new ModelFileError(path(name), 'file not found');
    return value;
  };
  return {
    label,
    path,
    has: async (name) => byName.has(name),
    readBytes: async (name) => {
      const value = get(name);
      return isBlob(value) ? new Uint8Array(await value.arrayBuffer()) : toBytes(value);
    },
    openSafetensors: async (name) => {
      const value = get(name);
      return isBlob(value) ? readSafetensorsBlob(value, path(name)) : readSafetensorsBytes(toBytes(value), path(name));
    },
  };
}

/** Options of {@link modelFolderFromUrl}. */
export interface ModelFolderFromUrlOptions {
  /** The `fetch` to use. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Passed to every request (headers such as `Authorization` for gated models, an `AbortSignal`). */
  init?: RequestInit;
}

/**
 * A {@link ModelFolder} whose files are fetched from a base URL: `${base}/config.json`, ... (for example a folder
 * served next to a page, or `https://huggingface.co/ORG/NAME/resolve/main`; a relative base resolves against the page's
 * location). Each file is fetched once, when first read; `has` asks with a `HEAD` request.
 *
 * @example
 * ```ts
 * const folder = modelFolderFromUrl(new URL('models/tinystories-656k/', location.href));
 * const model = await loadLlamaModel(folder);
 * ```
 */
export function modelFolderFromUrl(base: string | URL, options: ModelFolderFromUrlOptions = {}): ModelFolder {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const text = String(base).endsWith('/') ? String(base) : `${String(base)}/`;
  let root: string;
  try {
    // A relative base resolves against the page (or worker) location where there is one.
    root = new URL(text, (globalThis as { location?: { href?: string } }).location?.href).href;
  } catch (cause) {
    throw new ModelFileError(text, 'not a URL; expected an absolute URL (or a relative one inside a page or worker)', { cause });
  }
  const url = (name: string) => new URL(name, root).href;
  const cache = new Map<string, Promise<Uint8Array>>();
  const read = (name: string): Promise<Uint8Array> => {
    let pending = cache.get(name);
    if (!pending) {
      pending = (async () => {
        let response: Response;
        try {
          response = await doFetch(url(name), options.init);
        } catch (cause) {
          throw new ModelFileError(url(name), `cannot fetch (${(cause as Error).message})`, { cause });
        }
        if (response.status === 404) throw new ModelFileError(url(name), 'file not found');
        if (!response.ok) throw new ModelFileError(url(name), `cannot fetch (HTTP ${response.status} ${response.statusText})`);
        return new Uint8Array(await response.arrayBuffer());
      })();
      pending.catch(() => cache.delete(name));
      cache.set(name, pending);
    }
    return pending;
  };
  return {
    label: root,
    path: url,
    has: async (name) => {
      if (cache.has(name)) return true;
      try {
        const response = await doFetch(url(name), { ...options.init, method: 'HEAD' });
        return response.ok;
      } catch {
        return false;
      }
    },
    readBytes: read,
    openSafetensors: async (name) => readSafetensorsBytes(await read(name), url(name)),
  };
}
