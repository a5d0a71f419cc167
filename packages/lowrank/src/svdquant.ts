import { checkOptions, forEachLayer, storedBitsPerWeight, type Quantizer, type StoredForm } from '@bitsmith/core';
import type { Backend } from '@bitsmith/linalg';
import { lowRankApproximation } from './compensate-error.js';
import { svdQuantOptionsSchema } from './low-rank-step-options.js';
import { addLowRank, type FactorStorage } from './low-rank-factors.js';
import { quantizeResidual, subtract, type ResidualQuantization } from './quantize-residual.js';
import type { TruncatedSvdOptions } from './truncated-svd.js';

/** Options of {@link svdQuant}. */
export interface SvdQuantOptions extends ResidualQuantization {
  /** Rank of the float low-rank branch. */
  rank: number;
  /** Branch storage: `float16` (default, as SVDQuant keeps it in 16 bits) or `int8`. */
  factorStorage?: FactorStorage;
  svd?: Omit<TruncatedSvdOptions, 'backend'>;
  backend?: Backend;
}

/**
 * SVDQuant (Li et al., arXiv:2411.05007) as a quantize step: the top-`r` singular components of the weight (smoothed
 * by any transform step before it, e.g. `smoothQuant`, which moves activation outliers into the weight as SVDQuant
 * does) become a low-rank branch `L = A B` kept in 16 bits, and the residual `W - L`, whose outliers the branch
 * absorbed, is quantized by round-to-nearest with `format` / `granularity` (or the layer's bit-plan assignment).
 * The layer's weight becomes `Q(W - L) + L`, stored as `low-rank` around the residual's grid (so exporters see the
 * branch: a grid-only format refuses the layer rather than drop it); `bitsPerWeight` counts the branch. The residual is rounded to nearest, not solved GPTQ-style (algorithm packages do not import each other);
 * follow with a compensate step to correct the residual's error further.
 *
 * @param options - `format` (required), `granularity` (channel), `rank` (required), `factorStorage` (`float16`), `svd`, `backend`.
 * @example
 * ```ts
 * const step = svdQuant({ format: 'int4', granularity: { type: 'group', size: 64 }, rank: 16 });
 * ```
 */
export function svdQuant(options: SvdQuantOptions): Quantizer {
  checkOptions('svdQuant', svdQuantOptionsSchema, options);
  return {
    specificationVersion: 'v2',
    id: 'svdquant',
    kind: 'quantize',
    stores: ['low-rank'],
    requires: [],
    async run(context) {
      const layers = await forEachLayer(context, async (layer) => {
        const [rows, columns] = layer.weight.shape;
        const branch = await lowRankApproximation(layer.weight, {
          rank: options.rank,
          ...(options.factorStorage ? { storage: options.factorStorage } : {}),
          ...(options.svd ? { svd: options.svd } : {}),
          ...(options.backend ? { backend: options.backend } : {}),
        });
        const zero = { dtype: 'float32' as const, shape: layer.weight.shape, data: new Float32Array(rows * columns) };
        const low = addLowRank(zero, branch.a, branch.b);
        const residual = quantizeResidual(subtract(layer.weight, low), options, layer.assignment);
        const stored: StoredForm = { kind: 'low-rank', base: { kind: 'grid', tensor: residual.quantized }, a: branch.a, b: branch.b, factorBits: branch.bits };
        return { ...layer, weight: addLowRank(residual.weight, branch.a, branch.b), stored, bitsPerWeight: storedBitsPerWeight(stored) };
      });
      return { layers, warnings: [] };
    },
  };
}
