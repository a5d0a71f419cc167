import { ShapeMismatchError, heldMatrixAccess, type HeldMatrixAccess, type Matrix, type RuntimeInputTransform } from '@bitsmith/core';
import type { Backend } from '@bitsmith/linalg';

/**
 * Roles of the linear layers of a decoder block, in execution order (`router` is a mixture's `mlp.gate`,
 * `shared_expert_gate` the sigmoid gate of its shared expert).
 */
export type LinearKind = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj' | 'router' | 'shared_expert_gate' | 'lm_head';

/**
 * A transform applied to a linear layer's input at run time, before the weight multiplies it (for example QuaRot's
 * online Hadamard on `down_proj`'s input). This is core's `RuntimeInputTransform`: `apply(input, rows, columns)`
 * rewrites `input` in place; `describe()` says how a runtime must apply it.
 */
export type InputTransform = RuntimeInputTransform;

/**
 * A linear layer `y = x W^T + b` of a model graph. The fields are writable: quantization steps replace `weight`
 * (keep the shape `[outFeatures, inFeatures]`), and may set `inputTransform`.
 */
export interface LinearLayer {
  /** Full Hugging Face module name, e.g. `'model.layers.0.self_attn.q_proj'` (the weight is `${name}.weight`). */
  readonly name: string;
  readonly kind: LinearKind;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** `[outFeatures, inFeatures]`, float32, row-major. */
  weight: Matrix<'float32'>;
  /** `[outFeatures]` or undefined. */
  bias: Float32Array | undefined;
  /** Run-time transform of the input, applied before observers see it and before the multiply. */
  inputTransform: InputTransform | undefined;
}

/** What an observer receives for each linear layer call. */
export interface LinearInputEvent {
  /** The layer's full name, e.g. `'model.layers.0.mlp.down_proj'`. */
  readonly name: string;
  readonly layer: LinearLayer;
  /** Index of the block, or -1 for the LM head. */
  readonly blockIndex: number;
  /**
   * `[tokens, inFeatures]`: exactly what the weight multiplies (after `inputTransform`). Valid only during the
   * callback (buffers are reused, and q/k/v share one): copy it to keep it; never mutate it.
   */
  readonly input: Matrix<'float32'>;
}

/** Receives each linear layer's input before the layer is applied. May be async; the forward pass awaits it. */
export type LinearInputObserver = (event: LinearInputEvent) => void | Promise<void>;

/**
 * Creates a linear layer over a weight matrix.
 *
 * @example
 * ```ts
 * const layer = createLinearLayer('model.layers.0.mlp.up_proj', 'up_proj', matrix(w, 384, 128));
 * ```
 */
export function createLinearLayer(name: string, kind: LinearKind, weight: Matrix<'float32'>, bias?: Float32Array): LinearLayer {
  const [outFeatures, inFeatures] = weight.shape;
  if (bias && bias.length !== outFeatures) throw new ShapeMismatchError(`${name}.bias`, [outFeatures], [bias.length]);
  return { name, kind, inFeatures, outFeatures, weight, bias, inputTransform: undefined };
}

/**
 * Applies a linear layer to `rows` input rows: runs `inputTransform` (on a copy), calls the observer with what the
 * weight multiplies, then `y = x W^T (+ b)` through the backend's `sgemm` with `transB`.
 *
 * @param x `[rows, inFeatures]`; not modified.
 * @param out `[rows, outFeatures]` buffer. Default: a new array.
 * @example
 * ```ts
 * const y = await applyLinear(layer, x, tokens, backend);
 * ```
 */
export async function applyLinear(
  layer: LinearLayer,
  x: Float32Array,
  rows: number,
  backend: Backend,
  options: { observer?: LinearInputObserver | undefined; blockIndex?: number; out?: Float32Array; constantWeight?: boolean } = {},
): Promise<Float32Array> {
  const { weight } = layer;
  // A streamed held weight (an embedding used as the head) not yet in float32 is multiplied a block of rows at a time.
  const held = heldMatrixAccess(weight);
  const streamed = held && held.streamed && !held.resident ? held : undefined;
  const length = streamed ? weight.shape[0] * weight.shape[1] : weight.data.length;
  if (weight.shape[0] !== layer.outFeatures || weight.shape[1] !== layer.inFeatures || length !== layer.outFeatures * layer.inFeatures) {
    throw new ShapeMismatchError(`${layer.name}.weight`, [layer.outFeatures, layer.inFeatures], weight.shape, 'a replacement weight must keep the shape [outFeatures, inFeatures]');
  }
  let input = x;
  if (layer.inputTransform) {
    input = x.slice(0, rows * layer.inFeatures);
    await layer.inputTransform.apply(input, rows, layer.inFeatures);
  }
  if (options.observer) {
    const view = input.length === rows * layer.inFeatures ? input : input.subarray(0, rows * layer.inFeatures);
    await options.observer({
      name: layer.name,
      layer,
      blockIndex: options.blockIndex ?? -1,
      input: { dtype: 'float32', shape: [rows, layer.inFeatures], data: view },
    });
  }
  const out = options.out ?? new Float32Array(rows * layer.outFeatures);
  if (rows > 0 && streamed) {
    await streamedProduct(streamed, input, rows, layer.outFeatures, layer.inFeatures, out, backend);
  } else if (rows > 0) {
    await backend.sgemm({ m: rows, n: layer.outFeatures, k: layer.inFeatures, a: input, b: weight.data, c: out, transB: true, constantB: options.constantWeight === true });
  }
  const { bias } = layer;
  if (bias) {
    const n = layer.outFeatures;
    for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) out[r * n + j]! += bias[j]!;
  }
  return out;
}

/** Floats of one block of a streamed product (its decoded weight rows, and its slice of the output): 16 MiB. */
const STREAM_BLOCK_FLOATS = 1 << 22;

/**
 * `out = x W^T` for a held `W` (`n x k`) not in float32: a block of `W`'s rows is decoded, multiplied through the
 * backend's `sgemm` (never as `constantB`: the block is gone after the call) and its columns of the product copied into
 * `out`. Each output element is the same dot product as in one `sgemm` over the whole of `W` on backends whose sums do
 * not depend on `n` (checked for js, wasm and ort in the tests; not for `ort`'s packed constant-weight path).
 */
async function streamedProduct(held: HeldMatrixAccess, x: Float32Array, rows: number, n: number, k: number, out: Float32Array, backend: Backend): Promise<void> {
  const step = Math.max(1, Math.min(n, Math.floor(STREAM_BLOCK_FLOATS / Math.max(k, rows))));
  const block = new Float32Array(step * k);
  const part = step < n ? new Float32Array(rows * step) : undefined;
  for (let start = 0; start < n; start += step) {
    const end = Math.min(n, start + step);
    const width = end - start;
    const b = held.rows(start, end, block);
    const c = part ? part.subarray(0, rows * width) : out.subarray(0, rows * n);
    await backend.sgemm({ m: rows, n: width, k, a: x, b, c, transB: true });
    if (part) for (let r = 0; r < rows; r++) out.set(c.subarray(r * width, (r + 1) * width), r * n + start);
  }
}
