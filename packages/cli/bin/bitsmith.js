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
await import(entry.href);
