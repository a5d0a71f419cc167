import { spawn } from 'node:child_process';


/**
 * glibc's allocator settings that the `bitsmith` command runs with on Linux: blocks up to 64 MiB come from the heap
 * and the heap keeps up to 128 MiB of freed memory instead of returning it to the kernel.
 *
 * Why: onnxruntime-node copies every run's output into a new array (microsoft/onnxruntime#32346) and a forward makes
 * many arrays of 1-24 MB. With glibc's defaults they are mapped fresh and given back when freed, so every one is
 * paid again in page faults (about 15 µs per 4 KiB page on the machine this was measured on). The GEMMs of a
 * calibration forward of llama-docs-29m ran at 75 GFLOP/s with new output arrays and 210-246 GFLOP/s with these
 * settings (`packages/models/bench/forward-llama-docs.mjs`, docs/models.md). Peak memory may grow by up to the kept
 * 128 MiB.
 */
export const MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=134217728';

/** Set to `0` to run the command without {@link MALLOC_TUNABLES} (no relaunch). */
export const MALLOC_TUNABLES_OPT_OUT = 'BITSMITH_MALLOC_TUNABLES';

/**
 * The environment to relaunch the command with so that glibc uses {@link MALLOC_TUNABLES}, or undefined when no
 * relaunch is due: not glibc (`glibcVersion` undefined: macOS, Windows, musl), opted out
 * (`BITSMITH_MALLOC_TUNABLES=0`), or `GLIBC_TUNABLES` already sets either of the two (the relaunched process, or a
 * user's own choice, which wins). Other tunables in `GLIBC_TUNABLES` are kept.
 *
 * @example
 * ```ts
 * mallocTunablesEnvironment({ PATH: '/bin' }, '2.36')?.GLIBC_TUNABLES; // MALLOC_TUNABLES
 * ```
 */
export function mallocTunablesEnvironment(env: NodeJS.ProcessEnv, glibcVersion: string | undefined): NodeJS.ProcessEnv | undefined {
  if (!glibcVersion || env[MALLOC_TUNABLES_OPT_OUT] === '0') return undefined;
  const current = env.GLIBC_TUNABLES ?? '';
  if (/(^|:)glibc\.malloc\.(mmap|trim)_threshold=/.test(current)) return undefined;
  return { ...env, GLIBC_TUNABLES: current ? `${current}:${MALLOC_TUNABLES}` : MALLOC_TUNABLES };
}

/** The running glibc's version, or undefined when Node does not run on glibc. */
export function glibcVersion(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime;
}

/**
 * Runs this Node process's command line again in a child process with {@link MALLOC_TUNABLES} when
 * {@link mallocTunablesEnvironment} says so (glibc reads them only at start-up), and then never resolves: this
 * process exits as the child does (its exit code, or its signal). Resolves `false` at once when no relaunch is due.
 *
 * The child inherits standard input and output. SIGINT, SIGTERM and SIGHUP sent to this process are passed on; the
 * child ends itself as if killed when this process dies without passing anything on (SIGKILL), so no run outlives
 * the process a user or a test killed.
 */
export function relaunchWithMallocTunables(): Promise<boolean> {
  const env = mallocTunablesEnvironment(process.env, glibcVersion());
  if (!env) return Promise.resolve(false);
  // fd 3 is a pipe from this process: the child sees it close when this process dies (see watchParent).
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { env: { ...env, [PARENT_PIPE]: '3' }, stdio: ['inherit', 'inherit', 'inherit', 'pipe'] });
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const forward = (signal: NodeJS.Signals) => {
    child.kill(signal);
  };
  for (const s of signals) process.on(s, forward);
  return new Promise<boolean>(() => {
    child.on('error', (error) => {
      process.stderr.write(`bitsmith: could not relaunch with ${MALLOC_TUNABLES_OPT_OUT} (${error.message}); set ${MALLOC_TUNABLES_OPT_OUT}=0 to run without\n`);
      process.exit(1);
    });
    child.on('exit', (code, signal) => {
      for (const s of signals) process.off(s, forward);
      if (signal) process.kill(process.pid, signal);
      else process.exit(code ?? 1);
    });
  });
}

/** Environment variable naming the child's file descriptor of the pipe from its parent (set by the relaunch). */
const PARENT_PIPE = 'BITSMITH_PARENT_PIPE';

/**
 * In a process started by {@link relaunchWithMallocTunables}: ends this process with SIGKILL as soon as the parent
 * dies (its pipe closes), as the parent was. Does nothing in any other process.
 */
export async function watchParent(): Promise<void> {
  const fd = Number(process.env[PARENT_PIPE]);
  if (!Number.isInteger(fd) || fd < 3) return;
  delete process.env[PARENT_PIPE];
  const { Socket } = await import('node:net');
  const pipe = new Socket({ fd, readable: true, writable: false });
  pipe.on('data', () => undefined);
  pipe.on('error', () => process.kill(process.pid, 'SIGKILL'));
  pipe.on('close', () => process.kill(process.pid, 'SIGKILL'));
  // The watch must not keep the process alive once the command is done.
  pipe.unref();
}
