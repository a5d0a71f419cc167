#!/usr/bin/env node
// Builds the browser example into examples/browser/dist with esbuild (a dev dependency of the repository): the page's
// script and the quantization worker as ES modules for browsers (each @bitsmith package through its browser entry),
// the wasm kernels of @bitsmith/linalg next to them, and, when ../shared is there, the tiny model and the texts the
// page offers by default.
//   node examples/browser/build.mjs            (after `npm run build`)
// esbuild leaves `new URL('./kernels.wasm', import.meta.url)` as it is, so the kernels are copied next to the bundle
// here; Vite and webpack find and copy them by themselves.
import { copyFile, cp, mkdir, readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'dist');
const shared = resolve(process.env.BITSMITH_SHARED ?? join(here, '../../../shared'));

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const result = await build({
  entryPoints: { main: join(here, 'src/main.ts'), worker: join(here, 'src/worker.ts') },
  outdir: out,
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
  // tsup's chunks import each other bare; with "sideEffects": false those imports are rightly dropped.
  logOverride: { 'ignored-bare-import': 'silent' },
  loader: { '.yaml': 'text' },
});
await copyFile(join(here, 'index.html'), join(out, 'index.html'));
const linalgDist = join(dirname(createRequire(import.meta.url).resolve('@bitsmith/linalg/package.json')), 'dist');
const kernels = (await readdir(linalgDist)).filter((f) => f.endsWith('.wasm'));
if (kernels.length === 0) throw new Error(`no .wasm kernels in ${linalgDist}: build @bitsmith/linalg first`);
for (const file of kernels) await copyFile(join(linalgDist, file), join(out, file));
const model = join(shared, 'models/tinystories-656k');
if (existsSync(model)) {
  await cp(model, join(out, 'models/tinystories-656k'), { recursive: true, filter: (src) => !src.endsWith('reference.json') });
  await mkdir(join(out, 'texts'), { recursive: true });
  await copyFile(join(shared, 'data/calib.txt'), join(out, 'texts/calibration.txt'));
  await copyFile(join(shared, 'data/dev-heldout.txt'), join(out, 'texts/evaluation.txt'));
}
const sizes = Object.entries(result.metafile.outputs)
  .filter(([file]) => file.endsWith('.js'))
  .map(([file, o]) => `${file.replace(/^.*\//, '')} ${(o.bytes / 1024).toFixed(0)} kB`);
console.log(`built ${out}: ${sizes.join(', ')}, ${kernels.join(', ')}${existsSync(model) ? ', models/tinystories-656k, texts/' : ' (no ../shared: drop a model folder on the page)'}`);
