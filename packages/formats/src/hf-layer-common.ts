import { InvalidArgumentError, UnsupportedFormatError, type QuantizedTensor } from '@bitsmith/core';

/** Checks that a quantized tensor uses a uniform integer format and returns it. */
export function requireIntFormat(q: QuantizedTensor, target: string): { type: 'int'; bits: number; symmetric: boolean } {
  if (q.format.type !== 'int') throw new UnsupportedFormatError(`${target} holds uniform integer formats only, not ${q.format.type}`);
  if (q.tensorScale !== undefined) throw new UnsupportedFormatError(`${target} has no place for a second-level tensor scale`);
  if (!q.format.symmetric && !q.zeroPoints) throw new InvalidArgumentError('zeroPoints', 'an asymmetric tensor needs zero points');
  if (q.zeroPointEncoding === 'float16') throw new UnsupportedFormatError(`${target} stores integer zero points; this tensor has float16 zero points (HQQ's default: use zeroPoint: 'integer')`);
  return q.format;
}

/**
 * A permutation consistent with a `g_idx` (group of each input column): columns stably sorted by group. Undefined
 * when `g_idx` is the natural grouping `floor(k / size)`. Throws when a group does not hold exactly `size` columns
 * (bitsmith's groups are equal-sized).
 */
export function permutationFromGroupIndex(gIdx: Int32Array, size: number): Int32Array | undefined {
  const k = gIdx.length;
  let natural = true;
  const counts = new Int32Array(Math.ceil(k / size));
  for (let c = 0; c < k; c++) {
    const g = gIdx[c]!;
    if (!(g >= 0 && g < counts.length)) throw new InvalidArgumentError('g_idx', `entry ${c} is ${g}; expected a group from 0 to ${counts.length - 1}`);
    counts[g]! += 1;
    if (g !== Math.floor(c / size)) natural = false;
  }
  for (let g = 0; g < counts.length; g++) {
    if (counts[g] !== size) throw new UnsupportedFormatError(`g_idx puts ${counts[g]} columns in group ${g}; bitsmith reads groups of exactly ${size}`);
  }
  if (natural) return undefined;
  const order = Int32Array.from({ length: k }, (_, c) => c);
  return order.sort((a, b) => gIdx[a]! - gIdx[b]! || a - b);
}
