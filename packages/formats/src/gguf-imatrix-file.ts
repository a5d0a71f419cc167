import { readFile, writeFile } from 'node:fs/promises';
import { InvalidArgumentError } from '@bitsmith/core';
import { encodeImatrixDat, encodeImatrixGguf, parseImatrix, type Imatrix } from './gguf-imatrix.js';

/**
 * Writes an imatrix file: the GGUF layout, or the legacy `.dat` one when `format` is `dat` (default: by the file
 * extension, `.dat` is legacy).
 *
 * @example
 * ```ts
 * await writeImatrix('llama-docs-29m.imatrix.gguf', imatrix); // llama-quantize --imatrix llama-docs-29m.imatrix.gguf ...
 * ```
 */
export async function writeImatrix(path: string, imatrix: Imatrix, format?: 'gguf' | 'dat'): Promise<void> {
  const f = format ?? (path.endsWith('.dat') ? 'dat' : 'gguf');
  if (f !== 'gguf' && f !== 'dat') throw new InvalidArgumentError('format', `expected gguf or dat, got ${String(format)}`);
  await writeFile(path, f === 'dat' ? encodeImatrixDat(imatrix) : encodeImatrixGguf(imatrix));
}

/**
 * Reads an imatrix file of either layout (see {@link parseImatrix}).
 *
 * @example
 * ```ts
 * const importance = imatrixImportance(await readImatrix('imatrix.gguf'));
 * ```
 */
export async function readImatrix(path: string): Promise<Imatrix> {
  return parseImatrix(new Uint8Array(await readFile(path)), path);
}

