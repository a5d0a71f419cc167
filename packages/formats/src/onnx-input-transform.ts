import { parseFormat, UnsupportedFormatError } from '@bitsmith/core';
import { OnnxDataType, type OnnxGraphBuilder } from './onnx-graph-builder.js';

/** A run-time input transform as the exporter reads it: the JSON description `RuntimeInputTransform.describe()` gives. */
export type OnnxTransformDescription = Readonly<Record<string, unknown>>;

/** Hadamard factor initializers already written into a graph, by order, factor index, size and element type. */
const factorCache = new WeakMap<OnnxGraphBuilder, Map<string, string>>();

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
 * last axis rotated to the front (`Transpose`), so after every factor the axes are back in order; activation
 * quantizers (W8A8, W4A4: `kind: 'activation-quantization'`) become QDQ nodes (see {@link onnxActivationQuantizer});
 * `sequence` descriptions apply their transforms in order.
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
        // One initializer per factor shape, shared by every layer with the same transform.
        const key = `${n}:${t}:${size}:${dataType}`;
        let shared = factorCache.get(g);
        if (!shared) factorCache.set(g, (shared = new Map()));
        let m = shared.get(key);
        if (!m) shared.set(key, (m = g.floatOf(dataType, `hadamard.${n}.factor${t}_${size}`, [size, size], matrix)));
        const y = g.node('MatMul', [g.node('Reshape', [x, split]), m]);
        x = g.node('Reshape', [g.node('Transpose', [y], { attributes: { perm: [0, 1, 3, 2] } }), flat]);
      }
      return x;
    }
    case 'activation-quantization':
      return onnxActivationQuantizer(g, input, description, layer, dataType);
    default:
      throw new UnsupportedFormatError(`${layer}: run-time input transform of kind '${String(description.kind)}' has no ONNX form (expected 'hadamard' or a 'sequence' of them)`);
  }
}

function numbers(value: unknown, layer: string, field: string): Float32Array {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
    throw new UnsupportedFormatError(`${layer}: the activation quantizer's ${field} must be a list of finite numbers`);
  }
  return Float32Array.from(value as number[]);
}

/**
 * Writes an activation quantizer (`activationQuantizer(scheme, scales).describe()` of `@bitsmith/core`: symmetric
 * integer formats) as graph nodes on `input` (`[batch, sequence, channels]`), computing what bitsmith's simulation
 * computes, `clamp(round_half_even(x / s), -2^(b-1), 2^(b-1) - 1) * s`:
 * - static int8 with every calibrated scale positive: `QuantizeLinear` / `DequantizeLinear` (int8, zero point 0; a
 *   scalar scale per tensor, a per-axis scale on the last axis per channel or per group of channels), the QDQ
 *   pattern onnxruntime turns into integer kernels;
 * - other static schemes (int4, zero scales): the same arithmetic in float64 ops (`Div`, `Round`, `Clip`, `Mul`),
 *   rounded once to float32, as the simulation computes it;
 * - dynamic schemes: the scale `max |x| / (2^(b-1) - 1/2)` per token, tensor, channel or group of channels of each
 *   call (`ReduceMax` of `Abs`), rounded up to float32 as core's scales are (so a group's extreme never rounds past
 *   the grid's edge), then the same float64 ops.
 * float16 inputs are cast to float32 first. QuantizeLinear divides in float32, the simulation in float64: they can
 * differ by one step at exact ties only. Minifloat, MX, NVFP4 and asymmetric activation formats are refused.
 *
 * @throws UnsupportedFormatError naming the layer and what has no ONNX form.
 * @example
 * ```ts
 * const x = onnxActivationQuantizer(g, 'x', layer.inputTransform.describe(), layer.name, OnnxDataType.float);
 * ```
 */
