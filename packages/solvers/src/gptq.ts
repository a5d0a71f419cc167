import { AbortError, checkOptions, InvalidArgumentError, rtn, type LayerState, type Quantizer, type StepWarning } from '@bitsmith/core';
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
  const requires: StatisticRequest[] = asymmetric ? [{ kind: 'hessian' }, { kind: 'float-input-cross' }] : [{ kind: 'hessian' }];
  return {
    specificationVersion: 'v2',
    id,
    kind: 'quantize',
    stores: ['grid'],
    requires,
    async run(context) {
      const layers: LayerState[] = [];
      const warnings: StepWarning[] = [];
      const total = context.layers.length;
      for (const [index, layer] of context.layers.entries()) {
        if (context.signal?.aborted) throw new AbortError();
        const statistics = context.statistics(layer.name);
        const hessian = statistics.hessian;
        if (!hessian) throw new InvalidArgumentError('statistics', `no Hessian was observed for layer '${layer.name}'; ${id} requires { kind: 'hessian' }`);
        const cross = asymmetric ? statistics.floatInputCross : undefined;
        if (asymmetric && !cross) throw new InvalidArgumentError('statistics', `no float-input cross term was observed for layer '${layer.name}'; ${id} requires { kind: 'float-input-cross' }`);
        // A bit plan's assignment (from an allocate step) overrides the step's own format and granularity.
        const a = layer.assignment;
        const settings: GptqOptions = a ? { ...options, format: a.format, ...(a.granularity ? { granularity: a.granularity } : {}) } : options;
        if (statistics.tokens === 0) {
          // No calibration token reached the layer (a mixture-of-experts expert the router never chose): an empty
          // Hessian would mark every column dead and zero the weight. Round to nearest instead, and say so.
          const { format, granularity, scaleEncoding } = settings;
          const fallback = await rtn({ format, ...(granularity ? { granularity } : {}), ...(scaleEncoding ? { scaleEncoding } : {}) }).run({ layers: [layer], statistics: () => statistics });
          layers.push(fallback.layers[0]!);
          warnings.push({ step: id, layer: layer.name, message: 'no calibration token reached this layer; rounded to nearest instead (rtn-fallback)' });
          context.progress?.(index + 1, total, layer.name);
          continue;
        }
        const result = await gptqQuantizeLayer(
          layer.weight,
          hessian,
          { ...settings, ...(context.signal ? { signal: context.signal } : {}) },
          cross ? { cross, alpha: asymmetric!.alpha } : undefined,
        );
        for (const warning of result.warnings) warnings.push({ ...warning, step: id, layer: layer.name });
        layers.push({ ...layer, weight: result.weight, stored: { kind: 'grid', tensor: result.quantized }, bitsPerWeight: result.bitsPerWeight });
        context.progress?.(index + 1, total, layer.name);
      }
      return { layers, warnings };
    },
  };
}
