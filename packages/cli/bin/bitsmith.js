#!/usr/bin/env node
// The `bitsmith` command. This launcher is committed (not built), so `npm install` on a fresh clone links
// `node_modules/.bin/bitsmith` to it before anything is built; it runs the built CLI in ../dist.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/bitsmith.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write(
    'bitsmith: the command is not built yet (packages/cli/dist/bitsmith.js is missing).\n' +
      'In a clone of the repository, run `npm run build` (or `npm start`) once, then try again.\n',
  );
  process.exit(1);
}
// On glibc, the command runs again in a child process with allocator settings that spare it most page faults
// (src/malloc-tunables.ts says why; BITSMITH_MALLOC_TUNABLES=0 turns this off).
const { relaunchWithMallocTunables, watchParent } = await import(new URL('../dist/malloc-tunables.js', import.meta.url).href);
if (!(await relaunchWithMallocTunables())) {
  await watchParent();
  await import(entry.href);
}
