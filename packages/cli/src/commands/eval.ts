import type { Command } from 'commander';
import { defaultBackend, disposeDefaultBackend } from '@bitsmith/linalg';
import { InvalidArgumentError } from '@bitsmith/core';
import { evaluateLanguageModel, ModelFileError, perplexityRatioInterval } from '@bitsmith/models';
import { loadModelFolder } from '../activation-export.js';
import { readCalibrationText } from '../calibration-data.js';
import { installOnlineTransforms } from '../online-transforms.js';
import { outputSinks, parseIntegerOption, type CommandOutput } from '../command-output.js';

/** Options of `bitsmith eval`, as commander parses them. */
interface EvalOptions {
  model: string;
  text: string;
  ctx: string;
  reference?: string;
  against?: string;
  batchSize: string;
  json?: boolean;
}

/** Significant digits for the summary line. */
function fmt(x: number, digits = 4): string {
  return Number(x.toPrecision(digits)).toString();
}

/**
 * The one-line human summary that `bitsmith eval` prints before its JSON, for example
 * `perplexity 44.49 on 5222 tokens (42 windows of 128); vs reference: KL 0.0503, top-1 agreement 91.2%`.
 */
export function evalSummary(result: {
  perplexity: number;
  tokens: number;
  windows: number;
  ctx: number;
  kl?: number;
  top1Agreement?: number;
  against?: { model: string; perplexity: number; perplexityRatio: number; interval: readonly number[] };
}): string {
  let line = `perplexity ${fmt(result.perplexity)} on ${result.tokens} tokens (${result.windows} windows of ${result.ctx})`;
  if (result.kl !== undefined && result.top1Agreement !== undefined) line += `; vs reference: KL ${fmt(result.kl)}, top-1 agreement ${(100 * result.top1Agreement).toFixed(1)}%`;
  if (result.against) {
    const [low, high] = result.against.interval as [number, number];
    const verdict = low <= 1 && high >= 1 ? 'within noise' : result.against.perplexityRatio > 1 ? `${result.against.model} is worse` : `${result.against.model} is better`;
    line += `; against ${result.against.model}: perplexity ${fmt(result.against.perplexity)}, ratio ${fmt(result.against.perplexityRatio)} [${fmt(low)}, ${fmt(high)}] (${verdict})`;
  }
  return line;
}

/**
 * Registers `bitsmith eval --model DIR --text FILE [--ctx 128] [--reference DIR] [--against DIR] [--batch-size 8] [--json]`:
 * evaluates a Hugging Face Llama-family model on a text file and prints a one-line summary ({@link evalSummary}), then
 * one JSON object (with `--json`, the JSON alone): `tokens`, `windows`, `ctx`,
 * `nll`, `perplexity`, with `--reference` also `kl` and `top1Agreement`, and the `protocol` in words. With
 * `--against` a second model is evaluated on the same tokens and `against` holds its perplexity (and KL) and the
 * ratio of its perplexity to the first model's with a paired bootstrap 95% interval over the evaluation windows
 * (`perplexityRatioInterval`): an interval containing 1 means the text cannot tell the two apart.
 *
 * @param output Where to write (default: the process's stdout/stderr).
 * @example
 * ```ts
 * const program = new Command('bitsmith');
 * registerEval(program);
 * await program.parseAsync(['node', 'bitsmith', 'eval', '--model', 'models/tiny', '--text', 'dev.txt']);
 * ```
 */
