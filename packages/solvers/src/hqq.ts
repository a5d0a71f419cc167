import { bitsPerWeight as storageBits, checkOptions, elementCodec, forEachLayer, type Quantizer } from '@bitsmith/core';
import { hqqQuantizeLayer, type HqqOptions } from './hqq-quantize-layer.js';
import { hqqOptionsSchema } from './solver-options.js';

/**
 * HQQ (Badri and Shaji 2023, data-free half-quadratic quantization) as a quantize step; requires no calibration
 * statistics. A layer's `assignment` (from an allocate step) sets the bits (of an integer format) and granularity.
 * Layer states carry a `grid` stored form: an asymmetric integer tensor whose zero points are integers
 * (`zeroPoint: 'integer'`, a plain format GPTQ-style exporters write) or float16 values (`zeroPointEncoding:
 * 'float16'`, HQQ's default, which only the fake-quant export writes); its bits count codes, fp16 scales and zero points.
 *
 * @param options - See {@link HqqOptions}: `bits` or `format`, `granularity` (g64), `lpNorm` (0.7), `beta` (10),
 *   `kappa` (1.01), `iterations` (20), `optimizeScale` (false), `zeroPoint` (`float`).
 * @example
 * ```ts
 * const step = hqq({ bits: 4, granularity: { type: 'group', size: 32 } });
 * ```
 */
export function hqq(options: HqqOptions): Quantizer {
  checkOptions('hqq', hqqOptionsSchema, options);
  return {
    specificationVersion: 'v2',
    id: 'hqq',
    kind: 'quantize',
    stores: ['grid'],
    requires: [],
    async run(context) {
      const layers = await forEachLayer(context, async (layer) => {
        const a = layer.assignment;
        const settings: HqqOptions = a && a.format.type === 'int' ? { ...options, bits: elementCodec(a.format).bits, ...(a.granularity ? { granularity: a.granularity } : {}) } : options;
        const result = hqqQuantizeLayer(layer.weight, settings);
        return { ...layer, weight: result.weight, stored: { kind: 'grid', tensor: result.quantized }, bitsPerWeight: storageBits(result.quantized) };
      });
      return { layers, warnings: [] };
    },
  };
}
