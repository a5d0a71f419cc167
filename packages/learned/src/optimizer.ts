import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import { scheduleFactor, type LearningRateSchedule } from './learning-rate-schedule.js';
import { residentSignStep } from './resident-sign-step.js';

/** Parameter and gradient buffers an optimiser updates. */
export type ParameterArray = Float32Array | Float64Array;

/**
 * A first-order optimiser over one parameter vector: `step(params, grads)` updates `params` in place from their
 * gradient and advances the iteration counter; the learning rate follows the schedule over `iterations`.
 */
export interface Optimizer {
  readonly name: string;
  /** Iterations taken so far. */
  readonly iteration: number;
  /** Learning rate the next step will use. */
  learningRate(): number;
  /** Updates `params` in place (minimising) and then clamps them to `bounds` when given. */
  step(params: ParameterArray, grads: ArrayLike<number>): void;
}

/** Options common to {@link signSgd} and {@link adam}. */
export interface OptimizerOptions {
  /** Base learning rate. */
  learningRate: number;
  /** Total iterations the schedule spans. */
  iterations: number;
  /** Default `'linear'` for SignSGD (AutoRound), `'constant'` for Adam. */
  schedule?: LearningRateSchedule;
  /** Clamp every parameter to `[min, max]` after each step (AutoRound's rounding offset lives in [-0.5, 0.5]). */
  bounds?: readonly [min: number, max: number];
}

/** Options of {@link signSgd}. */
export interface SignSgdOptions extends OptimizerOptions {
  /**
   * Step float32 parameters in float32 arithmetic, as PyTorch steps a float32 tensor: the rate and the bounds rounded
   * to float32, `p - rate * sign(g)` rounded to float32, then `c < min ? min : c` and `c > max ? max : c`. Default
   * false: the step in float64, rounded once to float32 at the store. Float64 parameters step in float64 either way.
   */
  float32?: boolean;
}

function checkOptions(o: OptimizerOptions): void {
  if (!(o.learningRate > 0) || !Number.isFinite(o.learningRate)) throw new InvalidArgumentError('learningRate', `got ${o.learningRate}; expected a positive number`);
  if (!Number.isInteger(o.iterations) || o.iterations < 1) throw new InvalidArgumentError('iterations', `got ${o.iterations}; expected a positive integer`);
  if (o.bounds && !(o.bounds[0] <= o.bounds[1])) throw new InvalidArgumentError('bounds', `got [${o.bounds.join(', ')}]; expected min <= max`);
}

function clampAll(params: ParameterArray, bounds: readonly [number, number] | undefined): void {
  if (!bounds) return;
  const [lo, hi] = bounds;
  for (let i = 0; i < params.length; i++) params[i] = Math.min(hi, Math.max(lo, params[i]!));
}

/**
 * Signed gradient descent: `p -= lr_t * sign(g)` (AutoRound/SignRound's optimiser: every rounding offset moves by the
 * same step whatever the gradient's scale; arXiv:2309.05516). Default schedule: linear decay to 0.
 *
 * @example
 * ```ts
 * const opt = signSgd({ learningRate: 1 / 200, iterations: 200, bounds: [-0.5, 0.5] });
 * opt.step(v, gradV);
 * ```
 */
export function signSgd(options: SignSgdOptions): Optimizer {
  checkOptions(options);
  const float32 = options.float32 === true;
  const schedule = options.schedule ?? 'linear';
  let t = 0;
  const rate = () => options.learningRate * scheduleFactor(schedule, Math.min(t, options.iterations - 1), options.iterations);
  return {
    name: 'sign-sgd',
    get iteration() {
      return t;
    },
    learningRate: rate,
    step(params, grads) {
      if (grads.length !== params.length) throw new ShapeMismatchError('gradient', [params.length], [grads.length]);
      const lr = rate();
      if (options.bounds && params instanceof Float32Array && residentSignStep(params)?.(grads, lr, options.bounds[0], options.bounds[1], float32)) {
        // The parameters live in a kernel that took the step (AutoRound's rounding offsets): the same bits as below.
      } else if (float32 && params instanceof Float32Array) {
        // Float32 arithmetic: lr * direction is exact, and the float64 difference of two float32 values rounds to
        // their float32 difference.
        const f = Math.fround;
        const rate32 = f(lr);
        const lo = options.bounds ? f(options.bounds[0]) : -Infinity;
        const hi = options.bounds ? f(options.bounds[1]) : Infinity;
        for (let i = 0; i < params.length; i++) {
          const g = grads[i]!;
          let c = f(params[i]! - rate32 * (Number(g > 0) - Number(g < 0)));
          c = c < lo ? lo : c;
          params[i] = c > hi ? hi : c;
        }
      } else if (options.bounds && params instanceof Float32Array) {
        // One pass: the step, the clamp, one rounding to float32 at the store: the same float32 values as rounding the
        // step and then clamping (rounding to float32 is monotone, so it commutes with a clamp). The gradient's sign as
        // (g > 0) - (g < 0) (0 for 0 and NaN) instead of a branch: the signs are random, and a mispredicted branch per
        // offset cost more than the rest of the loop.
        const [lo, hi] = options.bounds;
        for (let i = 0; i < params.length; i++) {
          const g = grads[i]!;
          const direction = Number(g > 0) - Number(g < 0);
          params[i] = Math.min(hi, Math.max(lo, params[i]! - lr * direction));
        }
      } else {
        for (let i = 0; i < params.length; i++) {
          const g = grads[i]!;
          if (g > 0) params[i]! -= lr;
          else if (g < 0) params[i]! += lr;
        }
        clampAll(params, options.bounds);
      }
      t++;
    },
  };
}

/** Options of {@link adam}. */
export interface AdamOptions extends OptimizerOptions {
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  epsilon?: number;
}

/**
 * Adam (Kingma & Ba, arXiv:1412.6980) with bias correction; moments in float64:
 * `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`, `p -= lr_t * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
 * The optimiser holds the moments of one parameter vector of a fixed length. Default schedule: constant.
 *
 * @example
 * ```ts
 * const opt = adam({ learningRate: 1e-3, iterations: 100 });
 * for (let i = 0; i < 100; i++) opt.step(params, gradient(params));
 * ```
 */
export function adam(options: AdamOptions): Optimizer {
  checkOptions(options);
  const { beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8 } = options;
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) throw new InvalidArgumentError('beta1/beta2', `got ${beta1}, ${beta2}; expected values in [0, 1)`);
  const schedule = options.schedule ?? 'constant';
  let m: Float64Array | undefined;
  let v: Float64Array | undefined;
  let t = 0;
  const rate = () => options.learningRate * scheduleFactor(schedule, Math.min(t, options.iterations - 1), options.iterations);
  return {
    name: 'adam',
    get iteration() {
      return t;
    },
    learningRate: rate,
    step(params, grads) {
      if (grads.length !== params.length) throw new ShapeMismatchError('gradient', [params.length], [grads.length]);
      m ??= new Float64Array(params.length);
      v ??= new Float64Array(params.length);
      if (m.length !== params.length) throw new ShapeMismatchError('parameters', [m.length], [params.length], 'an Adam optimiser holds the moments of one parameter vector');
      const lr = rate();
      t++;
      const c1 = 1 - beta1 ** t;
      const c2 = 1 - beta2 ** t;
      for (let i = 0; i < params.length; i++) {
        const g = grads[i]!;
        m[i] = beta1 * m[i]! + (1 - beta1) * g;
        v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
        params[i]! -= (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + epsilon);
      }
      clampAll(params, options.bounds);
    },
  };
}