export function registerEval(program: Command, output: CommandOutput = {}): void {
  program
    .command('eval')
    .description('perplexity of a model on a text file (and KL divergence / top-1 agreement against a reference model)')
    .requiredOption('--model <dir>', 'Hugging Face model folder (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--text <file>', 'UTF-8 text file to evaluate on')
    .option('--ctx <tokens>', 'window length in tokens, BOS included', '128')
    .option('--reference <dir>', 'reference model folder (e.g. the unquantized original) for kl and top1Agreement')
    .option('--against <dir>', 'a second model folder: its perplexity ratio to --model, with a paired 95% interval over windows')
    .option('--batch-size <windows>', 'windows per forward pass', '8')
    .option('--json', 'print only the JSON object (no summary line)')
    .action(async (options: EvalOptions) => {
      const { stdout, stderr } = outputSinks(output);
      const onWarning = (w: { message: string }) => stderr(`warning: ${w.message}\n`);
      const ctx = parseIntegerOption('--ctx', options.ctx, 2);
      const batchSize = parseIntegerOption('--batch-size', options.batchSize, 1);
      try {
        const backend = await defaultBackend();
        const model = await loadModelFolder(options.model, { backend, onWarning });
        if (ctx > model.config.maxPositionEmbeddings) {
          throw new InvalidArgumentError('--ctx', `${ctx} tokens exceed the model's max_position_embeddings (${model.config.maxPositionEmbeddings}); expected at most ${model.config.maxPositionEmbeddings}`);
        }
        await installOnlineTransforms(model.graph, options.model);
        const reference = options.reference ? (await loadModelFolder(options.reference, { backend, onWarning })).graph : undefined;
        if (reference && options.reference) await installOnlineTransforms(reference, options.reference);
        const text = await readCalibrationText(options.text);
        const ids = model.tokenizer.encode(text);
        if (ids.length === 0) throw new ModelFileError(options.text, 'the text file is empty (no tokens to evaluate)');
        const bosTokenId = model.tokenizer.bosTokenId ?? model.config.bosTokenId;
        const started = performance.now();
        const result = await evaluateLanguageModel(model.graph, ids, { ctx, batchSize, reference, ...(bosTokenId === undefined ? {} : { bosTokenId }) });
        let against: Record<string, unknown> | undefined;
        if (options.against) {
          const other = (await loadModelFolder(options.against, { backend, onWarning })).graph;
          await installOnlineTransforms(other, options.against);
          if (other.lmHead.outFeatures !== model.graph.lmHead.outFeatures) {
            throw new InvalidArgumentError('--against', `${options.against} has a vocabulary of ${other.lmHead.outFeatures}; --model has ${model.graph.lmHead.outFeatures} (compare models that share a tokenizer)`);
          }
          const b = await evaluateLanguageModel(other, ids, { ctx, batchSize, reference, ...(bosTokenId === undefined ? {} : { bosTokenId }) });
          const interval = perplexityRatioInterval(result, b);
          against = {
            model: options.against,
            nll: b.nll,
            perplexity: b.perplexity,
            ...(b.kl === undefined ? {} : { kl: b.kl, top1Agreement: b.top1Agreement }),
            perplexityRatio: interval.ratio,
            interval: [interval.low, interval.high],
            confidence: interval.confidence,
            standardErrorOfNllDifference: interval.standardError,
            comparison: 'perplexity(against) / perplexity(model); percentile bootstrap over evaluation windows, the same windows for both',
          };
        }
        const seconds = (performance.now() - started) / 1000;
        if (!options.json) {
          const summaryAgainst = against as { model: string; perplexity: number; perplexityRatio: number; interval: number[] } | undefined;
          stdout(`${evalSummary({ ...result, ...(summaryAgainst ? { against: summaryAgainst } : {}) })}\n`);
        }
        stdout(
          `${JSON.stringify(
            {
              model: options.model,
              text: options.text,
              ...(options.reference ? { reference: options.reference } : {}),
              tokens: result.tokens,
              windows: result.windows,
              ctx: result.ctx,
              nll: result.nll,
              perplexity: result.perplexity,
              ...(result.kl === undefined ? {} : { kl: result.kl, top1Agreement: result.top1Agreement }),
              protocol: result.protocol,
              ...(against ? { against } : {}),
              backend: backend.name,
              seconds: Math.round(seconds * 1000) / 1000,
            },
            null,
            2,
          )}\n`,
        );
      } finally {
        await disposeDefaultBackend();
      }
    });
}
