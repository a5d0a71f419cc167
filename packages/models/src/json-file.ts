import { readFile } from 'node:fs/promises';
import { ModelFileError } from './model-file-error.js';
import { decodeJsonFile, decodeTextFile } from './text-file.js';

// Node only (exported from the package's `node` entry); browsers decode bytes with decodeTextFile / decodeJsonFile.

/**
 * Reads a file as UTF-8 text, with a {@link ModelFileError} naming the file when it is missing or unreadable, when it
 * is binary (holds a NUL byte), or when it is not valid UTF-8 (naming the byte offset): such bytes would otherwise
 * be replaced by U+FFFD silently. A leading byte-order mark is dropped.
 *
 * @example
 * ```ts
 * const text = await readTextFile('data/calib.txt');
 * ```
 */
export async function readTextFile(path: string): Promise<string> {
  return decodeTextFile(await readFileBytes(path), path);
}

/**
 * Reads a whole file, with a {@link ModelFileError} naming it when it is missing, a directory or unreadable.
 *
 * @example
 * ```ts
 * const bytes = await readFileBytes('models/tiny/model.safetensors');
 * ```
 */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new ModelFileError(path, code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory, expected a file' : `cannot read (${code ?? (cause as Error).message})`, { cause });
  }
}

/**
 * Reads and parses a JSON file, with a {@link ModelFileError} naming the file when it is missing or not valid JSON.
 *
 * @example
 * ```ts
 * const config = await readJsonFile('models/tiny/config.json');
 * ```
 */
export async function readJsonFile(path: string): Promise<unknown> {
  return decodeJsonFile(await readFileBytes(path), path);
}
