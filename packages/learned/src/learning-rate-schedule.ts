import { InvalidArgumentError } from '@bitsmith/core';

/**
 * A learning-rate schedule: the factor multiplying the base learning rate at `iteration` (0-based) of `total`.
 * - `constant`: 1.
 * - `linear`: from 1 down to 0 (PyTorch's `LinearLR(start_factor=1, end_factor=0, total_iters=total)`, AutoRound's default): `1 - iteration / total`.
 * - `cosine`: `(1 + cos(pi * iteration / total)) / 2`.
 * `warmup` iterations (default 0) ramp linearly from `1 / (warmup + 1)` to 1 before the schedule starts.
 */
export type LearningRateSchedule = 'constant' | 'linear' | 'cosine' | { readonly type: 'constant' | 'linear' | 'cosine'; readonly warmup?: number };

/**
 * The factor of a {@link LearningRateSchedule} at an iteration.
 *
 * @example
 * ```ts
 * scheduleFactor('linear', 50, 200); // 0.75
 * scheduleFactor({ type: 'cosine', warmup: 10 }, 0, 100); // 1 / 11
 * ```
 */
export function scheduleFactor(schedule: LearningRateSchedule, iteration: number, total: number): number {
  if (!Number.isInteger(total) || total < 1) throw new InvalidArgumentError('total', `got ${total}; expected a positive integer number of iterations`);
  if (!Number.isInteger(iteration) || iteration < 0 || iteration >= total) throw new InvalidArgumentError('iteration', `got ${iteration}; expected an integer in [0, ${total})`);
  const { type, warmup = 0 } = typeof schedule === 'string' ? { type: schedule } : schedule;
  if (!Number.isInteger(warmup) || warmup < 0 || warmup >= total) throw new InvalidArgumentError('warmup', `got ${warmup}; expected an integer in [0, ${total})`);
  if (iteration < warmup) return (iteration + 1) / (warmup + 1);
  const t = (iteration - warmup) / (total - warmup);
  switch (type) {
    case 'constant':
      return 1;
    case 'linear':
      return 1 - t;
    case 'cosine':
      return (1 + Math.cos(Math.PI * t)) / 2;
    default:
      throw new InvalidArgumentError('schedule', `unknown schedule '${String(type)}'; expected constant, linear or cosine`);
  }
}
