import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, rmdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointFileError, decodeValue, encodeValue, typedArrayConstructor, typedArrayName } from './checkpoint-encoding.js';
import type { RunCheckpointStore } from './run-checkpoint.js';

const MAGIC = 'BSCKPT01';
const CHUNK = 1 << 30; // largest single read/write

async function writeFully(file: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await file.write(bytes, done, Math.min(CHUNK, bytes.length - done), position + done);
    done += bytesWritten;
  }
}

async function readFully(file: FileHandle, into: Uint8Array, position: number, path: string): Promise<void> {
  for (let done = 0; done < into.length; ) {
    const { bytesRead } = await file.read(into, done, Math.min(CHUNK, into.length - done), position + done);
    if (bytesRead === 0) throw new CheckpointFileError(path, `ends early (expected ${into.length - done} more bytes at offset ${position + done}); the file is truncated`);
    done += bytesRead;
  }
}

const asBytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * A {@link RunCheckpointStore} in a folder: each entry is one file `<name>.ckpt` (magic `BSCKPT01`, the length of a
 * JSON index, the index, then the typed arrays' bytes, 8-byte aligned, written straight from memory with no copy),
 * written to a temporary name, flushed to disk and renamed over the previous one, so a run killed at any moment leaves
 * the earlier entry or the new one. The folder is created on the first write.
 *
 * @example
 * ```ts
 * const store = directoryCheckpointStore('out/.gptq-w4.checkpoint');
 * await runRecipe(model, recipe, sequences, { checkpoint: { store, fingerprint, resume: true } });
 * await store.clear(); // after the output is written
 * ```
 */
export function directoryCheckpointStore(dir: string): RunCheckpointStore {
  const path = (name: string) => {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new CheckpointFileError(dir, `entry name '${name}' is not a plain file name`);
    return join(dir, `${name}.ckpt`);
  };
  return {
    location: dir,
    async read(name) {
      const file = path(name);
      let handle: FileHandle;
      try {
        handle = await open(file, 'r');
      } catch (cause) {
        if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new CheckpointFileError(file, `cannot be read (${(cause as Error).message})`, { cause });
      }
      try {
        const head = new Uint8Array(16);
        await readFully(handle, head, 0, file);
        if (new TextDecoder().decode(head.subarray(0, 8)) !== MAGIC) throw new CheckpointFileError(file, `is not a bitsmith checkpoint (expected the magic ${MAGIC})`);
        const indexBytes = Number(new DataView(head.buffer).getBigUint64(8, true));
        const indexBuffer = new Uint8Array(indexBytes);
        await readFully(handle, indexBuffer, 16, file);
        let index: { json: string; arrays: { type: string; offset: number; length: number }[] };
        try {
          index = JSON.parse(new TextDecoder().decode(indexBuffer)) as typeof index;
        } catch (cause) {
          throw new CheckpointFileError(file, `its index is not valid JSON (${(cause as Error).message})`, { cause });
        }
        const base = 16 + indexBytes + ((8 - ((16 + indexBytes) % 8)) % 8);
        const arrays: ArrayBufferView[] = [];
        for (const a of index.arrays) {
          const Ctor = typedArrayConstructor(a.type);
          if (!Ctor) throw new CheckpointFileError(file, `names an unknown array type '${a.type}'`);
          const array = new Ctor(a.length);
          await readFully(handle, asBytes(array), base + a.offset, file);
          arrays.push(array);
        }
        return decodeValue(index.json, arrays, file);
      } finally {
        await handle.close();
      }
    },
    async write(name, value) {
      const file = path(name);
      await mkdir(dir, { recursive: true });
      const { json, arrays } = encodeValue(value);
      let offset = 0;
      let dataEnd = 0;
      const layout = arrays.map((a) => {
        const entry = { type: typedArrayName(a), offset, length: (a as unknown as { length: number }).length };
        dataEnd = offset + a.byteLength;
        offset += a.byteLength + ((8 - (a.byteLength % 8)) % 8);
        return entry;
      });
      const index = new TextEncoder().encode(JSON.stringify({ json, arrays: layout }));
      const head = new Uint8Array(16);
      head.set(new TextEncoder().encode(MAGIC));
      new DataView(head.buffer).setBigUint64(8, BigInt(index.length), true);
      const base = 16 + index.length + ((8 - ((16 + index.length) % 8)) % 8);
      const temporary = `${file}.tmp-${randomBytes(4).toString('hex')}`;
      const handle = await open(temporary, 'w');
      try {
        await writeFully(handle, head, 0);
        await writeFully(handle, index, 16);
        for (let i = 0; i < arrays.length; i++) await writeFully(handle, asBytes(arrays[i]!), base + layout[i]!.offset);
        await handle.sync();
      } catch (error) {
        await handle.close();
        await rm(temporary, { force: true });
        throw error;
      }
      await handle.close();
      await rename(temporary, file);
      return arrays.length > 0 ? base + dataEnd : 16 + index.length;
    },
    async clear() {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        return;
      }
      for (const name of names) if (name.endsWith('.ckpt') || name.includes('.ckpt.tmp-')) await rm(join(dir, name), { force: true });
      // Only when nothing else is in it (the folder is the caller's choice).
      await rmdir(dir).catch(() => undefined);
    },
  };
}
