#!/usr/bin/env node
// Drives the browser example in headless Chromium through the DevTools protocol: serves examples/browser/dist (build
// it first: node examples/browser/build.mjs), drops the tiny model's files on the page (a synthetic drop event with
// File objects, as a user's drop delivers them), runs GPTQ w4g32 with the round-to-nearest comparison in the page's
// Web Worker, waits for the report, and checks properties of the result:
//   - every perplexity, KL and layer error is finite, and the float model's perplexity is below every quantized one's;
//   - GPTQ's perplexity, KL to the float model and mean layer output error are below round-to-nearest's;
//   - the offered model.safetensors is a compressed-tensors pack-quantized checkpoint (packed int32 weights of every
//     linear layer, scales), and config.json carries its quantization_config.
// Then it screenshots the page (report included). Skips with a message where no Chromium is installed.
// With --fallback it then runs a recipe compressed-tensors cannot hold (GPTQ + LQER) and checks the fake-quant offer.
// With --webgpu Chromium gets WebGPU (SwiftShader's software adapter where there is no GPU) and the test checks that
// the run took the webgpu backend: the blocks' calibration and GPTQ's column loop then run on navigator.gpu.
//   node examples/browser/test-browser.mjs [--screenshot FILE] [--timeout SECONDS] [--fallback] [--webgpu]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findChromium, runWithWebSocket, withChromiumPage } from './chromium.mjs';
import { serve } from './serve.mjs';

