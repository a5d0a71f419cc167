import type { Granularity } from './granularity.js';
import type { FormatSpec } from './number-format.js';

/** How scales are stored once exported; `quantize` rounds scales to this encoding so that what it reports is what a file holds. */
export type ScaleEncoding = 'float32' | 'float16' | 'bfloat16' | 'e8m0' | 'e4m3';

/**
 * A quantized matrix: codes plus what is needed to decode them. Plain data; codes are unpacked (one per element),
 * exporters pack them.
 *
 * The value of element `i` in group `g` is `(decode(codes[i]) - (zeroPoints?.[g] ?? 0)) * scales[g] * (tensorScale ?? 1)`.
 */
export interface QuantizedTensor {
  /** `[rows, columns]` of the original matrix. */
  readonly shape: readonly [rows: number, columns: number];
  readonly format: FormatSpec;
  readonly granularity: Granularity;
  /** One code per element, row-major. */
  readonly codes: Uint8Array | Uint16Array;
  /** One scale per group (see `groupLayout`). */
  readonly scales: Float32Array;
  /** Scale storage encoding used when counting bits and exporting. */
  readonly scaleEncoding: ScaleEncoding;
  /** Zero points per group for asymmetric integer formats (integer-valued unless `zeroPointEncoding` is `float16`). */
  readonly zeroPoints?: Float32Array;
  /**
   * How zero points are stored: `code` (default: integers packed at the code width, as GPTQ and compressed-tensors
   * store them) or `float16` (real-valued, HQQ's default). Exporters of integer zero points refuse `float16`.
   */
  readonly zeroPointEncoding?: 'code' | 'float16';
  /** Second-level float32 scale (NVFP4). */
  readonly tensorScale?: number;
  /**
   * Input-column order in which a solver quantized (act-order). Codes stay in natural column order; with group
   * granularity, groups are formed along this order (column `permutation[p]` is in group `floor(p / size)`, GPTQ's
   * `g_idx`). Absent: natural order.
   */
  readonly permutation?: Int32Array;
}
