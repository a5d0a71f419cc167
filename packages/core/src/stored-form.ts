import { csrStorageBits, type CsrMatrix } from './csr-matrix.js';
import { InvalidArgumentError, ShapeMismatchError } from './errors.js';
import { dequantizeLut, lutBitsPerWeight, type LutQuantizedTensor } from './lut-quantized-tensor.js';
import { bitsPerWeight } from './metrics.js';
import { dequantize, dequantizeRows } from './quantize.js';
import type { QuantizedTensor } from './quantized-tensor.js';
import type { Matrix } from './tensor.js';
import { dequantizeVq, vqBitsPerWeight, type VqQuantizedTensor } from './vq-quantized-tensor.js';

/** Storage of an unquantized weight, for bits-per-weight accounting and exporters. */
export type FloatStorage = 'float32' | 'float16' | 'bfloat16';

/**
 * What a quantized linear layer is, as a file would hold it: the union every quantize and compensate step returns in
 * `LayerState.stored`, every exporter accepts or refuses by `kind`, and the runner checks against the layer's weight
 * (`decodeStored(stored)` equals `weight` to float32 rounding).
 *
 * - `grid`: a uniform grid of any core format (integers with or without zero points, minifloats, NF4, MX, NVFP4),
 *   with an optional act-order permutation (`QuantizedTensor`).
 * - `lut`: per-row lookup tables (SqueezeLLM).
 * - `codebook`: vector codebooks (GPTVQ / VPTQ style).
 * - `low-rank`: a base form plus float factors `A B` (`a` `[out, rank]`, `b` `[rank, in]`; LoRC, LQER, EoRA,
 *   SVDQuant, LQ-LoRA). `factorBits` is what the factors take in storage (float16 or int8 with scales).
 * - `sparse-outliers`: a base form whose values at the positions of `sparse` are replaced by them (dense-and-sparse).
 * - `float`: the weight itself, unquantized.
 */
export type StoredForm =
  | { readonly kind: 'grid'; readonly tensor: QuantizedTensor }
  | { readonly kind: 'lut'; readonly tensor: LutQuantizedTensor }
  | { readonly kind: 'codebook'; readonly tensor: VqQuantizedTensor }
  | { readonly kind: 'low-rank'; readonly base: StoredForm; readonly a: Matrix; readonly b: Matrix; readonly factorBits: number }
  | { readonly kind: 'sparse-outliers'; readonly base: StoredForm; readonly sparse: CsrMatrix }
  | { readonly kind: 'float'; readonly weight: Matrix; readonly storage: FloatStorage };

/** The `kind` of a {@link StoredForm}. */
export type StoredKind = StoredForm['kind'];

/** Every stored kind, in the order of {@link StoredForm}'s documentation. */
export const STORED_KINDS: readonly StoredKind[] = ['grid', 'lut', 'codebook', 'low-rank', 'sparse-outliers', 'float'];

/**
 * `[rows, columns]` of the matrix a stored form decodes to.
 *
 * @example
 * ```ts
 * storedShape({ kind: 'grid', tensor: q }); // q.shape
 * ```
 */
export function storedShape(form: StoredForm): readonly [rows: number, columns: number] {
  switch (form.kind) {
    case 'grid':
    case 'lut':
    case 'codebook':
      return form.tensor.shape;
    case 'low-rank':
    case 'sparse-outliers':
      return storedShape(form.base);
    case 'float':
      return form.weight.shape as readonly [number, number];
  }
}

/**
 * Adds `A B` to `base` as a new float32 matrix, accumulating each row of the product in float64 and rounding once
 * when adding to the float32 base (the dense fake-quant weight of a low-rank compensated layer).
 *
 * @example
 * ```ts
 * const effective = addLowRankProduct(dequantize(q), a, b); // Q + A B
 * ```
 */
