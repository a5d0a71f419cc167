import { forEachLayer } from './for-each-layer.js';
import { schemeOptions } from './layer-scheme.js';
import { checkOptions, factoryOptions, formatOption, granularityOption, scaleEncodingOption } from './factory-options.js';
import type { Granularity } from './granularity.js';
import { bitsPerWeight } from './metrics.js';
import type { FormatSpec } from './number-format.js';
import { parseFormat } from './number-format.js';
import { dequantize, quantize } from './quantize.js';
import type { Quantizer, StatisticRequest } from './quantizer.js';
import type { ScaleEncoding } from './quantized-tensor.js';
import { rangeSearch, rangeSearchOptions, type RangeSearchOptions } from './range-search.js';

/** Options of {@link rtn}. */
export interface RtnOptions {
  /** A format spec or a name for `parseFormat` (`int4`, `nf4`, `mxfp4`, ...). */
  format: FormatSpec | string;
  /** Default: per channel (fixed blocks for MX/NVFP4). */
  granularity?: Granularity;
  scaleEncoding?: ScaleEncoding;
  /**
   * Search each group's clipping range before rounding (see `rangeSearch`). `true` uses the defaults; with
   * `{ activationWeighted: true }` the error is weighted by the mean |input| of each channel from calibration.
   * Default false (plain min-max).
   */
  rangeSearch?: boolean | (Pick<RangeSearchOptions, 'steps' | 'minShrink' | 'norm'> & { activationWeighted?: boolean });
}

/** The schema {@link rtn} checks its options with (the recipe file's `rangeSearch` schema included). */
const rtnOptionsSchema = factoryOptions<RtnOptions>({
  format: formatOption,
  granularity: granularityOption.optional(),
  scaleEncoding: scaleEncodingOption.optional(),
  rangeSearch: rangeSearchOptions.optional(),
});

/**
 * Round-to-nearest as a quantize step: the baseline every other method is measured against. A layer that carries
 * an `assignment` (from an allocate step's bit plan) is quantized with the assigned format and granularity.
 *
 * @example
 * ```ts
 * const step = rtn({ format: 'int4', granularity: { type: 'group', size: 128 }, rangeSearch: true });
 * ```
 */
export function rtn(options: RtnOptions): Quantizer {
  checkOptions('rtn', rtnOptionsSchema, options);
  const format = typeof options.format === 'string' ? parseFormat(options.format) : options.format;
  const search = options.rangeSearch === true ? {} : options.rangeSearch || undefined;
  const requires: StatisticRequest[] = search?.activationWeighted ? [{ kind: 'input-absmean' }] : [];
  const base = {
    format,
    ...(options.granularity ? { granularity: options.granularity } : {}),
    ...(options.scaleEncoding ? { scaleEncoding: options.scaleEncoding } : {}),
  };
  return {
    specificationVersion: 'v2',
    id: 'rtn',
    kind: 'quantize',
    stores: ['grid'],
    scheme: base,
    requires,
    async run(context) {
      // The layer's scheme (a bit plan's assignment overrides the step's format and granularity), resolved by the runner.
      const layers = await forEachLayer(
        context,
        (layer, { scheme }) => {
          const settings = schemeOptions(scheme!);
          let clip: Float32Array | undefined;
          if (search) {
            const importance = search.activationWeighted ? context.statistics(layer.name).inputAbsMean : undefined;
            clip = rangeSearch(layer.weight, { ...settings, ...search, ...(importance ? { importance } : {}) });
          }
          const quantized = quantize(layer.weight, clip ? { ...settings, clip } : settings);
          return { ...layer, weight: dequantize(quantized), stored: { kind: 'grid', tensor: quantized }, bitsPerWeight: bitsPerWeight(quantized) };
        },
        { scheme: base },
      );
      return { layers, warnings: [] };
    },
  };
}
