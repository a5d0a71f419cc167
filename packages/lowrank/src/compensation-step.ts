import { forEachLayer, storedBitsPerWeight, type LayerState, type Quantizer, type StatisticRequest, type StepContext, type StepWarning, type StoredForm } from '@bitsmith/core';
import type { Backend } from '@bitsmith/linalg';
import { lowRankApproximation, quantizationError } from './compensate-error.js';
import type { ErrorWhitening } from './error-whitening.js';
import { addLowRank, type FactorStorage } from './low-rank-factors.js';
import type { TruncatedSvdOptions } from './truncated-svd.js';

/** Options every compensate step of this package takes. */
export interface CompensationOptions {
  /** Rank of the correction `A B` (clamped to the layer's smaller side). */
  rank: number;
  /** Factor storage: `float16` (default) or `int8` (per-row scales); its bits are added to the layer's bits per weight. */
  factorStorage?: FactorStorage;
  /** SVD method (`auto`: exact up to 512, randomized above), power iterations, seed. */
  svd?: Omit<TruncatedSvdOptions, 'backend'>;
  backend?: Backend;
}

/**
 * Builds a compensate step: for each layer, `E = reference - weight` (the runner's `LayerState.reference` is the float
 * weight entering the first quantize step, `weight` the dequantized `Q(W)`), rank-`r` factors of `E` in the basis that
 * `whitening` chooses, and the dense fake-quant weight `Q(W) + A B`. The layer's stored form becomes `low-rank` around
 * the one it had, and its `bitsPerWeight` grows by the factors' bits over its weight count. A layer without `reference` (no quantize step ran on it) is passed through with a warning.
 * Internal helper of {@link lorc}, {@link lqer} and {@link eora}.
 */
export function compensationStep(
  id: string,
  requires: readonly StatisticRequest[],
  options: CompensationOptions,
  whiteningOf: (context: StepContext, layer: LayerState) => ErrorWhitening | Promise<ErrorWhitening>,
): Quantizer {
  return {
    specificationVersion: 'v2',
    id,
    kind: 'compensate',
    stores: ['low-rank'],
    requires,
    async run(context) {
      const warnings: StepWarning[] = [];
      const layers = await forEachLayer(context, async (layer) => {
        if (!layer.reference) {
          warnings.push({ step: id, layer: layer.name, message: 'no float reference weight (no quantize step ran on this layer); left unchanged' });
          return layer;
        }
        const [rows, columns] = layer.weight.shape;
        const factors = await lowRankApproximation(quantizationError(layer.reference, layer.weight), {
          rank: options.rank,
          whitening: await whiteningOf(context, layer),
          ...(options.factorStorage ? { storage: options.factorStorage } : {}),
          ...(options.svd ? { svd: options.svd } : {}),
          ...(options.backend ? { backend: options.backend } : {}),
        });
        // The layer's stored form (what the quantize step returned) gains the factors; a layer the runner handed no
        // stored form is float32 underneath.
        const base: StoredForm = layer.stored ?? { kind: 'float', weight: layer.weight, storage: 'float32' };
        const stored: StoredForm = { kind: 'low-rank', base, a: factors.a, b: factors.b, factorBits: factors.bits };
        return { ...layer, weight: addLowRank(layer.weight, factors.a, factors.b), stored, bitsPerWeight: storedBitsPerWeight(stored) };
      });
      return { layers, warnings };
    },
  };
}
