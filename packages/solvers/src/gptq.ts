import { AbortError, InvalidArgumentError, type LayerState, type Quantizer, type StepWarning } from '@bitsmith/core';
import { gptqQuantizeLayer, type GptqOptions } from './gptq-quantize-layer.js';

/**
 * GPTQ (Frantar et al., arXiv:2210.17323) as a quantize step: for each selected layer, runs
 * {@link gptqQuantizeLayer} with the layer's calibration Hessian `X^T X` (requested from the runner as
 * `{ kind: 'hessian' }`); a layer's `assignment` (from an allocate step's bit plan) sets its format and granularity. Returns new layer states (dequantized weight, `quantized`, `bitsPerWeight`) and the
 * layers' warnings tagged with their names; never mutates its input. Checks `context.signal` between layers and
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
  return {
    id: 'gptq',
    kind: 'quantize',
    stores: ['grid'],
    requires: [{ kind: 'hessian' }],
    async run(context) {
      const layers: LayerState[] = [];
      const warnings: StepWarning[] = [];
      const total = context.layers.length;
      for (const [index, layer] of context.layers.entries()) {
        if (context.signal?.aborted) throw new AbortError();
        const hessian = context.statistics(layer.name).hessian;
        if (!hessian) throw new InvalidArgumentError('statistics', `no Hessian was observed for layer '${layer.name}'; GPTQ requires { kind: 'hessian' }`);
        // A bit plan's assignment (from an allocate step) overrides the step's own format and granularity.
        const a = layer.assignment;
        const settings: GptqOptions = a ? { ...options, format: a.format, ...(a.granularity ? { granularity: a.granularity } : {}) } : options;
        const result = await gptqQuantizeLayer(layer.weight, hessian, { ...settings, ...(context.signal ? { signal: context.signal } : {}) });
        for (const warning of result.warnings) warnings.push({ ...warning, layer: layer.name });
        layers.push({ ...layer, weight: result.weight, stored: { kind: 'grid', tensor: result.quantized }, bitsPerWeight: result.bitsPerWeight });
        context.progress?.(index + 1, total, layer.name);
      }
      return { layers, warnings };
    },
  };
}
