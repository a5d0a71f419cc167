import { InvalidFileError } from '@bitsmith/core';

/**
 * A model file (safetensors, config.json, tokenizer.json, a text file) is missing, truncated or malformed.
 * The message starts with the file's path and says what was wrong, so command-line tools can print it as is.
 *
 * A subclass of core's `InvalidFileError` (code `'invalid-file'`), which the shared readers (safetensors headers) throw.
 *
 * @example
 * ```ts
 * try { await openSafetensors('model.safetensors'); }
 * catch (e) { if (ModelFileError.isInstance(e)) console.error(e.message); } // "model.safetensors: header length ..."
 * ```
 */
export class ModelFileError extends InvalidFileError {
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(path, message, options);
    this.name = 'ModelFileError';
  }
}

/**
 * What went wrong, from an error met while reading `path`, without the path when the error starts with it already
 * (a {@link ModelFileError} about the same file), so a wrapping message names the file once. @internal
 */
export function fileErrorReason(cause: unknown, path: string): string {
  const message = cause instanceof Error ? cause.message : String(cause);
  return message.startsWith(`${path}: `) ? message.slice(path.length + 2) : message;
}
