import { BitsmithError } from './errors.js';

/**
 * A file (safetensors, GGUF, ONNX, a checkpoint's config, a text file) is missing, truncated or malformed. The message
 * starts with the file's path and says what is wrong and what was expected, so command-line tools print it as is.
 * Its code is `'invalid-file'`; `@bitsmith/models`' `ModelFileError` is a subclass.
 *
 * @example
 * ```ts
 * try { parseSafetensorsHeader(json, size, 'model.safetensors'); }
 * catch (e) { if (InvalidFileError.isInstance(e)) console.error(e.message); } // "model.safetensors: ..."
 * ```
 */
export class InvalidFileError extends BitsmithError {
  /** Path (or description) of the offending file. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('invalid-file', `${path}: ${message}`, options);
    this.name = 'InvalidFileError';
    this.path = path;
  }
  /** True when `error` is an {@link InvalidFileError} or a subclass (checked by code, so it works across package copies). */
  static override isInstance(error: unknown): error is InvalidFileError {
    return BitsmithError.isInstance(error) && error.code === 'invalid-file';
  }
}
