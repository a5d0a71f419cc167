// Digests of computeBitPlan on tinystories-656k, to show that a refactoring of the calibration driver changes no bit
// of a bit plan: for each sensitivity (hessian-trace, output-error), a SHA-256 of the plan's JSON (every layer's
// label, bits and error, the totals). Run it before and after a change and diff.
// Run after `npm run build`, from the repository root: node examples/bit-plan-digests.mjs
// Environment: SAMPLES (calibration sequences, default 32), SEQ_LEN (default 128).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { computeBitPlan } from '@bitsmith/allocate';
import { defaultBackend } from '@bitsmith/linalg';
import { calibrationSequences, llamaQuantizableModel, loadLlamaModel } from '@bitsmith/models';

const here = dirname(fileURLToPath(import.meta.url));
const shared = process.env.BITSMITH_SHARED ?? resolve(here, '../../shared');
const modelDir = join(shared, 'models/tinystories-656k');
const samples = Number(process.env.SAMPLES ?? 32);
const sequenceLength = Number(process.env.SEQ_LEN ?? 128);
const backend = await defaultBackend();
const candidates = [2, 3, 4, 8].map((bits) => ({ format: `int${bits}`, granularity: { type: 'group', size: 32 } }));
for (const sensitivity of ['hessian-trace', 'output-error']) {
  const loaded = await loadLlamaModel(modelDir, { backend });
  const ids = loaded.tokenizer.encode(readFileSync(join(shared, 'data/calib.txt'), 'utf8'), { bos: false });
  const { sequences } = calibrationSequences(ids, { samples, sequenceLength, bosTokenId: 1, file: 'calib.txt' });
  const plan = await computeBitPlan(llamaQuantizableModel(loaded.graph), sequences, { candidates, budget: { bitsPerWeight: 3.5 }, sensitivity, backend, maxTokens: 1024 });
  const digest = createHash('sha256').update(JSON.stringify(plan)).digest('hex');
  const total = Object.values(plan.layers).reduce((a, e) => a + e.error, 0);
  console.log(`${sensitivity.padEnd(14)} ${digest} average ${plan.averageBitsPerWeight.toFixed(4)} b/w, total error ${total.toExponential(6)}`);
}
