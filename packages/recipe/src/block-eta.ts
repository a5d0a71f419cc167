/**
 * Estimates the remaining time of a block-by-block run from the blocks finished so far in this process: the mean
 * seconds per block times the blocks not yet finished, less the time already spent on the block in hand. Blocks of
 * a decoder are alike in size, so the mean is the estimate; before the first block finishes there is none.
 *
 * @example
 * ```ts
 * const eta = new BlockEta(24);
 * eta.finished(0, 12.5);        // block 0 took 12.5 s
 * eta.remaining(1, 3);          // 22 blocks left x 12.5 s - 3 s spent on block 1 = 272 s
 * eta.blockRemaining(3);        // 12.5 - 3 = 9.5 s
 * ```
 */
export class BlockEta {
  private seconds = 0;
  private count = 0;

  /** @param totalBlocks The number of blocks in the run. */
  constructor(readonly totalBlocks: number) {}

  /** Records that block `index` took `seconds`. */
  finished(_index: number, seconds: number): void {
    this.seconds += seconds;
    this.count += 1;
  }

  /** Mean seconds per block finished in this process; undefined before the first. */
  get meanSeconds(): number | undefined {
    return this.count === 0 ? undefined : this.seconds / this.count;
  }

  /**
   * Seconds left in the run while block `current` (0-based) is in hand and `inBlock` seconds were spent on it;
   * `current === totalBlocks` means every block is done (0). Undefined before the first block finished.
   */
  remaining(current: number, inBlock = 0): number | undefined {
    const mean = this.meanSeconds;
    if (mean === undefined) return current >= this.totalBlocks ? 0 : undefined;
    const left = Math.max(0, this.totalBlocks - current);
    return Math.max(0, left * mean - inBlock);
  }

  /** Seconds left in the block in hand after `inBlock` seconds on it (at least 0); undefined before the first block finished. */
  blockRemaining(inBlock: number): number | undefined {
    const mean = this.meanSeconds;
    return mean === undefined ? undefined : Math.max(0, mean - inBlock);
  }
}

/**
 * Formats a duration in seconds for progress lines: `42 s`, `3 min 05 s`, `2 h 07 min`; `?` when unknown.
 *
 * @example
 * ```ts
 * formatDuration(185); // '3 min 05 s'
 * ```
 */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}
