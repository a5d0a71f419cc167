import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readFileBytes } from './json-file.js';
import type { ModelFolder } from './model-folder.js';
import { openSafetensors } from './safetensors-open.js';

// Node only (exported from the package's `node` entry).

/**
 * A {@link ModelFolder} over a directory on disk: files are read with `node:fs`, safetensors files through positional
 * reads (one tensor at a time). Error messages name files by their paths (`dir/config.json`).
 *
 * @example
 * ```ts
 * import { loadLlamaModel, modelFolderFromDirectory } from '@bitsmith/models/node';
 * const model = await loadLlamaModel(modelFolderFromDirectory('models/tinystories-656k'));
 * ```
 */
export function modelFolderFromDirectory(dir: string): ModelFolder {
  const path = (name: string) => join(dir, name);
  return {
    label: dir,
    path,
    has: async (name) => {
      try {
        return (await stat(path(name))).isFile();
      } catch {
        return false;
      }
    },
    readBytes: (name) => readFileBytes(path(name)),
    openSafetensors: (name) => openSafetensors(path(name)),
  };
}
