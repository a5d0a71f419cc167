import { randomBytes } from 'node:crypto';
import { mkdir, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { BitsmithError } from '@bitsmith/core';

/**
 * An output folder cannot be used or written: it is (or lies inside) an input, it is not empty, it cannot be created,
 * or writing into it failed (ENOSPC, EACCES, ...). Nothing was written when this is thrown: earlier content stays.
 */
export class OutputFolderError extends BitsmithError {
  /** The output folder as given. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('output-folder', `--out ${path}: ${message}`, options);
    this.name = 'OutputFolderError';
    this.path = path;
  }
  /** True when `error` is an {@link OutputFolderError} (checked by code, so it works across package copies). */
  static override isInstance(error: unknown): error is OutputFolderError {
    return BitsmithError.isInstance(error) && error.code === 'output-folder';
  }
}

/** A folder being written: everything goes into `path` (a hidden staging folder beside the target) until `commit`. */
export interface StagedOutput {
  /** The folder the user asked for. */
  readonly target: string;
  /** Where to write now: `.<name>.partial-XXXXXX` in the target's parent. */
  readonly path: string;
  /** Moves the staged folder onto the target (replacing an earlier one only now, by rename). */
  commit(): Promise<void>;
  /** Deletes the staged folder (after a failure); the target is untouched. */
  discard(): Promise<void>;
}

/** Options of {@link stageOutputFolder}. */
export interface StageOutputOptions {
  /** Input files or folders the output may neither be nor lie inside (nor contain). Default none. */
  inputs?: readonly string[];
  /** Replace a non-empty target. Default false: a non-empty target is refused. */
  overwrite?: boolean;
}

async function realOrResolved(path: string): Promise<string> {
  // The real path of the nearest existing ancestor, with the rest appended (the target may not exist yet).
  const absolute = resolve(path);
  let head = absolute;
  const tail: string[] = [];
  for (;;) {
    try {
      return join(await realpath(head), ...tail);
    } catch {
      const parent = dirname(head);
      if (parent === head) return absolute;
      tail.unshift(basename(head));
      head = parent;
    }
  }
}

const inside = (child: string, parent: string) => {
  const r = relative(parent, child);
  return r !== '' && !r.startsWith('..') && !r.startsWith(sep) && r !== '..';
};

function errnoCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Prepares an output folder for an atomic write, before any work starts: refuses a target equal to, inside, or
 * containing an input; refuses a non-empty target unless `overwrite`; creates a hidden staging folder beside the
 * target (which proves the parent is writable). Write into `staged.path`, then `commit()`; on failure `discard()`.
 * A run killed before `commit` leaves only the `.NAME.partial-*` folder and never touches the target; `commit`
 * replaces an earlier target by two renames, so it is never left half-written.
 *
 * @example
 * ```ts
 * const staged = await stageOutputFolder('out/gptq-w4', { inputs: ['models/tiny'] });
 * try { await writeFile(join(staged.path, 'config.json'), text); await staged.commit(); }
 * catch (e) { await staged.discard(); throw e; }
 * ```
 */
export async function stageOutputFolder(out: string, options: StageOutputOptions = {}): Promise<StagedOutput> {
  const target = resolve(out);
  const real = await realOrResolved(target);
  for (const input of options.inputs ?? []) {
    const source = await realOrResolved(input);
    if (real === source) throw new OutputFolderError(out, `is the input ${input}; writing there would destroy it. Choose another output folder`);
    if (inside(real, source)) throw new OutputFolderError(out, `lies inside the input ${input}; choose an output folder outside it`);
    if (inside(source, real)) throw new OutputFolderError(out, `contains the input ${input}; replacing it would delete the input. Choose another output folder`);
  }
  let existing;
  try {
    existing = await stat(target);
  } catch (cause) {
    const code = errnoCode(cause);
    if (code === 'ENOTDIR') throw new OutputFolderError(out, 'a parent of it is a file, not a folder (ENOTDIR); expected a path whose parents are folders', { cause });
    if (code !== 'ENOENT') throw new OutputFolderError(out, `cannot be examined (${code ?? (cause as Error).message})`, { cause });
  }
  if (existing) {
    if (!existing.isDirectory()) throw new OutputFolderError(out, 'is a file; expected a folder (new, or empty, or --overwrite to replace a folder)');
    const entries = await readdir(target);
    if (entries.length > 0 && !options.overwrite) {
      throw new OutputFolderError(out, `is not empty (${entries.length} entries, e.g. ${entries.slice(0, 3).join(', ')}); pass --overwrite to replace it, or choose a new folder`);
    }
  }
  const parent = dirname(target);
  let path: string;
  try {
    await mkdir(parent, { recursive: true });
    // mkdir (not mkdtemp, which makes 0700 folders) so the finished folder gets the user's usual permissions.
    path = join(parent, `.${basename(target)}.partial-${randomBytes(4).toString('hex')}`);
    await mkdir(path);
  } catch (cause) {
    const code = errnoCode(cause);
    throw new OutputFolderError(out, `cannot write into ${parent} (${code ?? (cause as Error).message}); expected a writable folder`, { cause });
  }
  let done = false;
  return {
    target,
    path,
    async commit() {
      if (done) return;
      const before = await stat(target).catch(() => undefined);
      try {
        if (before) {
          const old = `${path}.replaced`;
          await rename(target, old);
          try {
            await rename(path, target);
          } catch (error) {
            await rename(old, target);
            throw error;
          }
          done = true;
          await rm(old, { recursive: true, force: true });
        } else {
          await rename(path, target);
          done = true;
        }
      } catch (cause) {
        throw new OutputFolderError(out, `moving the finished output into place failed (${errnoCode(cause) ?? (cause as Error).message}); it is in ${path}`, { cause });
      }
    },
    async discard() {
      if (done) return;
      done = true;
      await rm(path, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `write(stagingPath)` into a staged output folder and commits it; on any failure deletes the staging folder
 * and rethrows (file-system errors such as ENOSPC become an {@link OutputFolderError} saying nothing was written).
 *
 * @example
 * ```ts
 * await writeOutputFolder(staged, async (dir) => writeFile(join(dir, 'a.json'), '{}'));
 * ```
 */
export async function writeOutputFolder<T>(staged: StagedOutput, write: (path: string) => Promise<T>): Promise<T> {
  try {
    const result = await write(staged.path);
    await staged.commit();
    return result;
  } catch (error) {
    await staged.discard();
    const code = errnoCode(error);
    if (!BitsmithError.isInstance(error) && code) {
      throw new OutputFolderError(staged.target, `writing failed (${code}: ${(error as Error).message}); nothing was written and any earlier content is unchanged`, { cause: error });
    }
    throw error;
  }
}
