import { ModelFileError } from './model-file-error.js';

/**
 * Decodes the bytes of a text file as UTF-8, with a {@link ModelFileError} naming the file when it is binary (holds a
 * NUL byte) or not valid UTF-8 (naming the byte offset): such bytes would otherwise be replaced by U+FFFD silently.
 * A leading byte-order mark is dropped.
 *
 * @param path Names the file in error messages.
 * @example
 * ```ts
 * const text = decodeTextFile(new Uint8Array(await file.arrayBuffer()), file.name);
 * ```
 */
export function decodeTextFile(bytes: Uint8Array, path: string): string {
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new ModelFileError(path, `is a binary file (a NUL byte at offset ${nul}); expected UTF-8 text`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new ModelFileError(path, `is not valid UTF-8 (first bad sequence near byte ${firstInvalidUtf8(bytes)}); expected UTF-8 text (convert it, e.g. iconv -f latin1 -t utf-8)`, { cause });
  }
}

/**
 * Decodes and parses the bytes of a JSON file, with a {@link ModelFileError} naming the file when it is not UTF-8
 * text or not valid JSON.
 *
 * @example
 * ```ts
 * const config = decodeJsonFile(await folder.readBytes('config.json'), folder.path('config.json'));
 * ```
 */
export function decodeJsonFile(bytes: Uint8Array, path: string): unknown {
  const text = decodeTextFile(bytes, path);
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new ModelFileError(path, `not valid JSON (${(cause as Error).message})`, { cause });
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

