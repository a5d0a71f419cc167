import { checkOptions, forEachLayer, InvalidArgumentError, rtn, schemeOptions, type Quantizer, type StepWarning, type WeightScheme } from '@bitsmith/core';
import { gptqQuantizeLayer, type GptqOptions } from './gptq-quantize-layer.js';
import { gptqOptionsSchema } from './solver-options.js';
import type { StatisticRequest } from '@bitsmith/core';

/**
 * GPTQ (Frantar et al., arXiv:2210.17323) as a quantize step: for each selected layer, runs
 * {@link gptqQuantizeLayer} with the layer's calibration Hessian `X^T X` (requested from the runner as
 * `{ kind: 'hessian' }`); a layer's `assignment` (from an allocate step's bit plan) sets its format and granularity. Returns new layer states (dequantized weight, `quantized`, `bitsPerWeight`) and the
 * layers' warnings tagged with their names; never mutates its input. A layer that saw no calibration token (a
 * mixture-of-experts expert never routed to) is rounded to nearest instead, with an `rtn-fallback` warning. Checks `context.signal` between layers and
 * blocks of columns (throwing core's `AbortError`) and reports `context.progress` per layer.
 *
 * @param options - See {@link GptqOptions}: `format` (required), `granularity` (`channel`), `scaleEncoding`
 *   (`float16`), `dampening` (0.01), `maxDampening` (10), `blockSize` (128), `actOrder` (false), `staticGroups`
 *   (false), `rangeSearch` (false), `backend` (`defaultBackend()`).
 * @example
 * ```ts
 * const step = gptq({ format: 'int4', granularity: { type: 'group', size: 128 }, actOrder: true });
 * const { layers, warnings } = await step.run(context);
 * ```
 */
export function gptq(options: GptqOptions): Quantizer {
  checkOptions('gptq', gptqOptionsSchema, options);
  return hessianQuantizeStep('gptq', options);
}

/**
 * The per-layer loop GPTQ and GPTAQ share (internal to the package): statistics, bit-plan assignments, the RTN
 * fallback for layers no calibration token reached, warnings tagged with the layer. With `asymmetric`, the step also
 * requests the float-input cross term and passes it on (GPTAQ).
 */
export function hessianQuantizeStep(id: string, options: GptqOptions, asymmetric?: { readonly alpha: number }): Quantizer {
  // GPTQ takes a Hessian resident on the GPU (gptqQuantizeLayer uses it there or reads it back); GPTAQ's term needs it on the host.
  const requires: StatisticRequest[] = asymmetric ? [{ kind: 'hessian' }, { kind: 'float-input-cross' }] : [{ kind: 'hessian', resident: true }];
  // The scheme the runner resolves per layer (bit-plan assignments applied) from the step's own options.
  const scheme: WeightScheme = {
    format: options.format,
    ...(options.granularity ? { granularity: options.granularity } : {}),
    ...(options.scaleEncoding ? { scaleEncoding: options.scaleEncoding } : {}),
  };
  return {
    specificationVersion: 'v2',
    id,
    kind: 'quantize',
    stores: ['grid'],
    scheme,
    requires,
    async run(context) {
      const warnings: StepWarning[] = [];
      const layers = await forEachLayer(
        context,
        async (layer, { scheme: resolved }) => {
          const statistics = context.statistics(layer.name);
          const hessian = statistics.hessian ?? statistics.residentHessian;
          if (!hessian) throw new InvalidArgumentError('statistics', `no Hessian was observed for layer '${layer.name}'; ${id} requires { kind: 'hessian' }`);
          const cross = asymmetric ? statistics.floatInputCross : undefined;
          if (asymmetric && !cross) throw new InvalidArgumentError('statistics', `no float-input cross term was observed for layer '${layer.name}'; ${id} requires { kind: 'float-input-cross' }`);
          // The layer's scheme: a bit plan's assignment (from an allocate step) overrides the step's format and granularity.
          const settings: GptqOptions = { ...options, ...schemeOptions(resolved!) };
          if (statistics.tokens === 0) {
            // No calibration token reached the layer (a mixture-of-experts expert the router never chose): an empty
            // Hessian would mark every column dead and zero the weight. Round to nearest instead, and say so.
            const fallback = await rtn(schemeOptions(resolved!)).run({ layers: [layer], statistics: () => statistics });
            warnings.push({ step: id, layer: layer.name, message: 'no calibration token reached this layer; rounded to nearest instead (rtn-fallback)' });
            context.releaseStatistics?.(layer.name);
            return fallback.layers[0]!;
          }
          const result = await gptqQuantizeLayer(
            layer.weight,
            hessian,
            { ...settings, ...(context.signal ? { signal: context.signal } : {}) },
            cross ? { cross, alpha: asymmetric!.alpha } : undefined,
          );
          for (const warning of result.warnings) warnings.push({ ...warning, step: id, layer: layer.name });
          // Done with this layer's Hessian: the runner frees it (a shared one once q/k/v or gate/up are all done).
          context.releaseStatistics?.(layer.name);
          return { ...layer, weight: result.weight, stored: { kind: 'grid', tensor: result.quantized }, bitsPerWeight: result.bitsPerWeight };
        },
        { scheme },
      );
      return { layers, warnings };
    },
  };
}
