import { gatedActivationLoop } from '@bitsmith/linalg';

/**
 * The gated MLP product in place: `gate[i] = act(gate[i]) * up[i]`, with `act` SiLU (SwiGLU, Llama; arXiv:2002.05202)
 * or the tanh approximation of GELU (GeGLU, Gemma: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`), in a
 * JavaScript loop (`@bitsmith/linalg`'s `gatedActivationLoop`). The forward pass calls the backend's
 * `gatedActivation` instead, which is this loop on the js and wasm backends and native code on ort.
 *
 * @example
 * ```ts
 * gatedActivation(gate, up, 'silu'); // gate now holds silu(gate) * up
 * ```
 */
export function gatedActivation(gate: Float32Array, up: Float32Array, activation: 'silu' | 'gelu-tanh'): Float32Array {
  gatedActivationLoop({ gate, up, out: gate, activation });
  return gate;
}
