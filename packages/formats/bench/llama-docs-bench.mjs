// Shared setup of the llama-docs-29m benches (gguf-llama-cpp-check.mjs, onnx-w8a8-check.mjs): command-line options
// with defaults, the standard paths (model, calibration and evaluation texts, the CLI build), the "skipped: ... not
// found" exit for missing prerequisites, and a logged child-process runner.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);

/** The value after `--name` on the command line, or `fallback`. */
export const option = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = resolve(process.env.BITSMITH_SHARED ?? join(root, '../shared'));

/**
 * The options every llama-docs bench takes: --model, --calibration, --eval, --eval-chars (20000), --ctx (512),
 * --samples (`samples`), --seq-len (512) and --out (`out`), resolved; plus the repository root and the CLI build.
 */
export function llamaDocsOptions({ samples, out }) {
  return {
    root,
    modelDir: resolve(option('model', join(shared, 'models/llama-docs-29m'))),
    calibration: resolve(option('calibration', join(shared, 'data/docs-calib.txt'))),
    evalPath: resolve(option('eval', join(shared, 'data/docs-dev-heldout.txt'))),
    evalChars: Number(option('eval-chars', '20000')),
    ctx: Number(option('ctx', '512')),
    samples: option('samples', samples),
    seqLen: option('seq-len', '512'),
    out: resolve(option('out', out)),
    cli: join(root, 'packages/cli/dist/bitsmith.js'),
  };
}

/** Exits 0 with `skipped: WHAT not found at PATH` for the first missing prerequisite; else makes `out`. */
export function requireOrSkip(prerequisites, out) {
  for (const [what, path] of prerequisites) {
    if (!existsSync(path)) {
      console.log(`skipped: ${what} not found at ${path}`);
      process.exit(0);
    }
  }
  mkdirSync(out, { recursive: true });
}

/** Progress to stderr. */
export const log = (s) => process.stderr.write(`${s}\n`);

/** Runs a command (logged), returns its stdout; its stderr goes to ours when `stderr` is 'inherit'. */
export const run = (cmd, args, stderr = 'pipe') => {
  log(`$ ${[cmd, ...args].join(' ')}`);
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', stderr], maxBuffer: 1 << 26 }).toString();
};
