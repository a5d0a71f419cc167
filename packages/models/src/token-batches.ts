/** Consecutive batches of whole sequences of at most `budget` tokens each (a longer sequence alone). @internal */
export function tokenBatches(lengths: readonly number[], budget: number): number[][] {
  const batches: number[][] = [];
  let current: number[] = [];
  let tokens = 0;
  for (const n of lengths) {
    if (current.length > 0 && tokens + n > budget) {
      batches.push(current);
      current = [];
      tokens = 0;
    }
    current.push(n);
    tokens += n;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
