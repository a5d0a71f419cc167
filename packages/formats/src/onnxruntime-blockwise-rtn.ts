import { InvalidArgumentError, type Matrix, type QuantizedTensor } from '@bitsmith/core';

/** Options of {@link onnxruntimeBlockwiseRtn}. */
export interface OnnxruntimeBlockwiseRtnOptions {
  /** Inputs per block. Default 32 (transformers.js' `scripts/quantize.py` default for `q4`). */
  readonly blockSize?: number;
  /** Symmetric (no zero points; transformers.js' default) or with a zero point per block. Default true. */
  readonly symmetric?: boolean;
}

/** C's `roundf`: to nearest, halfway cases away from zero. */
function roundAwayFromZero(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/**
 * Round-to-nearest 4-bit block quantization exactly as onnxruntime's `MatMulNBitsQuantizer` (the default RTN
 * algorithm, `quantize_matmul_4bits` over MLAS' blockwise quantizer) computes it: what transformers.js users get from
 * `scripts/quantize.py --modes q4` (blocks of 32, symmetric). Reproduced from the algorithm, for comparisons:
 *
 * - symmetric: the block's signed extreme value `e` (the larger of `|min|`, `|max|`, keeping its sign) gives the
 *   scale `e / -8` (float32; negative when `e > 0`), so `e` maps exactly onto code 0 and the opposite side reaches
 *   `7 |scale|`; codes are `clamp(roundf(w * (1 / scale) + 8), 0, 15)` in float32, ties away from zero;
 * - asymmetric: `min = min(min, 0)`, `max = max(max, 0)`, `scale = (max - min) / 15`, zero point `roundf(-min / scale)`
 *   clamped to `[0, 15]`, codes `clamp(roundf(w * (1 / scale) + zp), 0, 15)`.
 *
 * The result is a core `QuantizedTensor` (int4, group granularity; symmetric codes offset by 8 as core's) that
 * `packMatMulNBits` writes bit for bit as the quantizer would.
 *
 * @param weight `[outFeatures, inFeatures]` (the transpose of the MatMul's `B`); `inFeatures` must be a multiple of the block size.
 * @param options `blockSize` (32), `symmetric` (true).
 * @example
 * ```ts
 * const q = onnxruntimeBlockwiseRtn(layer.weight); // what onnxruntime's quantizer would store for this layer
 * ```
 */
export function onnxruntimeBlockwiseRtn(weight: Matrix, options: OnnxruntimeBlockwiseRtnOptions = {}): QuantizedTensor {
  const blockSize = options.blockSize ?? 32;
  const symmetric = options.symmetric ?? true;
  const [rows, columns] = weight.shape;
  if (!Number.isInteger(blockSize) || blockSize < 1 || columns % blockSize !== 0) {
    throw new InvalidArgumentError('blockSize', `must divide the ${columns} input features; got ${blockSize}`);
  }
  const w = weight.data as Float32Array;
  const blocks = columns / blockSize;
  const codes = new Uint8Array(rows * columns);
  const scales = new Float32Array(rows * blocks);
  const zeroPoints = symmetric ? undefined : new Float32Array(rows * blocks);
  const f = Math.fround;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const o = r * columns + b * blockSize;
      let min = 3.4028234663852886e38;
      let max = -min;
      for (let i = 0; i < blockSize; i++) {
        const v = w[o + i]!;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      let scale: number;
      let zero: number;
      if (symmetric) {
        const extreme = Math.abs(max) > Math.abs(min) ? max : min;
        scale = f(extreme / -8);
        zero = 8;
      } else {
        min = Math.min(min, 0);
        max = Math.max(max, 0);
        scale = f(f(max - min) / 15);
        const zeroFp = scale !== 0 ? f(0 - f(min / scale)) : min;
        zero = zeroFp < 0 ? 0 : zeroFp > 15 ? 15 : roundAwayFromZero(zeroFp);
        zeroPoints![r * blocks + b] = zero;
      }
      scales[r * blocks + b] = scale;
      const reciprocal = scale !== 0 ? f(1 / scale) : 0;
      for (let i = 0; i < blockSize; i++) {
        const code = roundAwayFromZero(f(f(w[o + i]! * reciprocal) + zero));
        codes[o + i] = code < 0 ? 0 : code > 15 ? 15 : code;
      }
    }
  }
  return {
    shape: [rows, columns],
    format: { type: 'int', bits: 4, symmetric },
    granularity: { type: 'group', size: blockSize },
    codes,
    scales,
    scaleEncoding: 'float32',
    ...(zeroPoints ? { zeroPoints } : {}),
  };
}
