import { UnsupportedFormatError } from '@bitsmith/core';
import type { OnnxGraphBuilder } from './onnx-graph-builder.js';

/** A run-time input transform as the exporter reads it: the JSON description `RuntimeInputTransform.describe()` gives. */
export type OnnxTransformDescription = Readonly<Record<string, unknown>>;

/** Largest Sylvester factor written as one dense matrix; longer powers of two are split into several factors. */
const MAX_SYLVESTER_FACTOR = 256;

/** One factor of a Kronecker product: a dense `size x size` matrix, row-major. */
export interface KroneckerFactor {
  readonly size: number;
  readonly matrix: Float32Array;
}

/** Sylvester's Hadamard matrix of order `n` (a power of two), natural order, entries ±1: `H[i][j] = (-1)^popcount(i & j)`. */
function sylvester(n: number): Float32Array {
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let bits = i & j;
      let parity = 0;
      while (bits) {
        parity ^= 1;
        bits &= bits - 1;
      }
      out[i * n + j] = parity ? -1 : 1;
    }
  }
  return out;
}

/**
 * The Kronecker factors of an online Hadamard transform `x <- x H_n / sqrt(n)` described by `@bitsmith/rotation`'s
 * `hadamardInputTransform(n).describe()`: `H_n = H_base ⊗ H_pow2` (the base matrix spelled as rows of `+`/`-`,
 * Sylvester's matrix in natural order for the power of two), each factor scaled by `1/sqrt(its order)` so their
 * product carries the transform's `1/sqrt(n)`.
 *
 * @throws UnsupportedFormatError when the description lacks the order, the factorisation or the base matrix.
 */
export function hadamardKroneckerFactors(description: OnnxTransformDescription, layer: string): KroneckerFactor[] {
  const order = description.order;
  const f = description.factorisation as { baseOrder?: unknown; powerOfTwo?: unknown } | undefined;
  if (typeof order !== 'number' || !f || typeof f.baseOrder !== 'number' || typeof f.powerOfTwo !== 'number' || f.baseOrder * f.powerOfTwo !== order) {
    throw new UnsupportedFormatError(`${layer}: the online Hadamard's description lacks its order or factorisation (order = baseOrder x powerOfTwo); re-run the rotation with a current bitsmith`);
  }
  const factors: KroneckerFactor[] = [];
  if (f.baseOrder > 1) {
    const rows = description.baseMatrix;
    const m = f.baseOrder;
    if (!Array.isArray(rows) || rows.length !== m || rows.some((r) => typeof r !== 'string' || r.length !== m || /[^+-]/.test(r))) {
      throw new UnsupportedFormatError(`${layer}: the online Hadamard of order ${order} needs its ${m} x ${m} base matrix (rows of '+'/'-') in the description`);
    }
    const matrix = new Float32Array(m * m);
    const s = 1 / Math.sqrt(m);
    rows.forEach((r: string, i) => {
      for (let j = 0; j < m; j++) matrix[i * m + j] = r[j] === '+' ? s : -s;
    });
    factors.push({ size: m, matrix });
  }
  let rest = f.powerOfTwo;
  while (rest > 1) {
    const size = Math.min(rest, MAX_SYLVESTER_FACTOR);
    const matrix = sylvester(size);
    const s = 1 / Math.sqrt(size);
    for (let i = 0; i < matrix.length; i++) matrix[i]! *= s;
    factors.push({ size, matrix });
    rest /= size;
  }
  return factors;
}

/**
 * Writes a run-time input transform as graph nodes on `input` (`[batch, sequence, n]`) and returns the transformed
 * value. Online Hadamards (`kind: 'hadamard'`, the runtime half of QuaRot-style rotations, arXiv:2404.00456) become
 * one `MatMul` per Kronecker factor: the input is viewed as `[..., n / d, d]`, multiplied by the last factor, and its
 * last axis rotated to the front (`Transpose`), so after every factor the axes are back in order; `sequence`
 * descriptions apply their transforms in order. Activation quantizers are refused here (they need a QDQ export).
 *
 * @param dataType ONNX element type of the activations (float32 or float16): the factors are stored in it.
 * @throws UnsupportedFormatError for a transform the graph cannot express.
 * @example
 * ```ts
 * const rotated = onnxInputTransform(g, 'x', downProj.inputTransform.describe(), 'model.layers.0.mlp.down_proj', OnnxDataType.float);
 * ```
 */
export function onnxInputTransform(g: OnnxGraphBuilder, input: string, description: OnnxTransformDescription, layer: string, dataType: number): string {
  switch (description.kind) {
    case 'sequence': {
      const list = description.transforms;
      if (!Array.isArray(list)) throw new UnsupportedFormatError(`${layer}: a 'sequence' transform needs its list of transforms`);
      return list.reduce<string>((x, t) => onnxInputTransform(g, x, t as OnnxTransformDescription, layer, dataType), input);
    }
    case 'hadamard': {
      const factors = hadamardKroneckerFactors(description, layer);
      const n = description.order as number;
      const flat = g.int64(g.fresh('const.hadamard_flat'), [0, 0, n]);
      let x = input;
      for (let t = factors.length - 1; t >= 0; t--) {
        const { size, matrix } = factors[t]!;
        const split = g.int64(g.fresh('const.hadamard_split'), [0, 0, n / size, size]);
        const m = g.floatOf(dataType, g.fresh(`hadamard.${n}.factor${size}`), [size, size], matrix);
        const y = g.node('MatMul', [g.node('Reshape', [x, split]), m]);
        x = g.node('Reshape', [g.node('Transpose', [y], { attributes: { perm: [0, 1, 3, 2] } }), flat]);
      }
      return x;
    }
    case 'activation-quantization':
      throw new UnsupportedFormatError(`${layer}: activation quantization (W8A8/W4A4) is not written into MatMulNBits models; its QDQ export is not written yet`);
    default:
      throw new UnsupportedFormatError(`${layer}: run-time input transform of kind '${String(description.kind)}' has no ONNX form (expected 'hadamard' or a 'sequence' of them)`);
  }
}
