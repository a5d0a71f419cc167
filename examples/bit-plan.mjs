// Computes a global bit plan for tinystories-656k with @bitsmith/allocate's computeBitPlan (one sensitivity pass over
// the float model, Hessian-trace proxy of each candidate's RTN error, one allocation over all 14 layers) and writes it
// as editable JSON. The recipes alloc-plan-*.yaml apply it with `bit-allocation: { plan: examples/plans/... }`.
// Run after `npm run build`, from the repository root:
//   node examples/bit-plan.mjs [budget=3.5] [allocator=knapsack] [sensitivity=hessian-trace|output-error|kl] [count=stored|code]
// `count=stored` (default) makes the budget average stored bits per weight (int3 g32 with fp16 scales = 3.5);
// `count=code` makes it average bits of the codes alone (int3 = 3, int4 = 4), what papers call "3.5 average bits".
// `kl` measures each layer x candidate end to end (KL to the float model on the first 32 calibration sequences).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { computeBitPlan } from '@bitsmith/allocate';
import { defaultBackend } from '@bitsmith/linalg';
import { calibrationSequences, llamaQuantizableModel, loadLlamaModel } from '@bitsmith/models';

const here = dirname(fileURLToPath(import.meta.url));
const shared = process.env.BITSMITH_SHARED ?? resolve(here, '../../shared');
const modelDir = join(shared, 'models/tinystories-656k');
const budget = Number(process.argv[2] ?? 3.5);
const allocator = process.argv[3] ?? 'knapsack';
const sensitivity = process.argv[4] ?? 'hessian-trace';
const count = process.argv[5] ?? 'stored';
if (count !== 'stored' && count !== 'code') throw new Error(`count: expected stored or code, got '${count}'`);
const backend = await defaultBackend();
const loaded = await loadLlamaModel(modelDir, { backend });
const calibIds = loaded.tokenizer.encode(readFileSync(join(shared, 'data/calib.txt'), 'utf8'), { bos: false });
const { sequences } = calibrationSequences(calibIds, { samples: 128, sequenceLength: 128, bosTokenId: 1, file: 'calib.txt' });
const candidates = [2, 3, 4, 8].map((bits) => ({ format: `int${bits}`, granularity: { type: 'group', size: 32 } }));
const calibration = sensitivity === 'kl' ? sequences.slice(0, 32) : sequences;
const plan = await computeBitPlan(llamaQuantizableModel(loaded.graph), calibration, { candidates, budget: count === 'code' ? { codeBitsPerWeight: budget } : { bitsPerWeight: budget }, allocator, sensitivity, backend });
mkdirSync(join(here, 'plans'), { recursive: true });
const file = join(here, 'plans', `tinystories-${count === 'code' ? 'w' : ''}${budget}-${allocator}${sensitivity === 'hessian-trace' ? '' : `-${sensitivity}`}.json`);
writeFileSync(file, `${JSON.stringify(plan, null, 2)}\n`);
const counts = {};
for (const e of Object.values(plan.layers)) counts[e.label] = (counts[e.label] ?? 0) + 1;
console.log(`${file}: average ${plan.averageBitsPerWeight.toFixed(4)} b/w${plan.averageCodeBitsPerWeight !== undefined ? ` (${plan.averageCodeBitsPerWeight.toFixed(4)} code bits)` : ''}, total error ${Object.values(plan.layers).reduce((a, e) => a + e.error, 0).toExponential(4)}, ${JSON.stringify(counts)}`);
