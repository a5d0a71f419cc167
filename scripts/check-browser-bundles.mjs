#!/usr/bin/env node
// Bundles every library package for browsers with esbuild (platform 'browser', after `npm run build`) and reports
// the size or what does not resolve. Packages in BROWSER_READY must bundle (CI fails otherwise); the others still
// import Node's file system at module level and are listed as not yet browser-ready.
//   node scripts/check-browser-bundles.mjs
import { build } from 'esbuild';

const BROWSER_READY = ['core', 'linalg', 'rotation', 'smoothing', 'solvers', 'codebook', 'lowrank', 'allocate', 'learned', 'recipe'];
const NOT_YET = ['models', 'formats'];
let failed = false;
for (const name of [...BROWSER_READY, ...NOT_YET]) {
  try {
    const result = await build({
      stdin: { contents: `export * from '@bitsmith/${name}';`, resolveDir: process.cwd() },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      minify: true,
      write: false,
      logLevel: 'silent',
      // Optional backends that a browser build leaves out (onnxruntime-node is Node-only; tfjs is an optional peer).
      external: ['onnxruntime-node', '@tensorflow/*'],
    });
    console.log(`@bitsmith/${name}: bundles for browsers (${(result.outputFiles[0].contents.length / 1024).toFixed(0)} kB minified)`);
    if (NOT_YET.includes(name)) console.log(`  now browser-ready: move it to BROWSER_READY in ${import.meta.url.replace(/^.*\//, '')}`);
  } catch (error) {
    const reasons = [...new Set((error.errors ?? []).map((e) => e.text))];
    const ready = BROWSER_READY.includes(name);
    console.log(`@bitsmith/${name}: ${ready ? 'FAILS to bundle' : 'not browser-ready yet'}: ${reasons.slice(0, 4).join('; ') || String(error)}`);
    if (ready) failed = true;
  }
}
process.exit(failed ? 1 : 0);
