import { checkOptions, forEachLayer, InvalidArgumentError, schemeOptions, type Quantizer, type StepWarning, type WeightScheme } from '@bitsmith/core';
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
  const scheme: WeightScheme = { format: options.format, ...(options.granularity ? { granularity: options.granularity } : {}), ...(options.scaleEncoding ? { scaleEncoding: options.scaleEncoding } : {}) };
  return {
    specificationVersion: 'v2',
    id: 'quantease',
    kind: 'quantize',
    stores: ['grid'],
    scheme,
    requires: [{ kind: 'hessian' }],
    async run(context) {
      const warnings: StepWarning[] = [];
      const layers = await forEachLayer(
        context,
        async (layer, { scheme: resolved }) => {
          const hessian = context.statistics(layer.name).hessian;
          if (!hessian) throw new InvalidArgumentError('statistics', `no Hessian was observed for layer '${layer.name}'; QuantEase requires { kind: 'hessian' }`);
          // The layer's scheme: a bit plan's assignment overrides the step's format and granularity.
          const settings: QuantEaseOptions = { ...options, ...schemeOptions(resolved!) };
          const result = await quantEaseQuantizeLayer(layer.weight, hessian, { ...settings, ...(context.signal ? { signal: context.signal } : {}) });
          for (const w of result.warnings) warnings.push({ ...w, layer: layer.name });
          return { ...layer, weight: result.weight, stored: { kind: 'grid', tensor: result.quantized }, bitsPerWeight: result.bitsPerWeight };
        },
        { scheme },
      );
      return { layers, warnings };
    },
  };
}
