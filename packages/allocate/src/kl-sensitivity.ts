import { calibrationBlocks, requireLogits, type Matrix, type QuantizableLanguageModel, type QuantizableModel } from '@bitsmith/core';
import { quantizeCandidate, type ResolvedCandidate } from './candidate.js';

/** The model's logits on the calibration sequences: core's calibration driver walks the blocks (no statistics), then the head. */
async function forward(model: QuantizableLanguageModel, calibration: readonly ArrayLike<number>[]): Promise<Matrix> {
  const walk = calibrationBlocks(model, calibration, {});
  let next = await walk.next();
  while (!next.done) next = await walk.next();
  return model.logits(next.value);
}

function logSoftmaxRows(logits: Matrix): Float64Array {
  const [rows, vocab] = logits.shape;
  const out = new Float64Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    const o = r * vocab;
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, logits.data[o + v]!);
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(logits.data[o + v]! - max);
    const lse = max + Math.log(sum);
    for (let v = 0; v < vocab; v++) out[o + v] = logits.data[o + v]! - lse;
  }
  return out;
}

/**
 * End-to-end sensitivity: for each layer and candidate, the mean per-token KL divergence `KL(p_float || p_quantized)`
 * of the model's next-token distributions on the calibration sequences when only that layer is quantized (round to
 * nearest) and every other layer stays float. Needs the whole model, so it is a function over a `QuantizableModel`
 * rather than a step; costs `layers x candidates` forward passes. The model's weights are restored afterwards. Needs
 * the language-model head capability (core's `LanguageModelLogits`); a model without one (an encoder) is refused with
 * `MissingCapabilityError`.
 * Summing per-layer KLs treats their effects as additive (the usual first-order assumption).
 *
 * @returns Map from layer name to one KL per candidate (same order).
 * @example
 * ```ts
 * const kl = await klSensitivities(model, sequences.slice(0, 16), candidates.map(resolveCandidate));
 * ```
 */
export async function klSensitivities(
  model: QuantizableModel,
  calibration: readonly ArrayLike<number>[],
  candidates: readonly ResolvedCandidate[],
  options: { layers?: readonly string[] } = {},
): Promise<Map<string, number[]>> {
  const lm = requireLogits(model, "klSensitivities (sensitivity 'kl': the KL divergence of next-token distributions)");
  const reference = logSoftmaxRows(await forward(lm, calibration));
  const views = model.blocks.flatMap((b) => b.linears);
  const wanted = options.layers ? new Set(options.layers) : undefined;
  const result = new Map<string, number[]>();
  for (const view of views) {
    if (wanted && !wanted.has(view.name)) continue;
    const original = view.weight;
    const kls: number[] = [];
    try {
      for (const candidate of candidates) {
        view.weight = quantizeCandidate(original, candidate).weight;
        const logits = await forward(lm, calibration);
        const q = logSoftmaxRows(logits);
        const [rows, vocab] = logits.shape;
        let kl = 0;
        for (let i = 0; i < rows * vocab; i++) {
          const p = Math.exp(reference[i]!);
          kl += p * (reference[i]! - q[i]!);
        }
        kls.push(kl / rows);
        void vocab;
      }
    } finally {
      view.weight = original;
    }
    result.set(view.name, kls);
  }
  return result;
}
