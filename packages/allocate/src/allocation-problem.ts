/** One option of one layer in an allocation problem: its cost in integer bits and its error (sensitivity). */
export interface AllocationOption {
  /** What the budget counts: all stored bits, or only the codes' bits for a `codeBitsPerWeight` budget. */
  readonly bits: number;
  readonly error: number;
  /** Everything stored (codes, scales, zero points) when `bits` counts only the codes. Default: `bits`. */
  readonly storedBits?: number;
}

/** One layer of an allocation problem: its weight count and its options (same order as the candidates). */
export interface AllocationLayer {
  readonly name: string;
  readonly weights: number;
  readonly options: readonly AllocationOption[];
}

/**
 * A multiple-choice knapsack: choose one option per layer so that the sum of bits is at most `budgetBits` and the sum
 * of errors is smallest. Bits are integers (a candidate's bits per weight times the layer's weight count).
 */
export interface AllocationProblem {
  readonly layers: readonly AllocationLayer[];
  readonly budgetBits: number;
}

/** A solution: the chosen option index per layer, and its totals. */
export interface Allocation {
  readonly choice: Int32Array;
  readonly bits: number;
  readonly error: number;
}

/**
 * Totals of a choice: bits and error summed over layers.
 *
 * @example
 * ```ts
 * const { bits, error } = evaluateChoice(problem, choice);
 * ```
 */
export function evaluateChoice(problem: AllocationProblem, choice: Int32Array): Allocation {
  let bits = 0;
  let error = 0;
  problem.layers.forEach((layer, l) => {
    const o = layer.options[choice[l]!]!;
    bits += o.bits;
    error += o.error;
  });
  return { choice, bits, error };
}

/** Bits of the cheapest choice; `allocate` functions throw when even that exceeds the budget. */
export function minimumBits(problem: AllocationProblem): number {
  let bits = 0;
  for (const layer of problem.layers) bits += Math.min(...layer.options.map((o) => o.bits));
  return bits;
}
