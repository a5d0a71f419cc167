import {
  InvalidArgumentError,
  NumericalError,
  dequantize,
  groupLayout,
  parseFormat,
  roundScale,
  type FormatSpec,
  type Granularity,
  type Matrix,
  type QuantizedTensor,
} from '@bitsmith/core';

/** Options of {@link hqqQuantizeLayer} and {@link hqq}. */
export interface HqqOptions {
  /** Integer code width (1-8), or an integer format (`int4`, `int3-asym`, ...; HQQ always uses a zero point). */
  bits?: number;
  format?: FormatSpec | string;
  /** Which weights share a scale and zero point. Default groups of 64 input weights (HQQ's default). */
  granularity?: Granularity;
  /** The `p` of the l_p penalty on `W - Q` (p < 1 promotes sparse errors). Default 0.7. */
  lpNorm?: number;
  /** Initial half-quadratic penalty `beta`. Default 10. */
  beta?: number;
  /** Growth of `beta` per iteration. Default 1.01. */
  kappa?: number;
  /** Iterations (stops early when the mean |W - Q| rises, as the reference does). Default 20. */
  iterations?: number;
  /** Also update the scale each iteration (least squares of the target on the codes). Default false (zero point only). */
  optimizeScale?: boolean;
  /**
   * `float` (HQQ's default): zero points are real numbers, stored as float16 (16 bits per group);
   * `integer`: rounded to the code grid (stored at the code width, a plain asymmetric integer format). Default `float`.
   */
  zeroPoint?: 'float' | 'integer';
}

/** Result of {@link hqqQuantizeLayer}. */
export interface HqqLayerResult {
  /** Asymmetric integer codes with float16 scales and (float or integer) zero points. */
  readonly quantized: QuantizedTensor;
  readonly weight: Matrix;
  /** Codes + fp16 scales + zero points (fp16 when float, code width when integer). */
  readonly bitsPerWeight: number;
  /** Mean |W - Q| before (min-max) and after the optimisation. */
  readonly error: { readonly initial: number; readonly final: number };
  readonly iterations: number;
}

/** Resolves HQQ's bits from `bits` or an integer `format`. */
export function hqqBits(options: Pick<HqqOptions, 'bits' | 'format'>): number {
  if (options.bits !== undefined) return options.bits;
  if (options.format === undefined) throw new InvalidArgumentError('bits', 'give bits or an integer format');
  const spec = typeof options.format === 'string' ? parseFormat(options.format) : options.format;
  if (spec.type !== 'int') throw new InvalidArgumentError('format', `HQQ quantizes to integers with a zero point; got a ${spec.type} format`);
  return spec.bits;
}

/**
 * HQQ, Half-Quadratic Quantization (Badri and Shaji 2023, mobiusml/hqq), data-free: starting from min-max
 * asymmetric quantization, alternates (1) codes `Wq = clamp(round(W / s + z))`, (2) the sparse error
 * `We = shrink_p(W - (Wq - z) s, beta)` (the proximal step of the l_p penalty, p < 1:
 * `sign(x) max(|x| - |x|^(p-1) / beta, 0)`), (3) the zero point in closed form `z = mean(Wq - (W - We) / s)` per
 * group (and optionally the scale by least squares), with `beta *= kappa`; keeps the best iterate of every group by its sum of |W - Q|
 * (the reference stops the whole tensor at the first rise; groups are independent, so each keeps its own best).
 * Needs no calibration data.
 *
 * @param weight - `[rows, columns]` float32. Not modified.
 * @param options - See {@link HqqOptions}: `bits` (or an integer `format`), `granularity` (groups of 64),
 *   `lpNorm` (0.7), `beta` (10), `kappa` (1.01), `iterations` (20), `optimizeScale` (false), `zeroPoint` (`float`).
 * @example
 * ```ts
 * const { weight: wq, bitsPerWeight } = hqqQuantizeLayer(w, { bits: 4, granularity: { type: 'group', size: 32 } });
 * ```
 */
