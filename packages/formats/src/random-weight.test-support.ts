import type { Matrix } from '@bitsmith/core';

/** A seeded uniform generator in [0, 1) (a 32-bit linear congruential sequence), for reproducible test weights. */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** A `rows x columns` float32 weight of seeded values with varying magnitude per entry. */
export function weight(rows: number, columns: number, seed: number): Matrix {
  const r = seeded(seed);
  return { dtype: 'float32', shape: [rows, columns], data: Float32Array.from({ length: rows * columns }, () => (r() - 0.5) * (1 + 2 * r())) };
}