runWithWebSocket(import.meta.url, main);

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function main() {
  const here = dirname(fileURLToPath(import.meta.url));
  const chromium = findChromium();
  if (!chromium) {
    console.log('browser example test: SKIPPED: no Chromium found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)');
    return;
  }
  const dist = join(here, 'dist');
  if (!existsSync(join(dist, 'worker.js'))) throw new Error('examples/browser/dist is not built: node examples/browser/build.mjs');
  if (!existsSync(join(dist, 'models/tinystories-656k/model.safetensors'))) {
    console.log('browser example test: SKIPPED: the build found no ../shared/models/tinystories-656k to serve');
    return;
  }
  const screenshotFile = option('--screenshot', join(here, 'out', 'browser-page.png'));
  const timeoutSeconds = Number(option('--timeout', '300'));
  const webgpu = process.argv.includes('--webgpu');
  const started = performance.now();
  const { server, url } = await serve(0, dist);
  try {
    await withChromiumPage(chromium, url, async ({ client, evaluate }) => {
      const waitFor = async (expression, what, seconds) => {
        const deadline = Date.now() + seconds * 1000;
        let printed = -100;
        for (;;) {
          // While the page is still loading there is no execution context yet: try again.
          const value = await evaluate(expression).catch((error) => (/execution context/.test(error.message) ? undefined : Promise.reject(error)));
          if (value) return value;
          const status = (await evaluate(`document.getElementById('status')?.textContent ?? ''`).catch(() => '')) ?? '';
          const percent = /^(\d+)%/.exec(status)?.[1];
          if (percent !== undefined && Number(percent) >= printed + 20) {
            // A sample of the page's progress line, about every 20%.
            console.log(`  page: ${status}`);
            printed = Number(percent);
          }
          if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}; the page says: ${status}`);
          await new Promise((r) => setTimeout(r, 500));
        }
      };
      await waitFor(`document.readyState === 'complete' && document.getElementById('recipe')?.options.length > 0`, 'the page to load', 30);
      const dropped = await evaluate(`(async () => {
        const names = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];
        const data = new DataTransfer();
        for (const name of names) {
          const response = await fetch('models/tinystories-656k/' + name);
          if (response.ok) data.items.add(new File([await response.blob()], name));
        }
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
        return data.files.length;
      })()`);
      await waitFor(`document.body.dataset.state === 'model-ready'`, 'the dropped model to be accepted', 30);
      console.log(`browser example test: dropped ${dropped} files of tinystories-656k on the page; running GPTQ w4g32 and RTN w4g32 in the worker`);
      // The gptq-w4g32 preset puts examples/recipes/gptq-w4g32.yaml in the recipe box and rtn-w4g32 as the baseline.
      const recipeFile = await evaluate(`(() => {
        const select = document.getElementById('recipe');
        select.value = 'gptq-w4g32';
        select.dispatchEvent(new Event('change'));
        document.getElementById('run').click();
        return document.getElementById('recipe-text').value + '|' + document.getElementById('baseline').value;
      })()`);
      if (!/gptq: \{ bits: 4, groupSize: 32 \}/.test(recipeFile) || !recipeFile.endsWith('|rtn-w4g32')) throw new Error(`the preset did not fill the recipe file and baseline: ${recipeFile}`);
      const state = await waitFor(`['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state`, 'the report', timeoutSeconds);
      if (state === 'error') throw new Error(`the page failed: ${await evaluate(`document.getElementById('status').textContent`)}`);
      const result = await evaluate('window.bitsmithResult');
      // The offered files, read back in the page from their download links and checked independently of the worker.
      const files = await evaluate(`(async () => {
        const links = [...document.querySelectorAll('#downloads a')];
        const bytesOf = async (name) => new Uint8Array(await (await fetch(links.find((a) => a.download === name).href)).arrayBuffer());
        const st = await bytesOf('model.safetensors');
        const headerLength = Number(new DataView(st.buffer).getBigUint64(0, true));
        const header = JSON.parse(new TextDecoder().decode(st.subarray(8, 8 + headerLength)));
        const config = JSON.parse(new TextDecoder().decode(await bytesOf('config.json')));
        const names = Object.keys(header).filter((k) => k !== '__metadata__');
        return {
          links: links.map((a) => a.download),
          packed: names.filter((n) => n.endsWith('.weight_packed')).map((n) => [n, header[n].dtype]),
          scales: names.filter((n) => n.endsWith('.weight_scale')).length,
          quantMethod: config.quantization_config?.quant_method,
          format: config.quantization_config?.format,
          numLayers: config.num_hidden_layers,
        };
      })()`);
      mkdirSync(dirname(screenshotFile), { recursive: true });
      const { data } = await client.send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true });
      writeFileSync(screenshotFile, Buffer.from(data, 'base64'));

      const [rtnRun, gptqRun] = result.runs;
      const failures = [];
      const check = (ok, what) => {
        if (!ok) failures.push(what);
      };
      check(result.runs.length === 2 && rtnRun.recipe === 'rtn-w4g32' && gptqRun.recipe === 'gptq-w4g32', `runs are RTN then GPTQ (got ${result.runs.map((r) => r.recipe)})`);
      check(Number.isFinite(result.floatPerplexity) && result.floatPerplexity > 1, `float perplexity ${result.floatPerplexity} is finite and above 1`);
      for (const r of result.runs) {
        for (const key of ['perplexity', 'kl', 'top1Agreement', 'meanOutputError', 'averageBitsPerWeight']) check(Number.isFinite(r[key]), `${r.recipe} ${key} ${r[key]} is finite`);
        check(r.perplexity > result.floatPerplexity, `${r.recipe} perplexity ${r.perplexity} is above the float model's ${result.floatPerplexity}`);
        check(r.averageBitsPerWeight > 4 && r.averageBitsPerWeight < 5, `${r.recipe} stores 4-5 bits per weight (int4 + a scale per 32): ${r.averageBitsPerWeight}`);
      }
      check(gptqRun.perplexity < rtnRun.perplexity, `GPTQ perplexity ${gptqRun.perplexity} < RTN ${rtnRun.perplexity}`);
      check(gptqRun.kl < rtnRun.kl, `GPTQ KL ${gptqRun.kl} < RTN ${rtnRun.kl}`);
      check(gptqRun.meanOutputError < rtnRun.meanOutputError, `GPTQ mean layer output error ${gptqRun.meanOutputError} < RTN ${rtnRun.meanOutputError}`);
      for (const name of ['model.safetensors', 'config.json', 'tokenizer.json']) check(files.links.includes(name), `${name} is offered for download (got ${files.links})`);
      check(result.format === 'compressed-tensors pack-quantized', `the model is saved as compressed-tensors (got ${result.format})`);
      check(files.quantMethod === 'compressed-tensors' && files.format === 'pack-quantized', `config.json's quantization_config is compressed-tensors pack-quantized (got ${files.quantMethod} ${files.format})`);
      check(files.packed.length === 7 * files.numLayers && files.packed.every(([, dtype]) => dtype === 'I32'), `every linear layer (7 per block x ${files.numLayers}) is packed as int32 (got ${files.packed.length})`);
      check(files.scales === files.packed.length, `each packed layer has its scales (${files.scales})`);
      if (process.argv.includes('--fallback')) {
        // A recipe whose result compressed-tensors cannot hold (GPTQ + an LQER low-rank branch): the page must offer
        // fake-quant float32 weights instead, say why, and still evaluate it.
        const lqer = readFileSync(join(here, '../recipes/gptq-w3g32-lqer-r8.yaml'), 'utf8');
        await evaluate(`(() => {
          document.getElementById('recipe-text').value = ${JSON.stringify(lqer)};
          document.getElementById('baseline').value = '';
          document.getElementById('run').click();
          return true;
        })()`);
        await waitFor(`document.body.dataset.state === 'running'`, 'the second run to start', 30).catch(() => undefined);
        const second = await waitFor(`['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state`, 'the fallback run', timeoutSeconds);
        if (second === 'error') throw new Error(`the fallback run failed: ${await evaluate(`document.getElementById('status').textContent`)}`);
        const fallback = await evaluate('window.bitsmithResult');
        const config = await evaluate(`(async () => JSON.parse(new TextDecoder().decode(new Uint8Array(await (await fetch([...document.querySelectorAll('#downloads a')].find((a) => a.download === 'config.json').href)).arrayBuffer()))).quantization_config)()`);
        check(fallback.runs.length === 1 && fallback.runs[0].recipe === 'gptq-w3g32-lqer-r8', `the fallback run is gptq-w3g32-lqer-r8 alone (got ${fallback.runs.map((r) => r.recipe)})`);
        check(/^fake-quant float32 \(stored forms .*low-rank/.test(fallback.format), `a low-rank result is offered as fake-quant, saying why (got ${fallback.format})`);
        check(config?.format === 'fake-quant', `its config.json says fake-quant (got ${JSON.stringify(config)})`);
        check(Number.isFinite(fallback.runs[0].perplexity) && fallback.runs[0].perplexity > result.floatPerplexity, `its perplexity ${fallback.runs[0].perplexity} is finite and above the float model's`);
        console.log(`browser example test (fallback): gptq-w3g32-lqer-r8 perplexity ${fallback.runs[0].perplexity.toFixed(3)} at ${fallback.runs[0].averageBitsPerWeight.toFixed(3)} bits/weight; saved as ${fallback.format}`);
      }
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `browser example test: float perplexity ${result.floatPerplexity.toFixed(3)}; RTN w4g32 ${rtnRun.perplexity.toFixed(3)} (KL ${rtnRun.kl.toFixed(4)}, layer error ${rtnRun.meanOutputError.toFixed(4)}); ` +
          `GPTQ w4g32 ${gptqRun.perplexity.toFixed(3)} (KL ${gptqRun.kl.toFixed(4)}, layer error ${gptqRun.meanOutputError.toFixed(4)}); ${result.backend} backend; ` +
          `job ${result.seconds.toFixed(1)} s in the page, ${seconds.toFixed(1)} s in all; files ${files.links.join(', ')}; screenshot ${screenshotFile}`,
      );
      if (webgpu) check(result.backend === 'webgpu', `the run took the webgpu backend (got ${result.backend})`);
      if (failures.length > 0) {
        for (const f of failures) console.error(`browser example test: FAILED: ${f}`);
        process.exitCode = 1;
      } else {
        console.log('browser example test: ok');
      }
    }, { webgpu });
  } finally {
    server.closeAllConnections?.();
    server.close();
  }
}
