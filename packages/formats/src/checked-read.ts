import { BitsmithError, InvalidFileError, UnsupportedFormatError } from '@bitsmith/core';

/**
 * Runs a reader of one file and gives every failure the file's name: a bitsmith error that lacks it gets it as a
 * prefix (unsupported features stay `UnsupportedFormatError`, malformed content becomes core's `InvalidFileError`),
 * and a raw JavaScript error from decoding damaged bytes (a `RangeError` past the end of a buffer, a protobuf or JSON
 * `SyntaxError`, a `TypeError` on a missing field) becomes an `InvalidFileError` that says what was expected instead
 * of a stack trace.
 *
 * @param file Path of the file being read.
 * @param expected What the file should be, for example `'a GGUF file'`.
 * @example
 * ```ts
 * const gguf = await readChecked('model.gguf', 'a GGUF v2/v3 file', async () => parseGguf(await readFile('model.gguf')));
 * ```
 */
export async function readChecked<T>(file: string, expected: string, read: () => T | Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw withFile(error, file, expected);
  }
}

/** The synchronous form of {@link readChecked}. */
export function readCheckedSync<T>(file: string, expected: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    throw withFile(error, file, expected);
  }
}

function withFile(error: unknown, file: string, expected: string): unknown {
  if (InvalidFileError.isInstance(error)) return error;
  if (UnsupportedFormatError.isInstance(error)) return error.message.startsWith(file) ? error : new UnsupportedFormatError(`${file}: ${error.message}`);
  if (BitsmithError.isInstance(error)) {
    if (error.code === 'aborted' || error.code === 'output-folder') return error;
    return new InvalidFileError(file, `${error.message}; expected ${expected}`, { cause: error });
  }
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string') {
    return new InvalidFileError(file, code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory, expected a file' : `cannot read (${code})`, { cause: error });
  }
  const e = error instanceof Error ? error : new Error(String(error));
  return new InvalidFileError(file, `malformed or truncated (${e.name}: ${e.message}); expected ${expected}`, { cause: error });
}
