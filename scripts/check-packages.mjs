#!/usr/bin/env node
// Checks what every published package would ship (run after the build; CI runs it):
//   1. scripts/package-metadata.mjs --check: repository, homepage, engines, license, keywords, files, README, LICENSE;
//   2. `npm pack --dry-run --json`: the tarball has dist/index.js, README.md and LICENSE, and no test file;
//   3. publint (npm package `publint`): exports, types and files agree with each other.
// Prints one line per package; exits 1 on any problem.
import { execFileSync } from 'node:child_process';
import { readdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';

let failed = false;
try {
  execFileSync(process.execPath, ['scripts/package-metadata.mjs', '--check'], { stdio: 'inherit' });
} catch {
  failed = true;
}
for (const dir of readdirSync('packages').sort()) {
  const pkgDir = join('packages', dir);
  if (!existsSync(join(pkgDir, 'package.json'))) continue;
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  if (pkg.private) continue;
  const problems = [];
  // --ignore-scripts: the build ran already; prepack would rebuild.
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: pkgDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const [info] = JSON.parse(out);
  const files = info.files.map((f) => f.path);
  for (const required of ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts']) if (!files.includes(required)) problems.push(`the tarball lacks ${required}`);
  const tests = files.filter((f) => /\.test(-support|-util)?\.ts$|(^|\/)testing\//.test(f));
  if (tests.length > 0) problems.push(`the tarball ships ${tests.length} test files (${tests.slice(0, 3).join(', ')})`);
  const { messages } = await publint({ pkgDir, level: 'warning', strict: false, pack: 'npm' });
  for (const m of messages) problems.push(`publint ${m.type}: ${formatMessage(m, pkg) ?? m.code}`);
  const size = `${info.entryCount} files, ${(info.size / 1024).toFixed(0)} kB packed, ${(info.unpackedSize / 1024).toFixed(0)} kB unpacked`;
  console.log(`${pkg.name}: ${problems.length === 0 ? 'ok' : 'PROBLEMS'} (${size})`);
  for (const p of problems) console.log(`  ${p}`);
  if (problems.length > 0) failed = true;
}
process.exit(failed ? 1 : 0);
