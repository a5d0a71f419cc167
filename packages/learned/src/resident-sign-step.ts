/**
 * A SignSGD step that runs where a parameter array lives (a WebAssembly kernel's memory): `signSgd` asks it first and
 * runs its own loop when it declines. Keyed by the parameter array; internal to this package.
 *
 * The step returns false to decline (for a gradient it does not hold); it must compute `signSgd`'s bounded float32
 * step bit for bit (in float32 arithmetic when `float32` is true, see `SignSgdOptions.float32`).
 */
export type ResidentSignStep = (grads: ArrayLike<number>, rate: number, lowest: number, highest: number, float32: boolean) => boolean;

const steps = new WeakMap<Float32Array, ResidentSignStep>();

/** Registers the step for `params` (replacing an earlier one). */
export function registerSignStep(params: Float32Array, step: ResidentSignStep): void {
  steps.set(params, step);
}

/** The step registered for `params`, if any. */
export function residentSignStep(params: Float32Array): ResidentSignStep | undefined {
  return steps.get(params);
}
