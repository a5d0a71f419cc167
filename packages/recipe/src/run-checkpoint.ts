import { BitsmithError } from '@bitsmith/core';
import { decodeValue, encodeValue } from './checkpoint-encoding.js';

/**
 * Where a recipe run keeps its checkpoint: named entries of plain data (objects, arrays, Maps, typed arrays), each
 * written atomically (a reader sees the earlier value or the new one, never a mix). The runner writes one entry per
 * finished block (`block-<i>`), then the `head` that makes them count; `--resume` reads them back.
 * `directoryCheckpointStore` (the `node` entry) keeps them in a folder; {@link memoryCheckpointStore} in memory.
 */
export interface RunCheckpointStore {
  /** Where the checkpoint lives, for messages (a folder path, `memory`). */
  readonly location: string;
  /** The value last written under `name`, or undefined when there is none. */
  read(name: string): Promise<unknown>;
  /** Writes `value` under `name`, replacing an earlier value atomically; returns the bytes written when known. */
  write(name: string, value: unknown): Promise<number | undefined>;
  /** Removes every entry (a finished run, or a fresh start over an old checkpoint). */
  clear(): Promise<void>;
}

/**
 * A checkpoint store in memory: values are encoded on write and decoded on read (copies, as a file would give), so a
 * run resumed from it sees exactly what a run resumed from disk sees. For tests and for browsers, where a run that is
 * stopped (`AbortSignal`) can be continued in the same page.
 *
 * @example
 * ```ts
 * const store = memoryCheckpointStore();
 * await runRecipe(model, recipe, sequences, { checkpoint: { store, fingerprint: { model: 'tiny' } }, signal }).catch(() => {});
 * await runRecipe(model2, recipe, sequences, { checkpoint: { store, fingerprint: { model: 'tiny' }, resume: true } });
 * ```
 */
export function memoryCheckpointStore(): RunCheckpointStore {
  const entries = new Map<string, { json: string; arrays: ArrayBufferView[] }>();
  return {
    location: 'memory',
    async read(name) {
      const entry = entries.get(name);
      if (!entry) return undefined;
      return decodeValue(entry.json, entry.arrays.map((a) => (a as unknown as { slice(): ArrayBufferView }).slice()), `memory:${name}`);
    },
    async write(name, value) {
      const { json, arrays } = encodeValue(value);
      const copies = arrays.map((a) => a.slice());
      entries.set(name, { json, arrays: copies });
      return json.length + copies.reduce((n, a) => n + a.byteLength, 0);
    },
    async clear() {
      entries.clear();
    },
  };
}

/** Checkpointing of one {@link runRecipe} call (`RunRecipeOptions.checkpoint`). */
export interface RunCheckpointOptions {
  store: RunCheckpointStore;
  /**
   * What identifies the run's inputs, as named strings (hashes of the model files and of the recipe text, the
   * calibration options, ...). A resume whose fingerprint differs in any entry is refused with
   * {@link CheckpointMismatchError} naming the entries. The runner adds the calibration tokens, the model's structure
   * and the recipe's step ids itself.
   */
  fingerprint: Readonly<Record<string, string>>;
  /** Continue from the store's checkpoint when there is one. Default false: start over, clearing the store first. */
  resume?: boolean;
  /** State of the caller to keep with each checkpoint (plain data), handed back through `restore` on resume. */
  save?: () => unknown;
  restore?: (value: unknown) => void;
}

/** A `--resume` found a checkpoint made from other inputs (model, recipe, calibration, options): which ones differ. */
export class CheckpointMismatchError extends BitsmithError {
  /** The fingerprint entries that differ. */
  readonly differences: readonly string[];
  /** Where the checkpoint is. */
  readonly location: string;
  constructor(location: string, differences: readonly string[]) {
    super(
      'checkpoint-mismatch',
      `the checkpoint in ${location} was made with a different ${differences.join(', ')}; resuming would mix two runs. Run without --resume to start over (the old checkpoint is then replaced), or resume with the inputs of the interrupted run`,
    );
    this.name = 'CheckpointMismatchError';
    this.differences = differences;
    this.location = location;
  }
  /** True when `error` is a {@link CheckpointMismatchError} (checked by code, so it works across package copies). */
  static override isInstance(error: unknown): error is CheckpointMismatchError {
    return BitsmithError.isInstance(error) && error.code === 'checkpoint-mismatch';
  }
}

/**
 * A 64-bit FNV-1a digest (hex) of token sequences, lengths included: identifies the calibration set in a checkpoint's
 * fingerprint without storing it. @internal
 */
export function sequencesDigest(sequences: readonly ArrayLike<number>[]): string {
  // Two 32-bit FNV-1a lanes with different offsets over each value's 4 bytes.
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  const mix = (value: number) => {
    for (let byte = 0; byte < 4; byte++) {
      const x = (value >>> (byte * 8)) & 0xff;
      a = Math.imul(a ^ x, 0x01000193) >>> 0;
      b = Math.imul(b ^ x, 0x01000193) >>> 0;
      b = (b ^ (b >>> 13)) >>> 0;
    }
  };
  mix(sequences.length);
  for (const s of sequences) {
    mix(s.length);
    for (let i = 0; i < s.length; i++) mix(s[i]! | 0);
  }
  return `${a.toString(16).padStart(8, '0')}${b.toString(16).padStart(8, '0')}`;
}

/** The entries of two fingerprints that differ (present in one only, or with other values), sorted. @internal */
export function fingerprintDifferences(saved: Readonly<Record<string, string>>, current: Readonly<Record<string, string>>): string[] {
  const keys = new Set([...Object.keys(saved), ...Object.keys(current)]);
  return [...keys].filter((k) => saved[k] !== current[k]).sort();
}
