// Write your own quantizer step and use it in a recipe next to the built-in ones.
// The step below is "sign-magnitude clipping": it clips each weight row at k standard deviations (a transform),
// declares no statistics, and returns new layer states without touching its input. GPTQ then quantizes the result.
// Run after `npm run build`, from the repository root: node examples/custom-step.mjs
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AbortError, matrix, rtn } from '@bitsmith/core';
import { llamaQuantizableModel, loadLlamaGraph } from '@bitsmith/models';
import { runRecipe } from '@bitsmith/recipe';
import { gptq } from '@bitsmith/solvers';

/** A quantizer factory: options in, a `Quantizer` out (see docs/concepts/quantizer-contract.md). */
function rowClip({ deviations = 4 } = {}) {
  return {
    specificationVersion: 'v2', // the step contract it implements; runRecipe refuses other versions
    id: 'row-clip',
    kind: 'transform',
    requires: [],
    async run(context) {
      const layers = context.layers.map((layer) => {
        if (context.signal?.aborted) throw new AbortError();
        const [rows, columns] = layer.weight.shape;
        const out = new Float32Array(layer.weight.data);
        for (let r = 0; r < rows; r++) {
          let sum = 0;
          for (let c = 0; c < columns; c++) sum += out[r * columns + c] ** 2;
          const limit = deviations * Math.sqrt(sum / columns);
          for (let c = 0; c < columns; c++) out[r * columns + c] = Math.max(-limit, Math.min(limit, out[r * columns + c]));
        }
        return { ...layer, weight: matrix(out, rows, columns) };
      });
      return { layers, warnings: [] };
    },
  };
}

const here = dirname(fileURLToPath(import.meta.url));
const modelDir = join(process.env.BITSMITH_SHARED ?? resolve(here, '../../shared'), 'models/tinystories-656k');
if (!existsSync(join(modelDir, 'model.safetensors'))) {
  console.log(`custom-step: ${modelDir} not found (set BITSMITH_SHARED); the step itself is above`);
  process.exit(0);
}
// Synthetic calibration: 16 seeded token sequences of 64 tokens (use real text for real runs: docs/calibration.md).
let seed = 1;
const token = () => 3 + ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % 2000);
const sequences = Array.from({ length: 16 }, () => [1, ...Array.from({ length: 63 }, token)]);
for (const [name, recipe] of [
  ['rtn int3 g32', [rtn({ format: 'int3', granularity: { type: 'group', size: 32 } })]],
  ['row-clip + rtn int3 g32', [rowClip({ deviations: 3.5 }), rtn({ format: 'int3', granularity: { type: 'group', size: 32 } })]],
  ['row-clip + gptq int3 g32', [rowClip({ deviations: 3.5 }), gptq({ format: 'int3', granularity: { type: 'group', size: 32 } })]],
]) {
  const model = llamaQuantizableModel(await loadLlamaGraph(modelDir));
  const report = await runRecipe(model, recipe, sequences);
  const mean = report.layers.reduce((a, l) => a + l.outputError, 0) / report.layers.length;
  console.log(`${name.padEnd(26)} ${report.averageBitsPerWeight.toFixed(3)} bits/weight, mean layer output error ${mean.toFixed(4)}, steps ${report.steps.map((s) => s.id).join(' -> ')}`);
}
