import type { GatedActivationArguments } from '../backend.js';
import { fastExp } from '../fast-exp.js';

const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * The gated MLP product `out[i] = act(gate[i]) * up[i]` in a JavaScript loop, float64 inside each element: SiLU
 * `x / (1 + exp(-x))` with `fastExp` (SwiGLU, arXiv:2002.05202), or tanh-approximated GELU (GeGLU). The `js`,
 * `wasm` and `tfjs` backends' `gatedActivation`, and the reference the `ort` backend's graph is tested against.
 *
 * @example
 * ```ts
 * gatedActivationLoop({ gate, up, out: gate, activation: 'silu' }); // gate now holds silu(gate) * up
 * ```
 */
export function gatedActivationLoop(args: GatedActivationArguments): void {
  const { gate, up, out } = args;
  const n = args.length ?? gate.length;
  if (args.activation === 'silu') {
    for (let i = 0; i < n; i++) {
      const x = gate[i]!;
      out[i] = (x / (1 + fastExp(-x))) * up[i]!;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const x = gate[i]!;
      out[i] = 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x))) * up[i]!;
    }
  }
}
