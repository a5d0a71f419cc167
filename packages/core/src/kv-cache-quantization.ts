import { validateActivationScheme, type ActivationScheme } from './activation-quantization.js';
import { InvalidArgumentError } from './errors.js';
import type { RuntimeInputTransform } from './model-view.js';

/**
 * How a recipe quantizes the attention's key/value cache (KV4, KV8, FP8 KV; KVQuant arXiv:2401.18079, RotateKV,
 * QuaRot arXiv:2404.00456). Keys and values are `[tokens, kvHeads * headDim]` per block; their schemes are activation
 * schemes over that layout, where `{ type: 'group', size: headDim }` is per token and head and `channel` (static) is
 * KVQuant's per-channel key scale.
 *
 * - `keys` / `values`: the scheme of each (either may be absent: that cache stays in float).
 * - `hadamard`: rotate queries and keys (after RoPE) and values by the orthonormal Walsh-Hadamard matrix of the head
 *   dimension before quantizing, and rotate the attention output back (exact in float: `(qH)(kH)^T = qk^T`,
 *   `P (vH) H = P v`); spreads per-channel outliers across the head. Needs a power-of-two head dimension. Default false.
 * - `preRopeKeys`: quantize keys before RoPE is applied (KVQuant), so per-channel key scales see unrotated channels.
 *   Default false (keys are quantized as the cache holds them, after RoPE).
 */
export interface KvCacheScheme {
  readonly keys?: ActivationScheme;
  readonly values?: ActivationScheme;
  readonly hadamard?: boolean;
  readonly preRopeKeys?: boolean;
}

/**
 * What a model block applies to its keys and values at run time: the quantizers (run-time transforms over
 * `[tokens, kvHeads * headDim]`, in place) and the options of {@link KvCacheScheme}.
 */
export interface KvCacheQuantization {
  readonly keys?: RuntimeInputTransform;
  readonly values?: RuntimeInputTransform;
  readonly hadamard?: boolean;
  readonly preRopeKeys?: boolean;
}

/**
 * Checks a KV-cache scheme against the attention geometry and throws an `InvalidArgumentError` that says what is
 * wrong and what was expected.
 *
 * @example
 * ```ts
 * validateKvCacheScheme({ keys: { format: parseFormat('int4'), granularity: { type: 'group', size: 64 }, dynamic: true } }, 64);
 * ```
 */
export function validateKvCacheScheme(scheme: KvCacheScheme, headDim?: number): void {
  if (!scheme.keys && !scheme.values) throw new InvalidArgumentError('kvCache', 'quantizes neither keys nor values; expected keys, values or both');
  for (const [field, s] of [['kvCache.keys', scheme.keys], ['kvCache.values', scheme.values]] as const) {
    if (!s) continue;
    try {
      validateActivationScheme(s);
    } catch (e) {
      throw new InvalidArgumentError(field, (e as Error).message);
    }
    if (headDim !== undefined && s.granularity.type === 'group' && headDim % s.granularity.size !== 0) {
      throw new InvalidArgumentError(`${field}.granularity.size`, `${s.granularity.size} does not divide the head dimension ${headDim}; expected a divisor of ${headDim} (the head dimension itself for per-head scales)`);
    }
  }
  if (scheme.hadamard && headDim !== undefined && (headDim & (headDim - 1)) !== 0) {
    throw new InvalidArgumentError('kvCache.hadamard', `needs a power-of-two head dimension; this model's is ${headDim}`);
  }
}
