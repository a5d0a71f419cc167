import { basename } from 'node:path';
import type { Command } from 'commander';
import { defaultBackend, disposeDefaultBackend } from '@bitsmith/linalg';
import { imatrixFromSquareSums, writeImatrix, type Imatrix } from '@bitsmith/formats';
import { linearInputSquareSums, loadLlamaModel } from '@bitsmith/models';
import { calibrationSequences, readCalibrationText } from '../calibration-data.js';
import { OptionError, outputSinks, parseIntegerOption, type CommandOutput } from '../command-output.js';

/** Options of `bitsmith imatrix`, as commander parses them. */
export interface ImatrixOptions {
  model: string;
  calibration: string;
  out: string;
  samples: string;
  seqLen: string;
  calibrationSeed?: string;
  /** `gguf` (default unless `--out` ends in `.dat`) or `dat` (legacy). */
  format?: string;
}

/**
 * Computes llama.cpp's importance matrix of a model from calibration text (per linear layer, the sum of squared
 * inputs of each column and the token count: the diagonal of the layer's Hessian) and writes it in llama.cpp's GGUF
 * or legacy `.dat` layout, for `llama-quantize --imatrix FILE` or `bitsmith quantize --save gguf --imatrix FILE`.
 * Calibration sequences are cut as `bitsmith quantize` cuts them (`--samples`, `--seq-len`, `--calibration-seed`).
 *
 * @returns The imatrix written.
 * @example
 * ```ts
 * await imatrixCommand({ model: 'models/llama', calibration: 'calib.txt', out: 'llama.imatrix.gguf', samples: '64', seqLen: '512' });
 * ```
 */
export async function imatrixCommand(options: ImatrixOptions, output: CommandOutput = {}): Promise<Imatrix> {
  const { stdout, stderr } = outputSinks(output);
  const format = options.format ?? (options.out.endsWith('.dat') ? 'dat' : 'gguf');
  if (format !== 'gguf' && format !== 'dat') throw new OptionError('--format', `must be gguf or dat; got '${options.format}'`);
  const samples = parseIntegerOption('--samples', options.samples, 1);
  const sequenceLength = parseIntegerOption('--seq-len', options.seqLen, 2);
  const backend = await defaultBackend();
  const { graph, tokenizer, config } = await loadLlamaModel(options.model, { backend, onWarning: (w) => stderr(`warning: ${w.message}\n`) });
  const text = await readCalibrationText(options.calibration);
  const cut = calibrationSequences(tokenizer.encode(text, { bos: false }), {
    samples,
    sequenceLength: Math.min(sequenceLength, config.maxPositionEmbeddings),
    bosTokenId: tokenizer.bosTokenId ?? config.bosTokenId,
    file: options.calibration,
    ...(options.calibrationSeed !== undefined ? { seed: parseIntegerOption('--calibration-seed', options.calibrationSeed, 0) } : {}),
  });
  for (const w of cut.warnings) stderr(`warning: ${w}\n`);
  const started = performance.now();
  const sums = await linearInputSquareSums(graph, cut.sequences, {
    onBlock: (done, total) => {
      const seconds = (performance.now() - started) / 1000;
      stderr(`block ${done}/${total} (${seconds.toFixed(1)} s, about ${((seconds / done) * (total - done)).toFixed(0)} s left)\n`);
    },
  });
  const imatrix = imatrixFromSquareSums(sums, { datasets: [basename(options.calibration)], chunkCount: cut.sequences.length, chunkSize: cut.protocol.sequenceLength });
  await writeImatrix(options.out, imatrix, format);
  stdout(`wrote ${options.out} (${format}): ${imatrix.entries.size} weights, ${cut.protocol.tokens} tokens in ${cut.sequences.length} sequences\n`);
  return imatrix;
}

/**
 * Registers `bitsmith imatrix --model DIR --calibration FILE --out FILE [--samples 128] [--seq-len 512]
 * [--calibration-seed N] [--format gguf|dat]`.
 */
export function registerImatrix(program: Command, output: CommandOutput = {}): void {
  program
    .command('imatrix')
    .description("compute llama.cpp's importance matrix from calibration text (for llama-quantize --imatrix)")
    .requiredOption('--model <dir>', 'Hugging Face model folder (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--calibration <file>', 'UTF-8 calibration text')
    .requiredOption('--out <file>', 'imatrix file to write (.gguf, or .dat for the legacy layout)')
    .option('--samples <n>', 'calibration sequences', '128')
    .option('--seq-len <n>', 'tokens per calibration sequence, BOS included', '512')
    .option('--calibration-seed <n>', 'sample the calibration windows at random offsets with this seed (default: consecutive chunks)')
    .option('--format <format>', 'gguf (llama.cpp default) or dat (legacy); default from the --out extension')
    .action(async (options: ImatrixOptions) => {
      try {
        await imatrixCommand(options, output);
      } finally {
        await disposeDefaultBackend();
      }
    });
}
