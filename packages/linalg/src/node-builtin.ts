/**
 * Whether this runs in Node (or a runtime that offers Node's built-ins under `node:`: Deno, Bun).
 *
 * @example
 * ```ts
 * if (runsInNode()) console.log('threads through worker_threads');
 * ```
 */
export function runsInNode(): boolean {
  return typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';
}

/**
 * Imports a Node built-in module (`'os'`, `'v8'`, `'fs/promises'`, `'worker_threads'`) where the runtime has one, and
 * gives `undefined` elsewhere (browsers, workers). The specifier is assembled at run time and marked for webpack and
 * Vite to leave alone, so browser bundlers (esbuild, Vite, webpack, Rollup) see no import of a Node module: nothing to
 * resolve, stub or warn about. Browsers never reach the `import()`.
 *
 * @example
 * ```ts
 * const os = await nodeBuiltin<typeof import('node:os')>('os');
 * const cores = os?.availableParallelism() ?? 1;
 * ```
 */
export async function nodeBuiltin<T>(name: 'os' | 'v8' | 'fs/promises' | 'worker_threads'): Promise<T | undefined> {
  if (!runsInNode()) return undefined;
  const specifier = `node:${name}`;
  try {
    return (await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier)) as T;
  } catch {
    return undefined;
  }
}
