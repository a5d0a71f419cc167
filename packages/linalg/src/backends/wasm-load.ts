import { nodeBuiltin } from '../node-builtin.js';
import { wasmApi, type WasmModule } from './wasm-memory.js';

/**
 * Reads a built WebAssembly file from the first of `urls` that answers: from disk in Node, else with `fetch`. Each
 * caller writes its URLs as `new URL('./literal.wasm', import.meta.url)` so that bundlers see the asset. Internal.
 */
export async function readWasmFile(file: string, urls: readonly URL[]): Promise<Uint8Array> {
  const fs = await nodeBuiltin<typeof import('node:fs/promises')>('fs/promises');
  let lastError: unknown;
  for (const url of urls) {
    try {
      if (fs && url.protocol === 'file:') return await fs.readFile(url);
      const response = await fetch(url);
      if (response.ok) return new Uint8Array(await response.arrayBuffer());
      lastError = new Error(`${url.href}: HTTP ${response.status}`);
    } catch (error) {
      lastError = error;
    }
  }
  throw new Error(`cannot find the wasm kernels (${file}) next to the @bitsmith/linalg module (bundling with esbuild? copy node_modules/@bitsmith/linalg/dist/*.wasm next to the bundle)`, { cause: lastError });
}

/** `node:v8` when available (Node), for the few V8 flags the kernels need. Internal. */
export function nodeV8(): Promise<{ setFlagsFromString(flags: string): void } | undefined> {
  return nodeBuiltin<typeof import('node:v8')>('v8');
}

/**
 * Compiles a kernel module with V8's optimizing tier (TurboFan) instead of its baseline tier (Liftoff). A long first call
 * of a kernel otherwise runs baseline code to the end, since WebAssembly has no on-stack replacement: a first
 * 2048^3 dgemm took 5.4 s instead of 0.38 s. The flags (--no-liftoff, --no-wasm-lazy-compilation: eager
 * optimized compilation of this small module) are set only for this synchronous compile and restored
 * afterwards, so other WebAssembly in the process compiles as before. Internal.
 */
export function compileOptimized(bytes: Uint8Array, v8: { setFlagsFromString(flags: string): void } | undefined): WasmModule {
  v8?.setFlagsFromString('--no-liftoff');
  v8?.setFlagsFromString('--no-wasm-lazy-compilation');
  try {
    return new wasmApi.Module(bytes);
  } finally {
    v8?.setFlagsFromString('--liftoff');
    v8?.setFlagsFromString('--wasm-lazy-compilation');
  }
}

/** Compiled kernel modules by file name (compiled code is immutable; each instance has its own memory). */
const compiledKernels = new Map<string, Promise<WasmModule>>();

/**
 * A new instance, with its own memory, of a standalone kernel module (`gptq-columns.wasm`, `reference-kernels.wasm`):
 * the file is read from the first of `urls` that answers and compiled optimized once per process; a failed compile is
 * forgotten, so a later call tries again. Each caller writes its URLs as literals (see {@link readWasmFile}). Internal.
 */
export async function instantiateKernel<T>(file: string, urls: readonly URL[]): Promise<T> {
  return new wasmApi.Instance(await compileKernel(file, urls), {}).exports as unknown as T;
}

/**
 * The compiled module of a standalone kernel file (see {@link instantiateKernel}), compiled once per process; a failed
 * compile is forgotten. A compiled module can be posted to a worker thread, which instantiates it without the file. Internal.
 */
export async function compileKernel(file: string, urls: readonly URL[]): Promise<WasmModule> {
  let compiled = compiledKernels.get(file);
  if (!compiled) {
    compiled = readWasmFile(file, urls).then(async (bytes) => compileOptimized(bytes, await nodeV8()));
    compiledKernels.set(file, compiled);
  }
  try {
    return await compiled;
  } catch (error) {
    compiledKernels.delete(file);
    throw error;
  }
}
