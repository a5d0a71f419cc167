import { fastExp } from './fast-exp.js';

/**
 * The gated MLP product in place: `gate[i] = act(gate[i]) * up[i]`, with `act` SiLU (SwiGLU, Llama; arXiv:2002.05202)
 * or the tanh approximation of GELU (GeGLU, Gemma: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`).
 *
 * @example
 * ```ts
 * gatedActivation(gate, up, 'silu'); // gate now holds silu(gate) * up
 * ```
 */
export function gatedActivation(gate: Float32Array, up: Float32Array, activation: 'silu' | 'gelu-tanh'): Float32Array {
  const n = gate.length;
  if (activation === 'silu') {
    for (let i = 0; i < n; i++) {
      const x = gate[i]!;
      gate[i] = (x / (1 + fastExp(-x))) * up[i]!;
    }
  } else {
    const c = Math.sqrt(2 / Math.PI);
    for (let i = 0; i < n; i++) {
      const x = gate[i]!;
      gate[i] = 0.5 * x * (1 + Math.tanh(c * (x + 0.044715 * x * x * x))) * up[i]!;
    }
  }
  return gate;
}