export function onnxActivationQuantizer(g: OnnxGraphBuilder, input: string, description: OnnxTransformDescription, layer: string, dataType: number): string {
  const formatName = String(description.format);
  let format;
  try {
    format = parseFormat(formatName);
  } catch {
    throw new UnsupportedFormatError(`${layer}: unknown activation format '${formatName}'`);
  }
  if (format.type !== 'int' || !format.symmetric) {
    throw new UnsupportedFormatError(`${layer}: activation format ${formatName} has no ONNX export here (symmetric int formats only: int8, int4)`);
  }
  const qmax = 2 ** (format.bits - 1) - 1;
  const qmin = -(2 ** (format.bits - 1));
  const granularity = String(description.granularity);
  const groupMatch = /^g(\d+)$/.exec(granularity);
  if (!groupMatch && !['tensor', 'token', 'channel'].includes(granularity)) throw new UnsupportedFormatError(`${layer}: activation granularity '${granularity}' (expected tensor, token, channel or g<size>)`);
  const f16 = dataType === OnnxDataType.float16;
  const x = f16 ? g.node('Cast', [input], { attributes: { to: OnnxDataType.float } }) : input;
  const back = (y: string) => (f16 ? g.node('Cast', [y], { attributes: { to: OnnxDataType.float16 } }) : y);
  const name = (what: string) => g.fresh(`${layer}.act_${what}`);
  // In float64 as bitsmith's simulation computes it: code = clamp(round_half_even(x / s)), value = code * s, rounded once to float32.
  const double = (name: string, v: number) => g.initializer(name, OnnxDataType.double, [], Float64Array.of(v));
  const toDouble = (v: string) => g.node('Cast', [v], { attributes: { to: OnnxDataType.double } });
  const fakeQuantize = (value: string, scale: string): string => {
    const s = toDouble(scale);
    const safe = g.node('Max', [s, double(name('tiny'), 1e-300)]);
    const q = g.node('Clip', [g.node('Round', [g.node('Div', [toDouble(value), safe])]), double(name('qmin'), qmin), double(name('qmax'), qmax)]);
    return g.node('Cast', [g.node('Mul', [q, s])], { attributes: { to: OnnxDataType.float } });
  };
  /** max |x| / levels over `axes`, rounded up to float32 (core's `roundScale(..., 'up')`, so the extreme stays inside the grid). */
  const dynamicScale = (value: string, axes: number[]): string => {
    const exact = g.node('Div', [g.node('ReduceMax', [g.node('Abs', [toDouble(value)])], { attributes: { axes, keepdims: 1 } }), double(name('levels'), 2 ** (format.bits - 1) - 0.5)]);
    const nearest = g.node('Cast', [exact], { attributes: { to: OnnxDataType.float } });
    // The next float32 above a positive float32 s: s + s (2^-24 + 2^-30) lies within (ulp / 2, 3 ulp / 2) of s.
    const up = g.node('Add', [nearest, g.node('Mul', [nearest, g.float(name('ulp'), [], Float32Array.of(2 ** -24 + 2 ** -30))])]);
    return g.node('Where', [g.node('Less', [toDouble(nearest), exact]), up, nearest]);
  };
  if (description.dynamic === true) {
    if (groupMatch) {
      const size = Number(groupMatch[1]);
      const grouped = g.node('Reshape', [x, g.int64(name('group_shape'), [0, 0, -1, size])]);
      return back(g.node('Reshape', [fakeQuantize(grouped, dynamicScale(grouped, [-1])), g.int64(name('flat_shape'), [0, 0, -1])]));
    }
    const axes = granularity === 'token' ? [-1] : granularity === 'channel' ? [0, 1] : [0, 1, 2];
    return back(fakeQuantize(x, dynamicScale(x, axes)));
  }
  if (granularity === 'token') throw new UnsupportedFormatError(`${layer}: a static per-token activation scale does not exist (tokens vary per call)`);
  const calibrated = numbers(description.scales, layer, 'scales');
  if (description.zeroPoints !== undefined) throw new UnsupportedFormatError(`${layer}: activation zero points are not written (symmetric formats only)`);
  let scales = calibrated;
  if (groupMatch) {
    const size = Number(groupMatch[1]);
    scales = new Float32Array(calibrated.length * size);
    for (let c = 0; c < scales.length; c++) scales[c] = calibrated[Math.floor(c / size)]!;
  }
  const perTensor = granularity === 'tensor';
  const dims = perTensor ? [] : [scales.length];
  if (format.bits === 8 && scales.every((v) => v > 0)) {
    const scale = g.float(name('scale'), dims, perTensor ? Float32Array.of(scales[0]!) : scales);
    const zero = g.initializer(name('zero_point'), OnnxDataType.int8, dims, new Uint8Array(perTensor ? 1 : scales.length));
    const axis = perTensor ? {} : { attributes: { axis: -1 } };
    return back(g.node('DequantizeLinear', [g.node('QuantizeLinear', [x, scale, zero], axis), scale, zero], axis));
  }
  return back(fakeQuantize(x, g.float(name('scale'), dims, perTensor ? Float32Array.of(scales[0]!) : scales)));
}
