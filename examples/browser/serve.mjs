#!/usr/bin/env node
// Serves examples/browser/dist over HTTP with the headers that make the page cross-origin isolated (COOP/COEP), so
// that WebAssembly shared memory, which the wasm backend's kernels import, is available.
//   node examples/browser/serve.mjs [port]     (default 8080; 0 picks a free port)
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.map': 'application/json', '.json': 'application/json', '.wasm': 'application/wasm', '.txt': 'text/plain; charset=utf-8', '.safetensors': 'application/octet-stream' };

/**
 * Starts the server on `port` (0: any free one) and resolves with it and its URL.
 * @param {number} port
 * @param {string} root
 */
export function serve(port = 8080, root = join(dirname(fileURLToPath(import.meta.url)), 'dist')) {
  const server = createServer(async (request, response) => {
    const path = normalize(join(root, decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname)));
    const file = path.endsWith('/') || path === root ? join(path, 'index.html') : path;
    const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-store' };
    try {
      if (!file.startsWith(root)) throw new Error('outside the root');
      const info = await stat(file);
      if (!info.isFile()) throw new Error('not a file');
      response.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': info.size });
      if (request.method === 'HEAD') response.end();
      else createReadStream(file).pipe(response);
    } catch {
      response.writeHead(404, headers).end('not found');
    }
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => {
    const actual = /** @type {import('node:net').AddressInfo} */ (server.address()).port;
    resolve({ server, port: actual, url: `http://127.0.0.1:${actual}/` });
  }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url } = await serve(Number(process.argv[2] ?? 8080));
  console.log(`serving examples/browser/dist at ${url}`);
}
