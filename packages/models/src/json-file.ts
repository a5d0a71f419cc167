import { readFile } from 'node:fs/promises';
import { ModelFileError } from './model-file-error.js';

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
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new ModelFileError(path, code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory, expected a file' : `cannot read (${code ?? (cause as Error).message})`, { cause });
  }
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new ModelFileError(path, `is a binary file (a NUL byte at offset ${nul}); expected UTF-8 text`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new ModelFileError(path, `is not valid UTF-8 (first bad sequence near byte ${firstInvalidUtf8(bytes)}); expected UTF-8 text (convert it, e.g. iconv -f latin1 -t utf-8)`, { cause });
  }
}

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence (lead and continuation bytes). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const c = bytes[i]!;
    const n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
    if (n === 0) return i;
    for (let k = 1; k < n; k++) if (i + k >= bytes.length || (bytes[i + k]! & 0xc0) !== 0x80) return i;
    i += n;
  }
  return i;
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
  const text = await readTextFile(path);
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new ModelFileError(path, `not valid JSON (${(cause as Error).message})`, { cause });
  }
}
