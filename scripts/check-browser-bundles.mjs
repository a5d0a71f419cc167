#!/usr/bin/env node
// Bundles every published package except the CLI for browsers with esbuild (platform 'browser', which picks each
// package's default entry over its `node` one; after `npm run build`) and fails when one does not bundle or when the
// bundle still imports a Node built-in (`node:fs`, `fs`, `worker_threads`, ...), statically or through a literal
// dynamic `import()`. esbuild's metafile lists every import that stayed external, so nothing hides in a try block.
//   node scripts/check-browser-bundles.mjs [package...]
import { builtinModules } from 'node:module';
import { build } from 'esbuild';

const PACKAGES = ['core', 'linalg', 'rotation', 'smoothing', 'solvers', 'codebook', 'lowrank', 'allocate', 'learned', 'recipe', 'models', 'formats', 'steps'];
// Packages that are Node tools by purpose: the CLI, and the demo assets it runs (paths into other npm packages).
const NODE_ONLY = ['cli', 'demo-assets'];
// Optional backends that a browser build leaves out: onnxruntime-node is Node's native runtime, loaded through a
// run-time specifier, and tfjs is an optional peer the user brings.
const EXTERNAL = ['onnxruntime-node', '@tensorflow/*'];

const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
const isNodeBuiltin = (path) => path.startsWith('node:') || builtins.has(path) || builtins.has(path.split('/')[0]);

const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : PACKAGES;
let failed = false;
for (const name of names) {
  try {
    const result = await build({
      stdin: { contents: `export * from '@bitsmith/${name}';`, resolveDir: process.cwd() },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      minify: true,
      write: false,
      metafile: true,
      logLevel: 'silent',
      external: EXTERNAL,
    });
    const nodeImports = [];
    for (const [file, input] of Object.entries(result.metafile.inputs)) {
      for (const imported of input.imports) if (isNodeBuiltin(imported.path)) nodeImports.push(`${imported.path} (${imported.kind} in ${file})`);
    }
    if (nodeImports.length > 0) {
      failed = true;
      console.log(`@bitsmith/${name}: FAILS: its browser bundle imports Node built-ins: ${[...new Set(nodeImports)].slice(0, 6).join('; ')}`);
    } else {
      console.log(`@bitsmith/${name}: bundles for browsers, no Node built-in imported (${(result.outputFiles[0].contents.length / 1024).toFixed(0)} kB minified)`);
    }
  } catch (error) {
    failed = true;
    const reasons = [...new Set((error.errors ?? []).map((e) => `${e.text}${e.location ? ` (${e.location.file})` : ''}`))];
    console.log(`@bitsmith/${name}: FAILS to bundle: ${reasons.slice(0, 4).join('; ') || String(error)}`);
  }
}
console.log(`not bundled (Node tools by purpose): ${NODE_ONLY.map((n) => `@bitsmith/${n}`).join(', ')}`);
process.exit(failed ? 1 : 0);
