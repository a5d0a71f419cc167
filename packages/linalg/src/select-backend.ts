import { InvalidArgumentError } from '@bitsmith/core';
import type { Backend, BackendName, BackendOptions } from './backend.js';
import { BackendUnavailableError } from './backend-unavailable-error.js';
import { createJsBackend } from './backends/js-backend.js';

type Factory = (options?: BackendOptions) => Backend | Promise<Backend>;

/** Every backend name `createBackend` accepts. */
export const BACKEND_NAMES: readonly BackendName[] = ['js', 'wasm', 'ort', 'tfjs', 'webgpu'];

/**
 * The order in which {@link defaultBackend} tries backends: fastest first. `tfjs` is only used when asked for.
 * `webgpu` is tried only where WebGPU is built in (`navigator.gpu`: browsers, Deno) or where `BITSMITH_WEBGPU=1`
 * asks for it in Node (see {@link defaultBackend}).
 */
export const DEFAULT_BACKEND_ORDER: readonly BackendName[] = ['webgpu', 'ort', 'wasm', 'js'];

function environment(): Record<string, string | undefined> | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
}

/**
 * Whether {@link defaultBackend} tries `webgpu`: where `navigator.gpu` exists, or in Node with `BITSMITH_WEBGPU=1`.
 * Node is opt-in because finding out costs every process that merely wants a CPU backend the load of Dawn's 20 MB
 * native module and a driver probe that writes warnings to stderr on machines without a usable GPU.
 */
function tryWebgpuByDefault(): boolean {
  if ((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) return true;
  return environment()?.BITSMITH_WEBGPU?.trim() === '1';
}

/**
 * Loads the factory of an optional backend. The modules are imported lazily so that a missing optional
 * dependency (onnxruntime-node, tfjs) or a missing module costs nothing until that backend is asked for.
 */
async function loadFactory(name: BackendName): Promise<Factory> {
  let module: Record<string, unknown>;
  let exportName: string;
  switch (name) {
    case 'js':
      return createJsBackend;
    case 'wasm':
      exportName = 'createWasmBackend';
      // @ts-ignore -- the module may be absent from partial builds; the failure is caught by the caller.
      module = (await import('./backends/wasm-backend.js')) as Record<string, unknown>;
      break;
    case 'ort':
      exportName = 'createOrtBackend';
      // @ts-ignore -- as above.
      module = (await import('./backends/ort-backend.js')) as Record<string, unknown>;
      break;
    case 'tfjs':
      exportName = 'createTfjsBackend';
      // @ts-ignore -- as above.
      module = (await import('./backends/tfjs-backend.js')) as Record<string, unknown>;
      break;
    case 'webgpu':
      exportName = 'createWebgpuBackend';
      // @ts-ignore -- as above.
      module = (await import('./backends/webgpu-backend.js')) as Record<string, unknown>;
      break;
    default:
      throw new InvalidArgumentError('name', `unknown backend '${String(name)}'; expected one of ${BACKEND_NAMES.join(', ')}`);
  }
  const factory = module[exportName];
  if (typeof factory !== 'function') throw new Error(`module does not export ${exportName}()`);
  return factory as Factory;
}

/**
 * Creates a new backend by name. Each call returns a new instance that the caller owns and must `dispose()`.
 *
 * @param name - `'js'` (always available), `'wasm'`, `'ort'` (Node with onnxruntime-node) or `'tfjs'` (a registered tfjs backend).
 * @param options - `threads`: worker or native threads (default: the number of CPU cores; ignored by `js`).
 * @throws {@link BackendUnavailableError} when the backend cannot be created here (the cause says why).
 * @example
 * ```ts
 * const backend = await createBackend('wasm', { threads: 2 });
 * try { await backend.sgemm({ m, n, k, a, b, c }); } finally { await backend.dispose(); }
 * ```
 */
export async function createBackend(name: BackendName, options: BackendOptions = {}): Promise<Backend> {
  if (!BACKEND_NAMES.includes(name)) {
    throw new InvalidArgumentError('name', `unknown backend '${String(name)}'; expected one of ${BACKEND_NAMES.join(', ')}`);
  }
  let factory: Factory;
  try {
    factory = await loadFactory(name);
  } catch (cause) {
    throw new BackendUnavailableError(name, `its module failed to load (${(cause as Error)?.message ?? String(cause)})`, { cause });
  }
  try {
    return await factory(options);
  } catch (cause) {
    throw new BackendUnavailableError(name, `it failed to start (${(cause as Error)?.message ?? String(cause)})`, { cause });
  }
}

function forcedBackend(): BackendName | undefined {
  const value = environment()?.BITSMITH_BACKEND?.trim();
  if (!value) return undefined;
  if (!BACKEND_NAMES.includes(value as BackendName)) {
    throw new InvalidArgumentError('BITSMITH_BACKEND', `unknown backend '${value}'; expected one of ${BACKEND_NAMES.join(', ')}`);
  }
  return value as BackendName;
}

let shared: Promise<Backend> | undefined;

async function pickDefault(): Promise<Backend> {
  const forced = forcedBackend();
  if (forced) return createBackend(forced);
  for (const name of DEFAULT_BACKEND_ORDER) {
    if (name === 'webgpu' && !tryWebgpuByDefault()) continue;
    try {
      return await createBackend(name);
    } catch {
      // Not available here: try the next one. `js` always succeeds.
    }
  }
  return createJsBackend();
}

/**
 * The shared default backend, created on first call: the fastest one available here, in the order
 * {@link DEFAULT_BACKEND_ORDER}: `webgpu` where a WebGPU adapter exists and WebGPU is built in (browsers) or asked
 * for with `BITSMITH_WEBGPU=1` (Node, through the optional `webgpu` package); else `ort` when onnxruntime-node loads,
 * else `wasm`, else `js`. The `webgpu` backend itself sends calls too small to pay for the copies (below 2^25
 * multiply-adds) and all float64 work to `wasm`. Set the environment variable `BITSMITH_BACKEND=js|wasm|ort|tfjs|webgpu`
 * to force one (an unavailable forced backend is an error, not a silent fallback). Do not dispose the shared
 * instance; call {@link disposeDefaultBackend} instead.
 *
 * @example
 * ```ts
 * const backend = await defaultBackend();
 * console.log(backend.name, backend.threads);
 * ```
 */
export function defaultBackend(): Promise<Backend> {
  if (!shared) {
    shared = pickDefault();
    shared.catch(() => {
      shared = undefined;
    });
  }
  return shared;
}

/**
 * Disposes the shared default backend (its workers or sessions) if it was created; the next
 * {@link defaultBackend} call creates a new one. Useful at the end of a CLI run or a test file.
 *
 * @example
 * ```ts
 * await disposeDefaultBackend();
 * ```
 */
export async function disposeDefaultBackend(): Promise<void> {
  const current = shared;
  shared = undefined;
  if (!current) return;
  try {
    await (await current).dispose();
  } catch {
    // Creation failed: nothing to release.
  }
}
