import { open } from 'node:fs/promises';
import { ModelFileError } from './model-file-error.js';
import { safetensorsParts, type WritableTensor, type WriteSafetensorsOptions } from './safetensors-writer.js';

// Node only (exported from the package's `node` entry): writes safetensors files to disk.

/**
 * Writes a safetensors file that other readers (Python `safetensors`, candle, transformers.js) accept:
 * 8-byte little-endian header length, JSON header sorted by name with `__metadata__`, padded with spaces to 8-byte
 * alignment, tensors aligned to their element size. Tensors are converted and written one at a time.
 *
 * @example
 * ```ts
 * await writeSafetensors('out.safetensors', {
 *   'w': matrix(new Float32Array([1, 2, 3, 4]), 2, 2),
 *   'w_bf16': { ...matrix(new Float32Array([1, 2, 3, 4]), 2, 2), storeAs: 'BF16' },
 * }, { metadata: { format: 'pt' } });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, WritableTensor>> | ReadonlyMap<string, WritableTensor>,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const { layout, bytes: tensorBytes } = safetensorsParts(tensors, options);
  let handle;
  try {
    handle = await open(path, 'w');
  } catch (cause) {
    throw new ModelFileError(path, `cannot create (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
  try {
    await handle.write(layout.headerBytes, 0, layout.headerBytes.byteLength, 0);
    let position = layout.headerBytes.byteLength;
    for (const entry of layout.entries) {
      const bytes = tensorBytes(entry.name);
      let written = 0;
      while (written < bytes.byteLength) {
        const { bytesWritten } = await handle.write(bytes, written, bytes.byteLength - written, position + written);
        written += bytesWritten;
      }
      position += bytes.byteLength;
    }
  } finally {
    await handle.close();
  }
}

