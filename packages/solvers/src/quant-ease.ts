import { AbortError, checkOptions, InvalidArgumentError, type LayerState, type Quantizer, type StepWarning } from '@bitsmith/core';
import { quantEaseQuantizeLayer, type QuantEaseOptions } from './quant-ease-quantize-layer.js';
import { quantEaseOptionsSchema } from './solver-options.js';

/**
 * QuantEase (arXiv:2309.01885) as a quantize step: coordinate descent on the layer objective with the calibration
 * Hessian (requested as `{ kind: 'hessian' }`), started from GPTQ (or RTN). A layer's `assignment` sets the format
 * and granularity. See {@link quantEaseQuantizeLayer}.
 *
 * @param options - `format` (required), `granularity`, `passes` (10), `init` (`gptq`), GPTQ's `dampening`, `blockSize`, `backend`.
 * @example
 * ```ts
 * const step = quantEase({ format: 'int3', granularity: { type: 'group', size: 32 }, passes: 10 });
 * ```
 */
export function quantEase(options: QuantEaseOptions): Quantizer {
  checkOptions('quantEase', quantEaseOptionsSchema, options);
  return {
    specificationVersion: 'v2',
    id: 'quantease',
    kind: 'quantize',
    stores: ['grid'],
    requires: [{ kind: 'hessian' }],
    async run(context) {
      const layers: LayerState[] = [];
      const warnings: StepWarning[] = [];
      for (const [index, layer] of context.layers.entries()) {
        if (context.signal?.aborted) throw new AbortError();
        const hessian = context.statistics(layer.name).hessian;
        if (!hessian) throw new InvalidArgumentError('statistics', `no Hessian was observed for layer '${layer.name}'; QuantEase requires { kind: 'hessian' }`);
        const a = layer.assignment;
        const settings: QuantEaseOptions = a ? { ...options, format: a.format, ...(a.granularity ? { granularity: a.granularity } : {}) } : options;
        const result = await quantEaseQuantizeLayer(layer.weight, hessian, { ...settings, ...(context.signal ? { signal: context.signal } : {}) });
        for (const w of result.warnings) warnings.push({ ...w, layer: layer.name });
        layers.push({ ...layer, weight: result.weight, stored: { kind: 'grid', tensor: result.quantized }, bitsPerWeight: result.bitsPerWeight });
        context.progress?.(index + 1, context.layers.length, layer.name);
      }
      return { layers, warnings };
    },
  };
}
