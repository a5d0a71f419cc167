import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { defaultBackend, disposeDefaultBackend } from '@bitsmith/linalg';
import type { QuantizedTensor } from '@bitsmith/core';
import { GGUF_ARCHITECTURES, GGUF_MODEL_TYPES, saveCompressedTensors, saveGgufModel, saveGptq, saveOnnxModel, type GgufModelType } from '@bitsmith/formats';
import { llamaQuantizableModel, loadLlamaModel, writeSafetensors } from '@bitsmith/models';
import { loadRecipe, runRecipe, type Recipe, type RecipeProgressEvent, type RecipeReport, type StepRegistry } from '@bitsmith/recipe';
import { calibrationSequences, readCalibrationText } from '../calibration-data.js';
import { OptionError, outputSinks, parseIntegerOption, type CommandOutput } from '../command-output.js';
import { defaultRegistry } from '../default-registry.js';
import { stageOutputFolder, writeOutputFolder } from '../output-folder.js';

interface QuantizeOptions {
  model: string;
  recipe: string;
  calibration: string;
  out: string;
  samples: string;
  seqLen: string;
  calibrationSeed?: string;
  save?: string;
  ggufType?: string;
  /** Replace a non-empty `out` (atomically, once the run succeeded). Default false. */
  overwrite?: boolean;
}

/** Output formats of `bitsmith quantize --save`. */
export const SAVE_FORMATS = ['fake', 'compressed-tensors', 'gptq', 'gptq-v2', 'onnx', 'gguf'] as const;
/** One of {@link SAVE_FORMATS}. */
export type SaveFormat = (typeof SAVE_FORMATS)[number];

const COPIED_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

/** Formats a report as a plain-text table (one line per layer, then totals). */
export function formatReport(report: RecipeReport): string {
  const lines = [`recipe ${report.recipe}: ${report.averageBitsPerWeight.toFixed(3)} bits/weight on quantized layers, ${report.seconds.toFixed(1)} s`];
  const width = Math.max(...report.layers.map((l) => l.name.length));
  for (const l of report.layers) lines.push(`  ${l.name.padEnd(width)}  ${l.bitsPerWeight.toFixed(3).padStart(6)} bits  output error ${l.outputError.toFixed(4)}  ${l.steps.join('+') || '-'}`);
  for (const s of report.steps) {
    lines.push(`  step ${s.id} (${s.kind}): ${s.seconds.toFixed(2)} s${s.warnings.length ? `, ${s.warnings.length} warning(s)` : ''}`);
    for (const w of s.warnings) lines.push(`    warning${w.layer ? ` [${w.layer}]` : ''}: ${w.message}`);
  }
  return lines.join('\n');
}

