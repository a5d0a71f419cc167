import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { defineConfig } from 'tsup';

/**
 * `src/select-backend.ts` loads the optional backends (`wasm`, `ort`, `tfjs`) through dynamic `import()` inside
 * try/catch. While one of those modules does not exist yet, leave its import external instead of failing the
 * build; at run time the import then fails and selection falls back to the next backend.
 */
const optionalBackendModules = {
  name: 'optional-backend-modules',
  setup(build: { onResolve: (o: { filter: RegExp }, cb: (a: { path: string; resolveDir: string }) => unknown) => void }) {
    build.onResolve({ filter: /^\.\/backends\/(wasm|ort|tfjs|webgpu)-backend\.js$/ }, (args) => {
      const source = resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts'));
      if (existsSync(source)) return undefined;
      return { path: args.path, external: true };
    });
  },
};

export default defineConfig({
  // The helper threads of the ort backend's reference attention start dist/ort-reference-worker.js (Node only; no
  // module imports it, so browser bundles of the index never reach it).
  entry: { index: 'src/index.ts', 'ort-reference-worker': 'src/backends/ort-reference-worker.ts' },
  dts: { entry: { index: 'src/index.ts' } },
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'es2022',
  esbuildPlugins: [optionalBackendModules],
  // The kernels go next to the bundles, where `new URL('./kernels.wasm', import.meta.url)` in the wasm backend finds them
  // (and where Vite and webpack pick them up from).
  publicDir: 'wasm',
});