export function addLowRankProduct(base: Matrix, a: Matrix, b: Matrix): Matrix {
  const [rows, columns] = base.shape;
  const rank = a.shape[1];
  if (a.shape[0] !== rows || b.shape[0] !== rank || b.shape[1] !== columns) {
    throw new ShapeMismatchError('low-rank factors', [rows, rank, rank, columns], [a.shape[0], a.shape[1], b.shape[0], b.shape[1]], 'a [out, rank] and b [rank, in]');
  }
  const out = Float32Array.from(base.data);
  const ad = a.data;
  const bd = b.data;
  const acc = new Float64Array(columns);
  for (let i = 0; i < rows; i++) {
    acc.fill(0);
    for (let k = 0; k < rank; k++) {
      const aik = ad[i * rank + k]!;
      if (aik === 0) continue;
      const bo = k * columns;
      for (let j = 0; j < columns; j++) acc[j] += aik * bd[bo + j]!;
    }
    const o = i * columns;
    for (let j = 0; j < columns; j++) out[o + j] = out[o + j]! + acc[j]!;
  }
  return { dtype: 'float32', shape: [rows, columns], data: out };
}

/**
 * Decodes a stored form to the float32 weight it stands for (a new matrix).
 *
 * @example
 * ```ts
 * const w = decodeStored({ kind: 'low-rank', base: { kind: 'grid', tensor: q }, a, b, factorBits });
 * ```
 */
export function decodeStored(form: StoredForm): Matrix {
  switch (form.kind) {
    case 'grid':
      return dequantize(form.tensor);
    case 'lut':
      return dequantizeLut(form.tensor);
    case 'codebook':
      return dequantizeVq(form.tensor);
    case 'low-rank':
      return addLowRankProduct(decodeStored(form.base), form.a, form.b);
    case 'sparse-outliers': {
      const out = decodeStored(form.base);
      const s = form.sparse;
      const [rows, columns] = out.shape;
      if (s.shape[0] !== rows || s.shape[1] !== columns) throw new ShapeMismatchError('sparse outliers', [rows, columns], s.shape);
      const data = out.data as Float32Array;
      for (let r = 0; r < rows; r++) {
        for (let i = s.rowPointers[r]!; i < s.rowPointers[r + 1]!; i++) data[r * columns + s.columnIndices[i]!] = s.values[i]!;
      }
      return out;
    }
    case 'float':
      return { dtype: 'float32', shape: form.weight.shape as [number, number], data: Float32Array.from(form.weight.data) };
  }
}

const FLOAT_BITS: Record<FloatStorage, number> = { float32: 32, float16: 16, bfloat16: 16 };

/**
 * Storage bits per weight of a stored form: codes, scales, zero points, tables, codebooks, factors and sparse
 * outliers as exporters write them, over the weight's element count.
 *
 * @example
 * ```ts
 * storedBitsPerWeight({ kind: 'grid', tensor: quantize(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 128 } }) }); // 4.125
 * ```
 */
export function storedBitsPerWeight(form: StoredForm): number {
  switch (form.kind) {
    case 'grid':
      return bitsPerWeight(form.tensor);
    case 'lut':
      return lutBitsPerWeight(form.tensor);
    case 'codebook':
      return vqBitsPerWeight(form.tensor);
    case 'low-rank': {
      const [rows, columns] = storedShape(form.base);
      return storedBitsPerWeight(form.base) + form.factorBits / (rows * columns);
    }
    case 'sparse-outliers': {
      const [rows, columns] = storedShape(form.base);
      return storedBitsPerWeight(form.base) + csrStorageBits(form.sparse) / (rows * columns);
    }
    case 'float':
      return FLOAT_BITS[form.storage];
  }
}

/**
 * Describes a stored form in a few words for reports and errors, for example `low-rank(grid int4 )`.
 *
 * @example
 * ```ts
 * describeStored({ kind: 'sparse-outliers', base: { kind: 'lut', tensor }, sparse }); // 'sparse-outliers(lut)'
 * ```
 */
export function describeStored(form: StoredForm): string {
  return form.kind === 'low-rank' || form.kind === 'sparse-outliers' ? `${form.kind}(${describeStored(form.base)})` : form.kind;
}

/**
 * max |w_i| as `Math.max` folds it from 0 (any NaN makes it NaN), for float32 weights: a monomorphic loop with a
 * comparison instead of `Math.max`, NaN noted on the side.
 */
function maxAbsFloat32(w: Float32Array): number {
  let max = 0;
  let nan = false;
  for (let i = 0; i < w.length; i++) {
    const a = Math.abs(w[i]!);
    if (a > max) max = a;
    else if (a !== a) nan = true;
  }
  return nan ? Number.NaN : max;
}