function progressReporter(interactive: boolean, write: (text: string) => void) {
  if (interactive) {
    const bar = new cliProgress.SingleBar({ format: 'quantizing |{bar}| {value}/{total} blocks  {step}', hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic);
    let started = false;
    return {
      onProgress(e: RecipeProgressEvent) {
        if (e.type === 'block-start' && !started) {
          bar.start(e.totalBlocks, 0, { step: '' });
          started = true;
        } else if (e.type === 'step') bar.update({ step: `${e.step} ${e.done}/${e.total}${e.layer ? ` ${e.layer}` : ''}` });
        else if (e.type === 'block-done') bar.update(e.block + 1, { step: '' });
      },
      stop: () => started && bar.stop(),
    };
  }
  return {
    onProgress(e: RecipeProgressEvent) {
      if (e.type === 'model-step') write(`model step ${e.step} (${e.index + 1}/${e.total})\n`);
      else if (e.type === 'block-done') write(`block ${e.block + 1}/${e.totalBlocks} done in ${e.seconds.toFixed(2)} s\n`);
    },
    stop: () => undefined,
  };
}

/**
 * Runs `bitsmith quantize`: loads the model, cuts calibration sequences, runs the recipe, and writes a Hugging Face
 * folder with fake-quant float32 weights, the config (with a `quantization_config` that states how run-time input
 * transforms are applied), the tokenizer files, and `quantization.json` (recipe, protocol, report).
 *
 * Every option is checked before any work (save format, GGUF type, the output folder: not the model or inside it,
 * empty unless `overwrite`, writable). The output is written into a hidden staging folder beside `out` and renamed
 * onto `out` only when complete: a failed or killed run leaves `out` as it was.
 */
export async function quantizeCommand(options: QuantizeOptions, registry: StepRegistry = defaultRegistry, output: CommandOutput = {}): Promise<RecipeReport> {
  const { stdout, stderr } = outputSinks(output);
  const save = (options.save ?? 'fake') as SaveFormat;
  if (!SAVE_FORMATS.includes(save)) throw new OptionError('--save', `must be one of ${SAVE_FORMATS.join(', ')}; got '${options.save}'`);
  if (options.ggufType !== undefined && save !== 'gguf') throw new OptionError('--gguf-type', `applies to --save gguf only; got --save ${save}`);
  const ggufType = (options.ggufType ?? 'Q4_K') as GgufModelType;
  if (!GGUF_MODEL_TYPES.includes(ggufType)) throw new OptionError('--gguf-type', `must be one of ${GGUF_MODEL_TYPES.join(', ')}; got '${options.ggufType}'`);
  const samples = parseIntegerOption('--samples', options.samples, 1);
  const sequenceLength = parseIntegerOption('--seq-len', options.seqLen, 2);
  const recipe = await loadRecipe(options.recipe, registry);
  if (save !== 'fake' && !recipe.stages.some((s) => s.step.kind === 'quantize')) {
    throw new OptionError('--save', `${save} stores quantized layers, but recipe ${options.recipe} has no quantize step; use --save fake or add one`);
  }
  const staged = await stageOutputFolder(options.out, { inputs: [options.model, options.recipe, options.calibration], overwrite: options.overwrite ?? false });
  try {
    return await quantizeAndWrite({ ...options, recipeFile: options.recipe, save, ggufType, samples, sequenceLength, recipe }, { stdout, stderr }, Boolean(process.stderr.isTTY) && output.stderr === undefined, (write) =>
      writeOutputFolder(staged, write),
    );
  } finally {
    await staged.discard();
  }
}

/** Loads, calibrates, runs the recipe, and hands the writing of the output to `write` (a staged folder). */
async function quantizeAndWrite(
  options: Omit<QuantizeOptions, 'samples' | 'recipe'> & { recipeFile: string; save: SaveFormat; ggufType: GgufModelType; samples: number; sequenceLength: number; recipe: Recipe },
  sinks: Required<CommandOutput>,
  interactive: boolean,
  commit: (write: (dir: string) => Promise<void>) => Promise<void>,
): Promise<RecipeReport> {
  const { stdout, stderr } = sinks;
  const { save, samples, sequenceLength, recipe } = options;
  const backend = await defaultBackend();
  const loaded = await loadLlamaModel(options.model, { backend });
  for (const w of loaded.warnings) stderr(`warning: ${w.message}\n`);
  if (save === 'gguf' && !GGUF_ARCHITECTURES.includes(loaded.config.modelType)) {
    throw new OptionError('--save', `gguf writes ${GGUF_ARCHITECTURES.join(' and ')} models; ${options.model} is ${loaded.config.modelType}`);
  }
  if (sequenceLength > loaded.config.maxPositionEmbeddings) {
    throw new OptionError('--seq-len', `${sequenceLength} exceeds the model's max_position_embeddings (${loaded.config.maxPositionEmbeddings}); expected at most ${loaded.config.maxPositionEmbeddings}`);
  }
  const text = await readCalibrationText(options.calibration);
  const bosTokenId = loaded.tokenizer.bosTokenId ?? loaded.config.bosTokenId;
  const { sequences, protocol, warnings: calibrationWarnings } = calibrationSequences(loaded.tokenizer.encode(text, { bos: false }), {
    samples,
    sequenceLength,
    bosTokenId,
    file: options.calibration,
    ...(options.calibrationSeed !== undefined ? { seed: parseIntegerOption('--calibration-seed', options.calibrationSeed, 0) } : {}),
  });
  for (const w of calibrationWarnings) stderr(`warning: ${w}\n`);
  const model = llamaQuantizableModel(loaded.graph);
  const progress = progressReporter(interactive, stderr);
  let report: RecipeReport;
  const quantized = new Map<string, QuantizedTensor>();
  try {
    report = await runRecipe(model, recipe, sequences, { backend, onProgress: (e) => progress.onProgress(e), onQuantized: (name, q) => quantized.set(name, q) });
  } finally {
    progress.stop();
  }

  const onlineTransforms = loaded.graph
    .linearLayers()
    .filter((l) => l.inputTransform)
    .map((l) => ({ layer: l.name, ...l.inputTransform!.describe() }));
  if (save !== 'fake' && onlineTransforms.length > 0) {
    throw new OptionError('--save', `${save} cannot express run-time input transforms (${onlineTransforms.length} layers have one, e.g. ${onlineTransforms[0]!.layer}); use --save fake or a recipe whose rotations fuse into the weights`);
  }
  const config = JSON.parse(await readFile(join(options.model, 'config.json'), 'utf8')) as Record<string, unknown>;
  if (config.tie_word_embeddings && !loaded.graph.tiedEmbeddings) config.tie_word_embeddings = false;
  const saveWarnings: string[] = [];
  await commit(async (out) => {
    if (save === 'fake') {
      await writeSafetensors(join(out, 'model.safetensors'), loaded.graph.tensors(), { metadata: { format: 'pt', producer: 'bitsmith', content: 'fake-quant float32 weights' } });
      config.quantization_config = {
        quant_method: 'bitsmith',
        format: 'fake-quant',
        description: 'weights are dequantized float32 values on the quantization grid; any float runtime can load them',
        recipe: report.recipe,
        average_bits_per_weight: report.averageBitsPerWeight,
        online_transforms: onlineTransforms,
        ...(onlineTransforms.length > 0
          ? { online_transforms_note: 'each listed layer multiplies its input by the described transform before its weight (x -> x H); runtimes that ignore this produce wrong outputs; bitsmith eval applies them' }
          : {}),
      };
      await writeFile(join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    } else if (save === 'compressed-tensors' || save === 'gptq' || save === 'gptq-v2') {
      if (quantized.size === 0) throw new OptionError('--save', `${save} needs a recipe with a quantize step whose result is the final weight (no quantized layers were reported)`);
      const exported = { tensors: loaded.graph.tensors(), quantized, config };
      const saved =
        save === 'compressed-tensors'
          ? await saveCompressedTensors(out, exported)
          : await saveGptq(out, exported, { checkpointFormat: save === 'gptq' ? 'gptq' : 'gptq_v2' });
      for (const w of saved.warnings) saveWarnings.push(`${w.layer ? `[${w.layer}] ` : ''}${w.message}`);
    } else if (save === 'onnx') {
      await saveOnnxModel(out, loaded.graph, quantized);
      await writeFile(join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    } else {
      const result = await saveGgufModel(join(out, 'model.gguf'), loaded.graph, options.model, { type: options.ggufType });
      for (const w of result.warnings) saveWarnings.push(`${w.layer ? `[${w.layer}] ` : ''}${w.message}`);
    }
    for (const name of COPIED_FILES) if (existsSync(join(options.model, name))) await copyFile(join(options.model, name), join(out, name));
    const recipeText = await readFile(options.recipeFile, 'utf8');
    await writeFile(
      join(out, 'quantization.json'),
      `${JSON.stringify({ recipe: { name: report.recipe, file: options.recipeFile, text: recipeText }, model: options.model, save, protocol: { calibration: protocol }, warnings: { model: loaded.warnings.map((w) => w.message), calibration: calibrationWarnings }, onlineTransforms, report }, null, 2)}\n`,
    );
  });
  stdout(`${formatReport(report)}\n${saveWarnings.map((w) => `warning: ${w}\n`).join('')}wrote ${options.out} (${save})\n`);
  return report;
}

/**
 * Registers `bitsmith quantize --model DIR --recipe FILE --calibration FILE --out DIR [--samples 128] [--seq-len 128] [--calibration-seed N]`.
 */
export function registerQuantize(program: Command, registry: StepRegistry = defaultRegistry, output: CommandOutput = {}): void {
  program
    .command('quantize')
    .description('quantize a Hugging Face Llama-family model with a recipe file and write a fake-quant model folder')
    .requiredOption('--model <dir>', 'model folder (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--recipe <file>', `recipe file (YAML or JSON); steps: ${Object.keys(registry).join(', ')}`)
    .requiredOption('--calibration <file>', 'UTF-8 calibration text')
    .requiredOption('--out <dir>', 'output folder')
    .option('--samples <n>', 'calibration sequences', '128')
    .option('--seq-len <n>', 'tokens per calibration sequence, BOS included', '128')
    .option('--calibration-seed <n>', 'sample the calibration windows at random offsets with this seed (default: consecutive chunks from the start)')
    .option('--save <format>', `output: ${SAVE_FORMATS.join(', ')} (fake: float32 weights on the grid)`, 'fake')
    .option('--gguf-type <type>', `GGUF tensor type for --save gguf (${GGUF_MODEL_TYPES.join(', ')}; default Q4_K)`)
    .option('--overwrite', 'replace a non-empty --out folder (atomically, once the run has succeeded)')
    .action(async (options: QuantizeOptions) => {
      try {
        await quantizeCommand(options, registry, output);
      } finally {
        await disposeDefaultBackend();
      }
    });
}
