// `npm run bench -w @bitsmith/formats`: runs every bench/*-check.mjs in turn (each skips with a message when what it
// needs, such as ../shared or an optional runtime, is missing) and fails when one fails. The transformers.js q4
// comparison table (transformers-js-compare.mjs) needs `bitsmith quantize` outputs and is run by hand (docs/formats.md).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const scripts = readdirSync(here).filter((f) => f.endsWith('-check.mjs')).sort();
let failed = 0;
for (const script of scripts) {
  console.log(`\n=== ${script}`);
  const r = spawnSync(process.execPath, ['--no-warnings', join(here, script), ...process.argv.slice(2)], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.log(`=== ${script} failed (exit ${r.status})`);
  }
}
if (failed > 0) process.exitCode = 1;
