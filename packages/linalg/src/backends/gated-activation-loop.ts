import type { GatedActivationArguments } from '../backend.js';
import { fastExp } from '../fast-exp.js';
import { tryReferenceKernels, type ReferenceKernels } from '../reference-kernels.js';

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

/**
 * {@link gatedActivationLoop}'s results, bit for bit, with SiLU in WebAssembly SIMD ({@link createReferenceKernels})
 * where available; GELU (whose `tanh` is JavaScript's) and machines without the kernels run the loop itself. The
 * `js`, `wasm` and `tfjs` backends' `gatedActivation`, and the `ort` backend's for `reference` calls.
 *
 * @param kernels The kernels to use; default a new instance.
 * @example
 * ```ts
 * await gatedActivationReference({ gate, up, out: gate, activation: 'silu' });
 * ```
 */
export async function gatedActivationReference(args: GatedActivationArguments, kernels?: ReferenceKernels): Promise<void> {
  const wasm = args.activation === 'silu' ? (kernels ?? (await tryReferenceKernels())) : undefined;
  if (wasm) wasm.siluGate(args.gate, args.up, args.out, args.length ?? args.gate.length);
  else gatedActivationLoop(args);
}
