import type { Backend, BackendName } from '../backend.js';
import { createTfjsTestBackend } from '../backends/tfjs-test-kernels.js';
import { createWebgpuBackend } from '../backends/webgpu-backend.js';
import { createBackend } from '../select-backend.js';

/** One backend that the shared test suite (and anything else that wants every backend) runs against. */
export interface TestBackendEntry {
  /** Name shown in test titles. */
  name: BackendName;
  /** Creates a fresh instance; may throw when the backend is not available here. */
  create: () => Promise<Backend>;
}

/**
 * The backends the shared test suite runs against: `js` always; `wasm`, `ort` and `tfjs` when their module exists
 * and loads here (otherwise their tests are skipped with the reason). Backend authors add entries here when they
 * need something other than `createBackend(name, { threads: 2 })`.
 */
export const TEST_BACKENDS: readonly TestBackendEntry[] = [
  { name: 'js', create: () => createBackend('js') },
  { name: 'wasm', create: () => createBackend('wasm', { threads: 2 }) },
  { name: 'ort', create: () => createBackend('ort', { threads: 2 }) },
  // tfjs-core alone has no kernels: use @tensorflow/tfjs-backend-cpu when installed, else a minimal matMul-only test backend.
  { name: 'tfjs', create: createTfjsTestBackend },
  // Every call on the GPU (no CPU fallback for small calls), so that the shared suite checks the WGSL kernels.
  { name: 'webgpu', create: () => createWebgpuBackend({ minGpuWork: 0, threads: 2 }) },
];

/** A backend that loaded, or the reason it did not. */
export type LoadedTestBackend = { name: BackendName; backend: Backend } | { name: BackendName; unavailable: string };

/**
 * Creates every backend of {@link TEST_BACKENDS} (or those named in the comma-separated environment variable
 * `BITSMITH_TEST_BACKENDS`), returning each instance or the reason it is unavailable. Never throws.
 *
 * @example
 * ```ts
 * const backends = await loadTestBackends();
 * ```
 */
export async function loadTestBackends(entries: readonly TestBackendEntry[] = TEST_BACKENDS): Promise<LoadedTestBackend[]> {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const only = env?.BITSMITH_TEST_BACKENDS?.split(',').map((s) => s.trim()).filter(Boolean);
  const result: LoadedTestBackend[] = [];
  for (const entry of entries) {
    if (only && !only.includes(entry.name)) {
      result.push({ name: entry.name, unavailable: 'not listed in BITSMITH_TEST_BACKENDS' });
      continue;
    }
    try {
      result.push({ name: entry.name, backend: await entry.create() });
    } catch (error) {
      result.push({ name: entry.name, unavailable: (error as Error)?.message ?? String(error) });
    }
  }
  return result;
}
