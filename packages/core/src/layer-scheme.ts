import type { Granularity } from './granularity.js';
import { parseFormat, type FormatSpec } from './number-format.js';
import type { LayerAssignment } from './quantizer.js';
import type { ScaleEncoding } from './quantized-tensor.js';

/** The weight quantization scheme a quantize step declares (`Quantizer.scheme`): what it quantizes to without a bit plan. */
export interface WeightScheme {
  /** A format spec (a name is parsed with `parseFormat` by {@link resolveLayerScheme}). */
  readonly format: FormatSpec | string;
  /** Absent: the format's default (per output channel; fixed blocks for MX/NVFP4). */
  readonly granularity?: Granularity;
  readonly scaleEncoding?: ScaleEncoding;
}

/**
 * One layer's resolved weight scheme (step contract v2): the step's format, granularity and scale encoding with the
 * layer's bit-plan assignment applied, resolved once per layer by the runner and read through `context.scheme(layer)`.
 */
export interface LayerScheme {
  readonly format: FormatSpec;
  readonly granularity?: Granularity;
  readonly scaleEncoding?: ScaleEncoding;
  /** Whether the grid is symmetric (no zero point): integer formats say so; every other format is. */
  readonly symmetric: boolean;
  /** `assignment`: a bit plan chose the format (and granularity, when it gave one); `step`: the step's own options. */
  readonly source: 'step' | 'assignment';
  /** The assignment's label (`int3-g32`), when a bit plan gave one. */
  readonly label?: string;
}

/**
 * Resolves a layer's scheme, the one rule every quantize step follows: a bit-plan assignment replaces the format and,
 * when it gives one, the granularity; the scale encoding stays the step's.
 *
 * @example
 * ```ts
 * resolveLayerScheme({ format: 'int4', granularity: { type: 'group', size: 32 } }, { format: parseFormat('int3') });
 * // { format: int3, granularity: group 32, symmetric: true, source: 'assignment' }
 * ```
 */
export function resolveLayerScheme(scheme: WeightScheme, assignment?: LayerAssignment): LayerScheme {
  const format = assignment ? assignment.format : typeof scheme.format === 'string' ? parseFormat(scheme.format) : scheme.format;
  const granularity = assignment?.granularity ?? scheme.granularity;
  return {
    format,
    ...(granularity ? { granularity } : {}),
    ...(scheme.scaleEncoding ? { scaleEncoding: scheme.scaleEncoding } : {}),
    symmetric: format.type === 'int' ? format.symmetric : true,
    source: assignment ? 'assignment' : 'step',
    ...(assignment?.label !== undefined ? { label: assignment.label } : {}),
  };
}

/**
 * The options a core quantizer takes from a resolved scheme (`format`, and `granularity` / `scaleEncoding` when set).
 *
 * @example
 * ```ts
 * quantize(weight, schemeOptions(context.scheme!(layer.name)!));
 * ```
 */
export function schemeOptions(scheme: LayerScheme): { format: FormatSpec; granularity?: Granularity; scaleEncoding?: ScaleEncoding } {
  return {
    format: scheme.format,
    ...(scheme.granularity ? { granularity: scheme.granularity } : {}),
    ...(scheme.scaleEncoding ? { scaleEncoding: scheme.scaleEncoding } : {}),
  };
}