export function hqqQuantizeLayer(weight: Matrix, options: HqqOptions): HqqLayerResult {
  const bits = hqqBits(options);
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new InvalidArgumentError('bits', `got ${bits}; expected an integer from 1 to 8`);
  const [rows, columns] = weight.shape;
  const granularity = options.granularity ?? { type: 'group', size: 64 };
  const layout = groupLayout(rows, columns, granularity);
  const p = options.lpNorm ?? 0.7;
  if (!(p > 0 && p <= 1)) throw new InvalidArgumentError('lpNorm', `got ${p}; expected 0 < p <= 1`);
  let beta = options.beta ?? 10;
  const kappa = options.kappa ?? 1.01;
  const iterations = options.iterations ?? 20;
  const integerZero = (options.zeroPoint ?? 'float') === 'integer';
  const maxq = 2 ** bits - 1;
  const w = weight.data;
  const ids = layout.ids;
  const g = layout.count;
  const min = new Float64Array(g).fill(Infinity);
  const max = new Float64Array(g).fill(-Infinity);
  for (let i = 0; i < w.length; i++) {
    const x = w[i]!;
    if (!Number.isFinite(x)) throw new NumericalError(`weight element [${Math.floor(i / columns)}, ${i % columns}] is ${x}`, 'HQQ needs finite weights');
    const k = ids[i]!;
    if (x < min[k]!) min[k] = x;
    if (x > max[k]!) max[k] = x;
  }
  const scale = new Float64Array(g);
  const zero = new Float64Array(g);
  for (let k = 0; k < g; k++) {
    const s = roundScale((max[k]! - min[k]!) / maxq, 'float16', 'up');
    scale[k] = s > 0 ? s : 1;
    zero[k] = s > 0 ? -min[k]! / s : 0;
    if (integerZero) zero[k] = Math.min(maxq, Math.max(0, Math.round(zero[k]!)));
  }
  const count = new Float64Array(g);
  for (let i = 0; i < w.length; i++) count[ids[i]!]! += 1;
  const codes = new Uint8Array(w.length);
  const we = new Float64Array(w.length);
  const acc = new Float64Array(g);
  const sq = new Float64Array(g);
  const sxy = new Float64Array(g);
  const sy = new Float64Array(g);
  // Groups are independent problems: the error (sum |W - Q|) is tracked per group and each group keeps its best iterate.
  const groupError = (s: Float64Array, z: Float64Array, out: Float64Array): number => {
    out.fill(0);
    let e = 0;
    for (let i = 0; i < w.length; i++) {
      const k = ids[i]!;
      const q = Math.min(maxq, Math.max(0, Math.round(w[i]! / s[k]! + z[k]!)));
      const a = Math.abs(w[i]! - (q - z[k]!) * s[k]!);
      out[k] += a;
      e += a;
    }
    return e / w.length;
  };
  const bestError = new Float64Array(g);
  const current = new Float64Array(g);
  const initial = groupError(scale, zero, bestError);
  const bestScale = Float64Array.from(scale);
  const bestZero = Float64Array.from(zero);
  let done = 0;
  for (let it = 0; it < iterations; it++) {
    done++;
    for (let i = 0; i < w.length; i++) {
      const k = ids[i]!;
      const q = Math.min(maxq, Math.max(0, Math.round(w[i]! / scale[k]! + zero[k]!)));
      codes[i] = q;
      const r = w[i]! - (q - zero[k]!) * scale[k]!;
      const a = Math.abs(r);
      // Proximal operator of |x|^p: generalized soft-thresholding (the reference's shrink_lp_op).
      const t = p === 1 ? 1 / beta : a > 0 ? a ** (p - 1) / beta : Infinity;
      we[i] = a > t ? Math.sign(r) * (a - t) : 0;
    }
    if (options.optimizeScale) {
      // Least squares of the target T = W - We on the codes: T = s q + b, then z = -b / s.
      acc.fill(0);
      sq.fill(0);
      sxy.fill(0);
      sy.fill(0);
      for (let i = 0; i < w.length; i++) {
        const k = ids[i]!;
        const q = codes[i]!;
        const y = w[i]! - we[i]!;
        acc[k] += q;
        sq[k] += q * q;
        sxy[k] += q * y;
        sy[k] += y;
      }
      for (let k = 0; k < g; k++) {
        const n = count[k]!;
        const varQ = sq[k]! - (acc[k]! * acc[k]!) / n;
        if (varQ > 1e-12) {
          const s = (sxy[k]! - (acc[k]! * sy[k]!) / n) / varQ;
          if (s > 0) scale[k] = roundScale(s, 'float16');
        }
      }
    }
    acc.fill(0);
    for (let i = 0; i < w.length; i++) {
      const k = ids[i]!;
      acc[k] += codes[i]! - (w[i]! - we[i]!) / scale[k]!;
    }
    for (let k = 0; k < g; k++) {
      zero[k] = acc[k]! / count[k]!;
      if (integerZero) zero[k] = Math.min(maxq, Math.max(0, Math.round(zero[k]!)));
    }
    beta *= kappa;
    groupError(scale, zero, current);
    let improved = 0;
    for (let k = 0; k < g; k++) {
      if (current[k]! < bestError[k]!) {
        bestError[k] = current[k]!;
        bestScale[k] = scale[k]!;
        bestZero[k] = zero[k]!;
        improved++;
      }
    }
    if (improved === 0) break;
  }
  const scales = Float32Array.from(bestScale);
  const zeroPoints = Float32Array.from(bestZero, (z) => (integerZero ? z : Math.fround(roundSigned16(z))));
  for (let i = 0; i < w.length; i++) {
    const k = ids[i]!;
    codes[i] = Math.min(maxq, Math.max(0, Math.round(w[i]! / scales[k]! + zeroPoints[k]!)));
  }
  const quantized: QuantizedTensor = {
    shape: [rows, columns],
    format: { type: 'int', bits, symmetric: false },
    granularity,
    codes,
    scales,
    scaleEncoding: 'float16',
    zeroPoints,
    ...(integerZero ? {} : { zeroPointEncoding: 'float16' as const }),
  };
  const dq = dequantize(quantized);
  let final = 0;
  for (let i = 0; i < w.length; i++) final += Math.abs(w[i]! - dq.data[i]!);
  const bitsPerWeight = (w.length * bits + g * 16 + g * (integerZero ? bits : 16)) / w.length;
  return { quantized, weight: dq, bitsPerWeight, error: { initial, final: final / w.length }, iterations: done };
}

function roundSigned16(x: number): number {
  return x === 0 ? 0 : Math.sign(x) * roundScale(Math.abs(x), 'float16');
}
