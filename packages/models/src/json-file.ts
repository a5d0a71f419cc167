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

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence. */
function firstInvalidUtf8(bytes: Uint8Array): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let low = 0;
  let high = bytes.length;
  // The longest valid prefix (cut at a sequence boundary) by bisection: decoding a prefix fails iff it holds a bad byte
  // or ends inside a sequence; step back up to 3 bytes to a boundary.
  while (high - low > 1) {
    const mid = (low + high) >> 1;
    let ok = false;
    for (let back = 0; back < 4 && !ok && mid - back >= 0; back++) {
      try {
        decoder.decode(bytes.subarray(0, mid - back));
        ok = true;
      } catch {
        // keep stepping back
      }
    }
    if (ok) low = mid;
    else high = mid;
  }
  return low;
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
