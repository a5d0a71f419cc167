import { InvalidArgumentError } from './errors.js';
import type { RuntimeInputTransform } from './model-view.js';

/**
 * Outlier Suppression+'s channel shift as a run-time input transform (Wei et al., arXiv:2304.09145, eq. 3): subtracts
 * `shift[j]` from channel `j` of every token, in place, before the layer's weight (and any activation quantizer
 * composed after it) sees the input. The layer's bias must carry `W shift` so the float model is unchanged:
 * `(x - z) W^T + (b + z W^T) = x W^T + b`. Used where the shift cannot be folded into a producer's bias (Llama's
 * RMSNorm has none, nor does the SwiGLU product in front of `down_proj`).
 *
 * @throws InvalidArgumentError when a shift value is not finite.
 * @example
 * ```ts
 * layer.inputTransform = composeInputTransforms(channelShift(z), activationQuantizer(int8PerTensor, scales));
 * // and layer.bias[i] += sum_j W[i, j] * z[j]
 * ```
 */
export function channelShift(shift: Float32Array): RuntimeInputTransform {
  for (let j = 0; j < shift.length; j++) {
    if (!Number.isFinite(shift[j]!)) throw new InvalidArgumentError('shift', `value ${j} is ${shift[j]}; expected finite numbers`);
  }
  const z = Float32Array.from(shift);
  return {
    name: 'channel-shift',
    apply: (input, rows, columns) => {
      if (columns !== z.length) throw new InvalidArgumentError('columns', `got ${columns}; this shift has ${z.length} channels`);
      for (let r = 0; r < rows; r++) {
        const o = r * columns;
        for (let j = 0; j < columns; j++) input[o + j]! -= z[j]!;
      }
    },
    describe: () => ({ kind: 'channel-shift', shift: Array.from(z) }),
  };
}

/**
 * Rebuilds a {@link channelShift} from its `describe()` (as saved in a fake-quant model's `config.json`).
 *
 * @throws InvalidArgumentError when the description is not a channel shift, naming the field.
 * @example
 * ```ts
 * const again = channelShiftFromDescription(transform.describe());
 * ```
 */
export function channelShiftFromDescription(description: Record<string, unknown>): RuntimeInputTransform {
  if (description.kind !== 'channel-shift') throw new InvalidArgumentError('kind', `got '${String(description.kind)}'; expected 'channel-shift'`);
  const shift = description.shift;
  if (!Array.isArray(shift) || shift.some((x) => typeof x !== 'number' || !Number.isFinite(x))) throw new InvalidArgumentError('shift', 'expected a list of finite numbers');
  return channelShift(Float32Array.from(shift as number[]));
}
