import { tryReferenceKernels, type ReferenceKernels } from '@bitsmith/linalg';

/** Reference kernel instances not in use (each has its own memory, whose views one call holds across its awaits). */
const idle: ReferenceKernels[] = [];

/**
 * Runs `work` with a reference kernel instance of its own (an idle one, or a new one), or with `null` where WebAssembly
 * SIMD is not available (the caller then runs its JavaScript loop: same bits, slower), and returns the instance to the
 * pool afterwards. Concurrent callers never share an instance. Internal to the backward pass.
 *
 * @example
 * ```ts
 * await withReferenceKernels(async (kernels) => (kernels ? kernels.swigluBackward(g, u, d, g, u, g.length) : swigluLoop(g, u, d, g, u)));
 * ```
 */
export async function withReferenceKernels<T>(work: (kernels: ReferenceKernels | null) => Promise<T> | T): Promise<T> {
  const kernels = idle.pop() ?? (await tryReferenceKernels()) ?? null;
  try {
    return await work(kernels);
  } finally {
    if (kernels) idle.push(kernels);
  }
}