/** The same fold for other arrays. */
function maxAbs(w: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < w.length; i++) max = Math.max(max, Math.abs(w[i]!));
  return max;
}

/** The first `j < count` with `!(|decoded_j - w_(offset + j)| <= tolerance (|w_(offset + j)| + max))`, or -1. */
function firstOutOfTolerance(decoded: Float32Array, w: Float32Array, offset: number, count: number, tolerance: number, max: number): number {
  for (let j = 0; j < count; j++) {
    const d = decoded[j]!;
    const x = w[offset + j]!;
    if (!(Math.abs(d - x) <= tolerance * (Math.abs(x) + max))) return j;
  }
  return -1;
}

/**
 * The first element where `decodeStored(form)` and `weight` differ by more than float32 rounding allows:
 * `|d - w| > 2^-20 (|w| + max |W|)`. Returns undefined when they agree (and the shapes match).
 *
 * @example
 * ```ts
 * storedFormMismatch(state.stored, state.weight); // undefined, or 'element 17: decodes to 0.5, weight is 0.25'
 * ```
 */
export function storedFormMismatch(form: StoredForm, weight: Matrix): string | undefined {
  const [rows, columns] = storedShape(form);
  if (rows !== weight.shape[0] || columns !== weight.shape[1]) return `stored form has shape [${rows}, ${columns}], the weight [${weight.shape.join(', ')}]`;
  const w = weight.data;
  const max = w instanceof Float32Array ? maxAbsFloat32(w) : maxAbs(w);
  const tolerance = 2 ** -20;
  const compare = (decoded: ArrayLike<number>, offset: number, count: number): string | undefined => {
    for (let j = 0; j < count; j++) {
      const d = decoded[j]!;
      const i = offset + j;
      const x = w[i]!;
      if (!(Math.abs(d - x) <= tolerance * (Math.abs(x) + max))) {
        return `element ${i} (row ${Math.floor(i / columns)}, column ${i % columns}) decodes to ${d}, the weight is ${x}`;
      }
    }
    return undefined;
  };
  const g = form.kind === 'grid' ? form.tensor : undefined;
  if (g && !g.permutation && (g.granularity.type === 'group' || g.granularity.type === 'channel') && columns > 0) {
    // A plain grid decodes row by row: compare in chunks of about 1M values instead of decoding the whole tensor
    // (float32 weights through a monomorphic loop: the same test, element by element).
    const step = Math.max(1, Math.floor(2 ** 20 / columns));
    const chunk = new Float32Array(Math.min(rows, step) * columns);
    for (let r = 0; r < rows; r += step) {
      const r1 = Math.min(rows, r + step);
      const decoded = dequantizeRows(g, r, r1, chunk);
      const offset = r * columns;
      const count = (r1 - r) * columns;
      if (w instanceof Float32Array) {
        const j = firstOutOfTolerance(decoded, w, offset, count, tolerance, max);
        if (j >= 0) return compare(decoded.subarray(j), offset + j, 1);
        continue;
      }
      const found = compare(decoded, offset, count);
      if (found) return found;
    }
    return undefined;
  }
  return compare(decodeStored(form).data, 0, w.length);
}

/**
 * Wraps a grid tensor as a stored form (the common case of round-to-nearest, GPTQ, QuantEase, HQQ).
 *
 * @example
 * ```ts
 * const stored = gridStored(quantize(w, { format: parseFormat('int4') }));
 * ```
 */
export function gridStored(tensor: QuantizedTensor): StoredForm {
  if (!tensor || !tensor.codes) throw new InvalidArgumentError('tensor', 'expected a QuantizedTensor');
  return { kind: 'grid', tensor };
}

/**
 * The grid tensor of a `grid` stored form; undefined for every other kind (and for no form).
 *
 * @example
 * ```ts
 * const q = storedGrid(layer.stored); // QuantizedTensor | undefined
 * ```
 */
export function storedGrid(form: StoredForm | undefined): QuantizedTensor | undefined {
  return form?.kind === 'grid' ? form.tensor : undefined;
}
