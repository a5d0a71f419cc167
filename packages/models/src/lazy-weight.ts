import { heldMatrix, heldMatrixAccess, type Matrix } from '@bitsmith/core';
import { createLinearLayer, type LinearKind, type LinearLayer } from './linear-layer.js';

/** Where a lazily held weight comes from: a function that produces it as float32 (decoding bf16, a stored form). */
export type WeightSource = () => Float32Array;

interface LazyControl {
  /** Drops the float32 copy when the source can produce it again; true when dropped. */
  release(): boolean;
  /** Replaces the weight by a source that produces exactly the same values (the float32 copy is dropped). */
  hold(source: WeightSource): void;
  /** The weight without keeping a float32 copy (the cached one when there is one). */
  peek(): Matrix<'float32'>;
  /** Whether a float32 copy is in memory. */
  readonly resident: boolean;
}

const CONTROL = Symbol.for('bitsmith.lazyWeight');

/**
 * A linear layer whose weight is held as a source (for example the checkpoint's bfloat16 bytes) until it is first
 * read: `layer.weight` is a core `heldMatrix` whose `data` decodes it to float32 on first read and keeps that copy
 * (reading `layer.weight` itself decodes nothing, so fingerprints and identity checks leave it alone); assigning
 * `layer.weight` replaces it as usual.
 * {@link releaseLinearWeight} drops the float32 copy again while the source can reproduce it, and
 * {@link holdLinearWeight} swaps a weight for an exact source (a quantized layer's stored form), so a model is in
 * float32 only where it is being worked on.
 *
 * @example
 * ```ts
 * const layer = lazyLinearLayer('model.layers.0.mlp.up_proj', 'up_proj', [384, 128], () => decodeToFloat32(bytes, 'BF16'));
 * layer.weight.data; // decoded now
 * releaseLinearWeight(layer); // float32 copy dropped; the next read decodes again
 * ```
 */
export function lazyLinearLayer(name: string, kind: LinearKind, shape: readonly [number, number], source: WeightSource, bias?: Float32Array): LinearLayer {
  const [rows, columns] = shape;
  const layer = createLinearLayer(name, kind, { dtype: 'float32', shape: [rows, columns], data: new Float32Array(0) }, bias);
  // The weight is a held matrix over the source (reading its data decodes and keeps it), or an assigned matrix.
  const heldOver = (from: WeightSource): Matrix<'float32'> => {
    const produce = (): Float32Array => {
      const data = from();
      if (data.length !== rows * columns) throw new RangeError(`${name}: the weight source gave ${data.length} values, expected ${rows} x ${columns}`);
      return data;
    };
    return heldMatrix(rows, columns, (start, end, out) => out.set(produce().subarray(start * columns, end * columns)), { whole: produce });
  };
  let weight = heldOver(source);
  let held = true;
  const control: LazyControl = {
    release: () => held && heldMatrixAccess(weight)!.release(),
    hold(source) {
      weight = heldOver(source);
      held = true;
    },
    peek: () => {
      const access = held ? heldMatrixAccess(weight) : undefined;
      return access ? { dtype: 'float32', shape: [rows, columns], data: access.peek() } : weight;
    },
    get resident() {
      return !held || heldMatrixAccess(weight)!.resident;
    },
  };
  Object.defineProperty(layer, 'weight', {
    enumerable: true,
    configurable: false,
    get: () => weight,
    set: (value: Matrix<'float32'>) => {
      weight = value;
      held = false;
    },
  });
  Object.defineProperty(layer, CONTROL, { value: control, enumerable: false });
  return layer;
}

const controlOf = (layer: LinearLayer): LazyControl | undefined => (layer as unknown as Record<symbol, LazyControl | undefined>)[CONTROL];

/** Drops a lazy layer's float32 weight when its source can reproduce it; false for other layers or a replaced weight. */
export function releaseLinearWeight(layer: LinearLayer): boolean {
  return controlOf(layer)?.release() ?? false;
}

/**
 * Holds a lazy layer's current weight as `source` (which must produce exactly the current values, e.g. the decoding
 * of its stored form) and drops the float32 copy; false for layers not created by {@link lazyLinearLayer}.
 */
export function holdLinearWeight(layer: LinearLayer, source: WeightSource): boolean {
  const control = controlOf(layer);
  if (!control) return false;
  control.hold(source);
  return true;
}

/** A layer's weight without keeping a float32 copy of a lazily held one (for writing it out once). */
export function peekLinearWeight(layer: LinearLayer): Matrix<'float32'> {
  return controlOf(layer)?.peek() ?? layer.weight;
}

/** Whether a layer's weight is in memory as float32 (always true for layers not created lazily). */
export function isWeightResident(layer: LinearLayer): boolean {
  return controlOf(layer)?.resident ?? true;
}

/** Whether a layer was created by {@link lazyLinearLayer}. */
export function isLazyLinearLayer(layer: LinearLayer): boolean {
  return controlOf(layer) !== undefined;
}
