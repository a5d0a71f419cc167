import type { ReferenceKernels } from '@bitsmith/linalg';
import { rmsNormBackward, ropeBackward } from './block-backward-ops.js';
import { withReferenceKernels } from './reference-kernel-pool.js';
import { addRmsNorm, rmsNorm } from './rms-norm.js';
import { applyRope, type RopeTables } from './rope.js';

// The block passes' row operations on the reference kernels (WebAssembly SIMD, the same bits as the JavaScript loops,
// which run where the kernels are unavailable). Internal to the training passes of `llama-block-backward.ts`: each
// takes the workspace's own kernel instance where it has one (its arrays then need no copies), else one of the pool's.

/** Runs `work` on `own` when given, else on a pooled instance (or null: the JavaScript loops). Internal. */
export function onKernels<T>(own: ReferenceKernels | undefined, work: (kernels: ReferenceKernels | null) => T): Promise<T> {
  return own ? Promise.resolve(work(own)) : withReferenceKernels(work);
}

/** {@link rmsNorm} into `out`, on the reference kernels where available. */
export function rmsNormRows(x: Float32Array, rows: number, columns: number, weight: Float32Array, eps: number, out: Float32Array, own?: ReferenceKernels): Promise<Float32Array> {
  return onKernels(own, (k) => {
    if (k) k.rmsNorm(x, rows, columns, weight, eps, out);
    else rmsNorm(x, rows, columns, weight, eps, out);
    return out;
  });
}

/** {@link addRmsNorm} (`h += x`, `out = rmsNorm(h)`), on the reference kernels where available. */
export function addRmsNormRows(h: Float32Array, x: Float32Array, rows: number, columns: number, weight: Float32Array, eps: number, out: Float32Array, own?: ReferenceKernels): Promise<Float32Array> {
  return onKernels(own, (k) => {
    if (k) k.addRmsNorm(h, x, rows, columns, weight, eps, out);
    else addRmsNorm(h, x, rows, columns, weight, eps, out);
    return out;
  });
}

/** {@link rmsNormBackward} without the gain's gradient, on the reference kernels where available. */
export function rmsNormBackwardRows(x: Float32Array, rows: number, columns: number, weight: Float32Array, eps: number, dy: Float32Array, dx: Float32Array, accumulate: boolean, own?: ReferenceKernels): Promise<void> {
  return onKernels(own, (k) => {
    if (k) k.rmsNormBackward(x, rows, columns, weight, eps, dy, dx, accumulate);
    else rmsNormBackward(x, rows, columns, weight, eps, dy, dx, undefined, accumulate);
  });
}

/** {@link applyRope} (or with `inverse` {@link ropeBackward}) in place, on the reference kernels where available. */
export function ropeRows(data: Float32Array, tables: RopeTables, tokens: number, heads: number, positions: Int32Array, inverse: boolean, own?: ReferenceKernels): Promise<void> {
  return onKernels(own, (k) => {
    if (k) k.rope(data, tokens, heads, tables.headDim, tables.cos, tables.sin, positions, inverse);
    else if (inverse) ropeBackward(data, tables, tokens, heads, positions);
    else applyRope(data, tables, tokens, heads, positions);
  });
}

/** `out[i] += h[i]` (float32) for every element of `out` (the residual add), on the reference kernels where available. */
export function addInto(out: Float32Array, h: Float32Array, own?: ReferenceKernels): Promise<void> {
  return onKernels(own, (k) => {
    if (k) k.add(out, h, out, out.length);
    else for (let i = 0; i < out.length; i++) out[i]! += h[i]!;
  });
}
