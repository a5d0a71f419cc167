import { readFile, stat } from 'node:fs/promises';
import writeFileAtomic from 'write-file-atomic';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { outputSinks, OptionError, type CommandOutput } from '../command-output.js';
import { compareReportViews, renderReportHtml, reportView } from '@bitsmith/recipe';

/**
 * Writes `report.html` into a quantization output folder: from `report.json` (the main job) or `quantization.json`
 * (`bitsmith quantize`). Returns the path written.
 *
 * @example
 * ```ts
 * await writeReport('out/gptq-w4g32');
 * ```
 */
export async function writeReport(directory: string, output: CommandOutput = {}, outFile?: string): Promise<string> {
  const { stdout } = outputSinks(output);
  const { source, data } = await readReportData(directory);
  const target = outFile ?? join(directory, 'report.html');
  await writeReportFile(target, renderReportHtml(data));
  stdout(`wrote ${target} (from ${source})\n`);
  return target;
}

/**
 * Writes one HTML page that compares several quantization output folders (`bitsmith report A B C`): a comparison
 * table of their headline numbers (bits/weight, perplexity, KL, top-1 when evaluated), per-layer errors side by side,
 * each run's bit plan. Returns the path written.
 *
 * @example
 * ```ts
 * await writeComparisonReport(['out/rtn-w4g32', 'out/gptq-w4g32'], 'out/compare.html');
 * ```
 */
export async function writeComparisonReport(directories: readonly string[], outFile: string, output: CommandOutput = {}): Promise<string> {
  const { stdout } = outputSinks(output);
  const views = [];
  for (const dir of directories) views.push(reportView((await readReportData(dir)).data));
  await writeReportFile(outFile, renderReportHtml(compareReportViews(views, directories.map((d) => basename(d.replace(/\/+$/, '')) || d))));
  stdout(`wrote ${outFile} (comparing ${directories.join(', ')})\n`);
  return outFile;
}

/**
 * Writes an HTML report atomically (a temporary file beside it, then a rename): a run killed while writing leaves the
 * earlier report intact, never a truncated one. File-system failures become an {@link OptionError} naming the file.
 */
async function writeReportFile(target: string, html: string): Promise<void> {
  try {
    await writeFileAtomic(target, html);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new OptionError('--out', `cannot write ${target} (${code ?? (cause as Error).message}); expected a writable file path. Nothing was written and any earlier file is unchanged`);
  }
}

async function readReportData(directory: string): Promise<{ source: string; data: unknown }> {
  let source: string | undefined;
  for (const name of ['report.json', 'quantization.json']) {
    const path = join(directory, name);
    if (await stat(path).then((s) => s.isFile(), () => false)) {
      source = path;
      break;
    }
  }
  if (!source) throw new OptionError('DIR', `${directory} holds neither report.json (bitsmith main) nor quantization.json (bitsmith quantize)`);
  let data: unknown;
  try {
    data = JSON.parse(await readFile(source, 'utf8'));
  } catch (cause) {
    throw new OptionError('DIR', `${source} is not valid JSON (${(cause as Error).message})`);
  }
  return { source, data };
}

/** Registers `bitsmith report DIR... [--out FILE]`: one folder's report, or a comparison of several. */
export function registerReport(program: Command, output: CommandOutput = {}): void {
  program
    .command('report')
    .description('write a self-contained HTML report (per-layer error, bits, bit plan, activation outliers, evaluation) from one quantization output folder, or compare several')
    .argument('<dir...>', 'folders with report.json (bitsmith main) or quantization.json (bitsmith quantize)')
    .option('--out <file>', 'HTML file to write (default: DIR/report.html; with several folders compare.html)')
    .action(async (dirs: string[], o: { out?: string }) => {
      if (dirs.length === 1) await writeReport(dirs[0]!, output, o.out);
      else await writeComparisonReport(dirs, o.out ?? 'compare.html', output);
    });
}
