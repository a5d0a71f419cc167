import { BitsmithError } from './errors.js';

/** Where a non-finite value was found: what holds it, and (when known) the layer and the step that produced it. */
export interface NonFiniteLocation {
  /** What holds the values, for example `'tensor model.embed_tokens.weight'` or `'input of model.layers.0.mlp.down_proj'`. */
  readonly what: string;
  /** Shape of the values (to name the element as `[row, column]`); flat index when absent. */
  readonly shape?: readonly number[];
  /** Layer name, when the values belong to one. */
  readonly layer?: string;
  /** Step id that produced the values, when one did. */
  readonly step?: string;
  /** File the values came from, when they were read from one. */
  readonly file?: string;
}

/**
 * A NaN or an infinity where only finite numbers make sense (weights read from a file, a step's result, a block's
 * activations, a perplexity). The message names the tensor, the element, the layer and the step where known.
 *
 * @example
 * ```ts
 * try { assertFinite(w.data, { what: 'tensor lm_head.weight', shape: w.shape }); }
 * catch (e) { if (NonFiniteError.isInstance(e)) console.error(e.index, e.value); }
 * ```
 */
export class NonFiniteError extends BitsmithError {
  /** Flat index of the first non-finite element. */
  readonly index: number;
  /** The value found there (`NaN`, `Infinity` or `-Infinity`). */
  readonly value: number;
  /** Layer, when known. */
  readonly layer?: string;
  /** Step, when known. */
  readonly step?: string;
  constructor(location: NonFiniteLocation, index: number, value: number, count: number) {
    const element = location.shape && location.shape.length > 1 ? `[${unravel(index, location.shape).join(', ')}]` : `${index}`;
    const by = location.step ? ` after step '${location.step}'` : '';
    const layer = location.layer && !location.what.includes(location.layer) ? ` (layer ${location.layer})` : '';
    super(
      'non-finite',
      `${location.file ? `${location.file}: ` : ''}${location.what}${layer}${by} holds ${value} at element ${element}${count > 1 ? ` and ${count - 1} more non-finite value(s)` : ''}; expected finite numbers`,
    );
    this.name = 'NonFiniteError';
    this.index = index;
    this.value = value;
    if (location.layer !== undefined) this.layer = location.layer;
    if (location.step !== undefined) this.step = location.step;
  }
  /** True when `error` is a {@link NonFiniteError} (checked by code, so it works across package copies). */
  static override isInstance(error: unknown): error is NonFiniteError {
    return BitsmithError.isInstance(error) && error.code === 'non-finite';
  }
}

function unravel(index: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d--) {
    const size = shape[d]! || 1;
    out[d] = rest % size;
    rest = Math.floor(rest / size);
  }
  return out;
}

/** The float32 case of {@link firstNonFinite}: integer tests of the exponent bits (all ones: NaN or infinity). */
function firstNonFiniteFloat32(values: Float32Array): number {
  const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
  const n = bits.length;
  let i = 0;
  // Blocks of 8 with one branch: an exponent of all ones in any of them sends the scan to the element-wise loop.
  for (; i + 8 <= n; i += 8) {
    const e = 0x7f800000;
    if (
      (bits[i]! & e) === e ||
      (bits[i + 1]! & e) === e ||
      (bits[i + 2]! & e) === e ||
      (bits[i + 3]! & e) === e ||
      (bits[i + 4]! & e) === e ||
      (bits[i + 5]! & e) === e ||
      (bits[i + 6]! & e) === e ||
      (bits[i + 7]! & e) === e
    ) {
      break;
    }
  }
  for (; i < n; i++) if ((bits[i]! & 0x7f800000) === 0x7f800000) return i;
  return -1;
}

/** The float64 case of {@link firstNonFinite}: the exponent bits of each value's high word (little-endian). */
function firstNonFiniteFloat64(values: Float64Array): number {
  const words = new Int32Array(values.buffer, values.byteOffset, values.length * 2);
  const n = values.length;
  const e = 0x7ff00000;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    if ((words[2 * i + 1]! & e) === e || (words[2 * i + 3]! & e) === e || (words[2 * i + 5]! & e) === e || (words[2 * i + 7]! & e) === e) break;
  }
  for (; i < n; i++) if ((words[2 * i + 1]! & e) === e) return i;
  return -1;
}

/**
 * Index of the first NaN or infinity in `values`, or -1 when every value is finite. One pass, no allocation.
 *
 * @example
 * ```ts
 * firstNonFinite(Float32Array.of(1, NaN)); // 1
 * ```
 */
export function firstNonFinite(values: ArrayLike<number>): number {
  if (values instanceof Float32Array) return firstNonFiniteFloat32(values);
  if (values instanceof Float64Array) return firstNonFiniteFloat64(values);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // v - v is 0 for finite v and NaN for NaN and ±Infinity.
    if (v - v !== 0) return i;
  }
  return -1;
}

/**
 * Throws a {@link NonFiniteError} naming the tensor, element, layer and step when `values` holds a NaN or an infinity.
 *
 * @example
 * ```ts
 * assertFinite(weight.data, { what: `weight of ${name}`, shape: weight.shape, layer: name, step: 'gptq' });
 * ```
 */
export function assertFinite(values: ArrayLike<number>, location: NonFiniteLocation): void {
  const index = firstNonFinite(values);
  if (index < 0) return;
  let count = 0;
  for (let i = index; i < values.length; i++) {
    const v = values[i]!;
    if (v - v !== 0) count++;
  }
  throw new NonFiniteError(location, index, values[index]!, count);
}
