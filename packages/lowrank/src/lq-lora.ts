import { checkOptions, forEachLayer, relativeError, storedBitsPerWeight, type Matrix, type Quantizer, type StoredForm } from '@bitsmith/core';
import type { Backend } from '@bitsmith/linalg';
import { lowRankApproximation } from './compensate-error.js';
import { addLowRank, type FactorStorage } from './low-rank-factors.js';
import { lqLoraOptionsSchema } from './low-rank-step-options.js';
import { quantizeResidual, subtract, type ResidualQuantization } from './quantize-residual.js';
import type { TruncatedSvdOptions } from './truncated-svd.js';

/** Options of {@link lqLora}. */
export interface LqLoraOptions extends ResidualQuantization {
  /** Rank of the low-rank part. */
  rank: number;
  /** Alternations. Default 5. */
  iterations?: number;
  factorStorage?: FactorStorage;
  svd?: Omit<TruncatedSvdOptions, 'backend'>;
  backend?: Backend;
}

/**
 * LQ-LoRA-style decomposition (Guo et al., arXiv:2311.12023) as a quantize step: `W ≈ Q + L` by alternating
 * `Q = quant(W - L)` (round-to-nearest with `format` / `granularity` or the layer's assignment) and
 * `L = SVD_r(W - Q)`, starting from `L = 0`, for `iterations` rounds; the round with the smallest
 * `||W - Q - L||_F` is kept. The weight becomes `Q + L` (dense), stored as `low-rank` around `Q`'s grid; `bitsPerWeight` counts `L`.
 * The paper's Fisher-weighted variant and its ILP over ranks and bits are not implemented here (see `@bitsmith/allocate`
 * for bit plans).
 *
 * @param options - `format` (required), `granularity` (channel), `rank` (required), `iterations` (5), `factorStorage` (`float16`), `svd`, `backend`.
 * @example
 * ```ts
 * const step = lqLora({ format: 'int3', granularity: { type: 'group', size: 32 }, rank: 8, iterations: 5 });
 * ```
 */
export function lqLora(options: LqLoraOptions): Quantizer {
  checkOptions('lqLora', lqLoraOptionsSchema, options);
  const iterations = options.iterations ?? 5;
  return {
    specificationVersion: 'v2',
    id: 'lq-lora',
    kind: 'quantize',
    stores: ['low-rank'],
    requires: [],
    async run(context) {
      const layers = await forEachLayer(context, async (layer) => {
        const w = layer.weight;
        const [rows, columns] = w.shape;
        let low: Matrix = { dtype: 'float32', shape: w.shape, data: new Float32Array(rows * columns) };
        let best: { weight: Matrix; stored: StoredForm; error: number } | undefined;
        for (let t = 0; t < iterations; t++) {
          const q = quantizeResidual(subtract(w, low), options, layer.assignment);
          const factors = await lowRankApproximation(subtract(w, q.weight), {
            rank: options.rank,
            ...(options.factorStorage ? { storage: options.factorStorage } : {}),
            ...(options.svd ? { svd: options.svd } : {}),
            ...(options.backend ? { backend: options.backend } : {}),
          });
          const effective = addLowRank(q.weight, factors.a, factors.b);
          const error = relativeError(w.data, effective.data);
          if (!best || error < best.error) {
            best = { weight: effective, stored: { kind: 'low-rank', base: { kind: 'grid', tensor: q.quantized }, a: factors.a, b: factors.b, factorBits: factors.bits }, error };
          }
          low = subtract(effective, q.weight);
        }
        return { ...layer, weight: best!.weight, stored: best!.stored, bitsPerWeight: storedBitsPerWeight(best!.stored) };
      });
      return { layers, warnings: [] };
    },
  };
}
