import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { ModelFileError } from './model-file-error.js';
import { parseSafetensorsHeader, readSafetensorsHeaderLength } from './safetensors-header.js';
import { SafetensorsFile, type ByteSource } from './safetensors-reader.js';

// Node only (exported from the package's `node` entry): opens safetensors files on disk.

async function readFully(handle: FileHandle, position: number, length: number, path: string): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0) throw new ModelFileError(path, `truncated: expected ${length} bytes at offset ${position}, the file ended after ${done}`);
    done += bytesRead;
  }
  return out;
}

/**
 * Reads `length` bytes at `position` of the file at `path`, opened for this read only; refuses a file whose size or
 * modification time differ from those it had when it was opened first (its tensors' offsets would be stale).
 */
function readDetached(path: string, size: number, mtimeMs: number, position: number, length: number, into?: Uint8Array): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (cause) {
    throw new ModelFileError(path, `cannot open again to read a weight (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}); the model's weights are read from it while the model is in use`, { cause });
  }
  try {
    const now = fstatSync(fd);
    if (now.size !== size || now.mtimeMs !== mtimeMs) {
      throw new ModelFileError(path, 'changed on disk since the model was loaded; its weights are read from it while the model is in use (load it again, or write outputs elsewhere)');
    }
    const out = into ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const read = readSync(fd, out, done, length - done, position + done);
      if (read === 0) throw new ModelFileError(path, `truncated: expected ${length} bytes at offset ${position}, the file ended after ${done}`);
      done += read;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens a safetensors file: reads and validates the header (clear {@link ModelFileError}s for missing, truncated
 * or malformed files); tensors are read later, one at a time, through positional reads. Its `detachedReader`s read
 * a tensor synchronously even after `close` (the file opened again per read), for weights kept on disk.
 *
 * @example
 * ```ts
 * const file = await openSafetensors('/models/tiny/model.safetensors');
 * const embed = await file.readTensor('lm_head.weight');
 * await file.close();
 * ```
 */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new ModelFileError(path, code === 'ENOENT' ? 'file not found' : `cannot open (${code ?? (cause as Error).message})`, { cause });
  }
  try {
    const { size, mtimeMs } = await handle.stat();
    if (size < 8) readSafetensorsHeaderLength(new Uint8Array(0), size, path);
    const prefix = await readFully(handle, 0, 8, path);
    const headerLength = readSafetensorsHeaderLength(prefix, size, path);
    const json = await readFully(handle, 8, headerLength, path);
    const header = parseSafetensorsHeader(json, size - 8 - headerLength, path);
    let closed = false;
    const source: ByteSource = {
      size,
      read: (position, length) => {
        if (closed) throw new ModelFileError(path, 'the file was closed');
        return readFully(handle, position, length, path);
      },
      readDetached: (position, length, out) => readDetached(path, size, mtimeMs, position, length, out),
      close: async () => {
        if (!closed) {
          closed = true;
          await handle.close();
        }
      },
    };
    return new SafetensorsFile(path, header, source);
  } catch (error) {
    await handle.close();
    throw error;
  }
}

