import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MALLOC_TUNABLES, glibcVersion, mallocTunablesEnvironment } from './malloc-tunables.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const BUILT = resolve(HERE, '../dist/malloc-tunables.js');

describe('mallocTunablesEnvironment', () => {
  it('adds the tunables on glibc and keeps the rest of the environment', () => {
    const env = mallocTunablesEnvironment({ PATH: '/bin', HOME: '/h' }, '2.36');
    expect(env).toEqual({ PATH: '/bin', HOME: '/h', GLIBC_TUNABLES: MALLOC_TUNABLES });
  });

  it('appends to other glibc tunables', () => {
    expect(mallocTunablesEnvironment({ GLIBC_TUNABLES: 'glibc.pthread.rseq=0' }, '2.36')?.GLIBC_TUNABLES).toBe(`glibc.pthread.rseq=0:${MALLOC_TUNABLES}`);
  });

  it('is not due without glibc, when opted out, or when either threshold is already set', () => {
    expect(mallocTunablesEnvironment({}, undefined)).toBeUndefined();
    expect(mallocTunablesEnvironment({ BITSMITH_MALLOC_TUNABLES: '0' }, '2.36')).toBeUndefined();
    expect(mallocTunablesEnvironment({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1' }, '2.36')).toBeUndefined();
    expect(mallocTunablesEnvironment({ GLIBC_TUNABLES: 'glibc.pthread.rseq=0:glibc.malloc.mmap_threshold=9' }, '2.36')).toBeUndefined();
    // The relaunched process's own environment: no second relaunch.
    expect(mallocTunablesEnvironment(mallocTunablesEnvironment({}, '2.36')!, '2.36')).toBeUndefined();
    // A similar name is not a threshold.
    expect(mallocTunablesEnvironment({ GLIBC_TUNABLES: 'glibc.malloc.mmap_max=4' }, '2.36')?.GLIBC_TUNABLES).toBe(`glibc.malloc.mmap_max=4:${MALLOC_TUNABLES}`);
  });
});

/** Runs a script that relaunches itself (through the built module) and reports what its child saw. */
function runScript(body: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; pid: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bitsmith-relaunch-'));
  const script = join(dir, 'script.mjs');
  writeFileSync(
    script,
    `const { relaunchWithMallocTunables, watchParent } = await import(${JSON.stringify(new URL(`file://${BUILT}`).href)});\n` +
      `if (!(await relaunchWithMallocTunables())) {\n  await watchParent();\n${body}\n}\n`,
  );
  const child = spawn(process.execPath, [script], { env: { ...process.env, GLIBC_TUNABLES: '', BITSMITH_MALLOC_TUNABLES: '', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
  return new Promise((done) => child.on('exit', (code, signal) => done({ code, signal, stdout, pid: child.pid! })));
}

describe.skipIf(!existsSync(BUILT) || glibcVersion() === undefined)('relaunchWithMallocTunables (built module, glibc)', () => {
  it('runs the command once more with the tunables and exits with its code', async () => {
    const run = await runScript(`  console.log(JSON.stringify({ tunables: process.env.GLIBC_TUNABLES, ppid: process.ppid }));\n  process.exitCode = 7;`);
    expect(run.code).toBe(7);
    const seen = JSON.parse(run.stdout.trim()) as { tunables: string; ppid: number };
    expect(seen.tunables).toBe(MALLOC_TUNABLES);
    // Printed by the child, whose parent is the process this test started.
    expect(seen.ppid).toBe(run.pid);
  });

  it('does not relaunch when opted out', async () => {
    const run = await runScript(`  console.log(JSON.stringify({ tunables: process.env.GLIBC_TUNABLES ?? '', ppid: process.ppid }));`, { BITSMITH_MALLOC_TUNABLES: '0' });
    expect(run.code).toBe(0);
    const seen = JSON.parse(run.stdout.trim()) as { tunables: string; ppid: number };
    expect(seen.tunables).toBe('');
    expect(seen.ppid).toBe(process.pid);
  });

  it('passes the child being killed on as its own exit signal', async () => {
    const run = await runScript(`  process.kill(process.pid, 'SIGTERM');\n  await new Promise((r) => setTimeout(r, 5000));`);
    expect(run.signal).toBe('SIGTERM');
  });

  it('ends the child when the parent is killed with SIGKILL', async () => {
    // The child prints its pid and then would run for a minute; the test kills the parent and checks the child is gone.
    const dir = mkdtempSync(join(tmpdir(), 'bitsmith-relaunch-'));
    const script = join(dir, 'script.mjs');
    writeFileSync(
      script,
      `const { relaunchWithMallocTunables, watchParent } = await import(${JSON.stringify(new URL(`file://${BUILT}`).href)});\n` +
        `if (!(await relaunchWithMallocTunables())) {\n  await watchParent();\n  console.log(process.pid);\n  setTimeout(() => undefined, 60000);\n}\n`,
    );
    const parent = spawn(process.execPath, [script], { env: { ...process.env, GLIBC_TUNABLES: '', BITSMITH_MALLOC_TUNABLES: '' }, stdio: ['ignore', 'pipe', 'inherit'] });
    const childPid = await new Promise<number>((done) => parent.stdout.once('data', (d: Buffer) => done(Number(d.toString().trim()))));
    expect(childPid).not.toBe(parent.pid);
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive(childPid)).toBe(true);
    parent.kill('SIGKILL');
    for (let i = 0; i < 500 && alive(childPid); i++) await new Promise((r) => setTimeout(r, 10));
    expect(alive(childPid)).toBe(false);
  });
});
