// Headless Chromium for the browser checks, driven through the DevTools protocol with Node's WebSocket client (no
// puppeteer, nothing downloaded). Used by test-browser.mjs (the example page) and test-tfjs-encoder.mjs.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Debian's `chromium` (or another Chromium/Chrome on PATH, or `CHROMIUM=/path`); undefined when none is installed. */
export function findChromium() {
  const isFile = (path) => {
    try {
      return statSync(path).isFile();
    } catch {
      return false;
    }
  };
  if (process.env.CHROMIUM && isFile(process.env.CHROMIUM)) return process.env.CHROMIUM;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    for (const name of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) if (isFile(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** A minimal DevTools-protocol client over one WebSocket: send(method, params) resolves with the result. */
export async function connect(url) {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
  });
  let next = 0;
  const pending = new Map();
  socket.addEventListener('close', () => {
    for (const waiter of pending.values()) waiter.reject(new Error(`${waiter.method}: the DevTools connection closed`));
    pending.clear();
  });
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data));
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(`${waiter.method}: ${message.error.message}`));
    else waiter.resolve(message.result);
  });
  return {
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const id = ++next;
        pending.set(id, { resolve, reject, method });
        socket.send(JSON.stringify({ id, method, params }));
      }),
    close: () => socket.close(),
  };
}

/**
 * Starts headless `chromium` on `url`, connects to the page and calls `use({ client, evaluate })`, where
 * `evaluate(expression)` runs an expression in the page (awaiting a promise) and returns its value; closes the
 * browser afterwards, whatever happens. `{ webgpu: true }` starts it with WebGPU enabled.
 */
export async function withChromiumPage(chromium, url, use, { webgpu = false } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'bitsmith-chromium-'));
  // webgpu: navigator.gpu on the machine's GPU, or SwiftShader's software adapter where there is none.
  const gpuFlags = webgpu ? ['--headless=new', '--disable-gpu-sandbox', '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--enable-features=Vulkan'] : ['--headless', '--disable-gpu'];
  const browser = spawn(
    chromium,
    [...gpuFlags, '--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--remote-debugging-port=0', `--user-data-dir=${profile}`, '--window-size=1200,2000', url],
    { stdio: 'ignore' },
  );
  let client;
  try {
    // Chromium writes the port it picked into DevToolsActivePort.
    let port;
    for (let i = 0; i < 300 && !port; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        port = readFileSync(join(profile, 'DevToolsActivePort'), 'utf8').split('\n')[0];
      } catch {
        /* not yet */
      }
    }
    if (!port) throw new Error('Chromium did not open its DevTools port within 30 s');
    let target;
    for (let i = 0; i < 100 && !target; i++) {
      const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
      target = targets.find((t) => t.type === 'page' && t.url.startsWith(url));
      if (!target) await new Promise((r) => setTimeout(r, 100));
    }
    if (!target) throw new Error(`no page target for ${url}`);
    client = await connect(target.webSocketDebuggerUrl);
    const evaluate = async (expression) => {
      const { result, exceptionDetails } = await client.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true });
      if (exceptionDetails) throw new Error(`in the page: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
      return result.value;
    };
    return await use({ client, evaluate });
  } finally {
    // Browser.close may close the connection before it answers: wait at most 2 s for it, then kill the process.
    await Promise.race([client?.send('Browser.close').catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
    client?.close();
    browser.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    rmSync(profile, { recursive: true, force: true });
  }
}

/**
 * Runs `main` in a Node with the WebSocket client (Node 20 has it behind a flag: the script is then run again with
 * it), and exits when it is done: nothing is left to wait for (Chromium killed, servers closed), so a lingering socket
 * must not keep Node up.
 */
export function runWithWebSocket(scriptUrl, main) {
  if (typeof WebSocket === 'undefined') {
    const child = spawn(process.execPath, ['--experimental-websocket', '--no-warnings', fileURLToPath(scriptUrl), ...process.argv.slice(2)], { stdio: 'inherit' });
    child.on('exit', (code) => process.exit(code ?? 1));
    return;
  }
  main().then(
    () => process.exit(process.exitCode ?? 0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
