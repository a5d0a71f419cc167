// The learned rotation's calibration-split loss on llama-docs-29m: draws SAMPLES windows of SEQ_LEN tokens at seeded
// random offsets of ../shared/data/docs-calib.txt (as examples/activation-seeds.mjs does), runs learnRotation for
// W4A4 (int4 g128 round-to-nearest weights, int4 per-token inputs) from the seeded Hadamard, and prints the held-out
// calibration loss at the start and at every evaluation, with the time. The evaluation text is not read: this is how
// the learning rate was chosen (docs/rotation.md).
// Run after `npm run build`: OPTS='{"iterations":30,"validateEvery":10,"learningRate":60}' node examples/learned-rotation-loss.mjs
// Environment: OPTS (learnRotation options as JSON), CALIBRATION_SEED (default 0), SAMPLES (16), SEQ_LEN (512).
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFormat } from '@bitsmith/core';
import { defaultBackend } from '@bitsmith/linalg';
import { calibrationSequences, llamaQuantizableModel, loadLlamaModel } from '@bitsmith/models';
import { learnRotation } from '@bitsmith/rotation';

const here = dirname(fileURLToPath(import.meta.url));
const shared = process.env.BITSMITH_SHARED ?? resolve(here, '../../shared');
const backend = await defaultBackend();
const { graph, tokenizer } = await loadLlamaModel(join(shared, 'models/llama-docs-29m'), { backend });
const calibIds = tokenizer.encode(readFileSync(join(shared, 'data/docs-calib.txt'), 'utf8'), { bos: false });
const { sequences } = calibrationSequences(calibIds, {
  samples: Number(process.env.SAMPLES ?? 16),
  sequenceLength: Number(process.env.SEQ_LEN ?? 512),
  bosTokenId: 1,
  file: 'docs-calib.txt',
  seed: Number(process.env.CALIBRATION_SEED ?? 0),
});
const options = JSON.parse(process.env.OPTS ?? '{}');
const t0 = performance.now();
const seconds = () => ((performance.now() - t0) / 1000).toFixed(1);
const result = await learnRotation(llamaQuantizableModel(graph), sequences, {
  activations: { format: parseFormat('int4'), granularity: { type: 'token' }, dynamic: true },
  backend,
  ...options,
  progress: (done, total, message) => {
    if (message.startsWith('held-out') || done % 10 === 0) console.log(`${done}/${total} ${message} (${seconds()} s)`);
  },
});
const v = result.validationLoss;
console.log(JSON.stringify({ options, initial: v?.initial, kept: v?.final, change: v ? v.final / v.initial - 1 : undefined, keptIteration: result.description.training.keptIteration, seconds: Number(seconds()) }));
