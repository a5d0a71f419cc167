// A custom recipe written as code: AWQ smoothing, then GPTQ at 3 bits with act-order, keeping the attention
// value projections at 4 bits and leaving the first block's down_proj in float. Progress is printed, the run can be
// cancelled, and the quantized model is evaluated against the float one.
// Run after `npm run build`: node examples/custom-recipe.mjs
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultBackend } from '@bitsmith/linalg';
import { calibrationSequences, evaluateLanguageModel, llamaQuantizableModel, loadLlamaModel } from '@bitsmith/models';
import { runRecipe } from '@bitsmith/recipe';
import { awq } from '@bitsmith/smoothing';
import { gptq } from '@bitsmith/solvers';

const shared = process.env.BITSMITH_SHARED ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../shared');
const modelDir = join(shared, 'models/tinystories-656k');
const backend = await defaultBackend();
const { graph, tokenizer } = await loadLlamaModel(modelDir, { backend });
const reference = await loadLlamaModel(modelDir, { backend });

const calibration = tokenizer.encode(readFileSync(join(shared, 'data/calib.txt'), 'utf8'), { bos: false });
const { sequences } = calibrationSequences(calibration, { samples: 64, sequenceLength: 128, bosTokenId: 1, file: 'calib.txt' });

const group32 = { type: 'group', size: 32 };
const recipe = {
  name: 'awq-gptq-w3g32-mixed',
  ignore: ['re:model\\.layers\\.0\\.mlp\\.down_proj'],
  stages: [
    { step: awq({ format: 'int3', granularity: group32 }) },
    {
      step: gptq({ format: 'int3', granularity: group32, actOrder: true }),
      overrides: [{ targets: ['v_proj'], step: gptq({ format: 'int4', granularity: group32, actOrder: true }) }],
    },
  ],
};
const controller = new AbortController();
const report = await runRecipe(llamaQuantizableModel(graph), recipe, sequences, {
  backend,
  signal: controller.signal,
  onProgress: (e) => e.type === 'block-done' && console.error(`block ${e.block + 1}/${e.totalBlocks} in ${e.seconds.toFixed(1)} s`),
});
for (const layer of report.layers) console.log(layer.name.padEnd(34), `${layer.bitsPerWeight.toFixed(2)} bits`, `output error ${layer.outputError.toFixed(4)}`, layer.steps.join('+'));
const text = tokenizer.encode(readFileSync(join(shared, 'data/dev-heldout.txt'), 'utf8'));
const result = await evaluateLanguageModel(graph, text, { ctx: 128, reference: reference.graph });
console.log(`${report.averageBitsPerWeight.toFixed(3)} bits/weight: perplexity ${result.perplexity.toFixed(2)}, KL ${result.kl.toFixed(4)}, top-1 ${result.top1Agreement.toFixed(3)}`);
