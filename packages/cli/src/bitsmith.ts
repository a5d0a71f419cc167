#!/usr/bin/env node
import { BitsmithError } from '@bitsmith/core';
import { createRequire } from 'node:module';
import { Command } from 'commander';
import { registerEval } from './commands/eval.js';
import { registerGenerate } from './commands/generate.js';
import { registerMainJob } from './commands/main-job.js';
import { registerReport } from './commands/report.js';
import { registerImatrix } from './commands/imatrix.js';
import { registerInspect } from './commands/inspect.js';
import { registerQuantize } from './commands/quantize.js';
import { registerSurvey } from './commands/survey.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };
const program = new Command('bitsmith')
  .description('Post-training quantization for neural networks.')
  .version(version, '-v, --version', 'print the version of bitsmith')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Examples:
  bitsmith quantize --model DIR --preset w4a16 --calibration calib.txt --out out/w4a16
  bitsmith quantize --model DIR --recipe examples/recipes/rtn-w4g32.yaml --out out/rtn   (data-free: no calibration)
  bitsmith eval --model out/w4a16 --text heldout.txt --reference DIR
  bitsmith imatrix --model DIR --calibration calib.txt --out model.imatrix.gguf   (for llama-quantize --imatrix)
  bitsmith report out/a out/b
  bitsmith main    (the demo: GPTQ vs RTN on a sentence encoder, needs @bitsmith/demo-assets; 1-4 minutes)`,
  );
registerSurvey(program);
registerMainJob(program);
registerReport(program);
registerEval(program);
registerGenerate(program);
registerQuantize(program);
registerInspect(program);
registerImatrix(program);

try {
  // A bare `bitsmith` prints help (the demo is `bitsmith main`).
  if (process.argv.length <= 2) program.help();
  await program.parseAsync(process.argv);
} catch (error) {
  // Expected problems (bad files, bad options) print one clear line; anything else keeps its stack.
  if (BitsmithError.isInstance(error)) {
    process.stderr.write(`bitsmith: ${error.message}\n`);
  } else {
    process.stderr.write(`bitsmith: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  }
  process.exitCode = 1;
}
// Dawn (the webgpu backend in Node) keeps the process alive after its device is disposed: end it explicitly.
if (process.env.BITSMITH_BACKEND?.trim() === 'webgpu' || process.env.BITSMITH_WEBGPU?.trim() === '1') process.exit(process.exitCode ?? 0);
