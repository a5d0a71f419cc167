// Quantize a Hugging Face Llama model for transformers.js and load it there: the `transformers.js-q4` preset
// (AWQ + GPTQ, int4 in blocks of 32, MatMulNBits) writes onnx/model_q4.onnx (+ model_q4f16.onnx for WebGPU and
// model.onnx in float32), config.json and the tokenizer; transformers.js' own pipeline then generates from it with
// remote models off.
// Run after `npm run build`: node examples/transformers-js.mjs [model dir] [calibration text]
// (defaults: ../shared/models/tinystories-656k and ../shared/data/calib.txt; about 1 minute).
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { env, pipeline } from '@huggingface/transformers';

const model = process.argv[2] ?? '../shared/models/tinystories-656k';
const calibration = process.argv[3] ?? '../shared/data/calib.txt';
const work = await mkdtemp(join(tmpdir(), 'bitsmith-transformers-js-'));
const out = join(work, basename(model));

// 1. bitsmith quantize --model DIR --preset transformers.js-q4 --calibration FILE --out OUT (the installed command,
// found through @bitsmith/cli's package.json, so nothing is fetched from the registry).
const require = createRequire(import.meta.url);
const cliPackage = require.resolve('@bitsmith/cli/package.json');
const bitsmith = join(dirname(cliPackage), require(cliPackage).bin.bitsmith);
execFileSync(process.execPath, [bitsmith, 'quantize', '--model', model, '--preset', 'transformers.js-q4', '--calibration', calibration, '--out', out, '--samples', '32', '--seq-len', '256'], { stdio: 'inherit' });

// 2. transformers.js, local files only: the folder is a model id under env.localModelPath.
env.allowRemoteModels = false;
env.localModelPath = dirname(out);
for (const dtype of ['q4', 'q4f16']) {
  const generator = await pipeline('text-generation', basename(out), { dtype, device: 'cpu' });
  const [result] = await generator('Once upon a time', { max_new_tokens: 40, do_sample: false });
  console.log(`${dtype}: ${result.generated_text}`);
  await generator.dispose();
}
await rm(work, { recursive: true, force: true });
