import type { KvCacheQuantization } from '@bitsmith/core';
import type { Backend } from '@bitsmith/linalg';

/** Attention geometry the cache transforms need. */
export interface KvGeometry {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
}

/**
 * Keys before RoPE: quantizes them here when the cache asks for pre-RoPE keys (KVQuant, arXiv:2401.18079).
 * `keys` is `[tokens, kvHeads * headDim]`, changed in place.
 */
export async function cacheKeysBeforeRope(cache: KvCacheQuantization | undefined, keys: Float32Array, tokens: number, geometry: KvGeometry): Promise<void> {
  if (cache?.keys && cache.preRopeKeys) await cache.keys.apply(keys, tokens, geometry.numKvHeads * geometry.headDim);
}

/**
 * Queries, keys and values after RoPE, as the cache would hold them: with `hadamard`, rotates queries, keys and values
 * per head by the orthonormal Walsh-Hadamard matrix (scores are unchanged: `(qH)(kH)^T = qk^T`); then quantizes keys
 * (unless quantized before RoPE) and values. All arrays are changed in place.
 */
export async function cacheAfterRope(
  cache: KvCacheQuantization | undefined,
  queries: Float32Array,
  keys: Float32Array,
  values: Float32Array,
  tokens: number,
  geometry: KvGeometry,
  backend: Backend,
): Promise<void> {
  if (!cache) return;
  const { numHeads, numKvHeads, headDim } = geometry;
  if (cache.hadamard) {
    await backend.fwht({ rows: tokens * numHeads, n: headDim, data: queries });
    await backend.fwht({ rows: tokens * numKvHeads, n: headDim, data: keys });
    await backend.fwht({ rows: tokens * numKvHeads, n: headDim, data: values });
  }
  if (cache.keys && !cache.preRopeKeys) await cache.keys.apply(keys, tokens, numKvHeads * headDim);
  if (cache.values) await cache.values.apply(values, tokens, numKvHeads * headDim);
}

/**
 * Undoes the value rotation on the attention output `[tokens, heads * headDim]`: the orthonormal Sylvester Hadamard
 * matrix is symmetric and its own inverse, so `P (vH) H = P v`. In place; nothing to do without `hadamard`.
 */
export async function cacheAfterAttention(cache: KvCacheQuantization | undefined, attended: Float32Array, tokens: number, geometry: KvGeometry, backend: Backend): Promise<void> {
  if (cache?.hadamard) await backend.fwht({ rows: tokens * geometry.numHeads, n: geometry.headDim, data: attended });
}
