import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { defaultBackend, disposeDefaultBackend } from '@bitsmith/linalg';
import type { StoredForm, StoredKind } from '@bitsmith/core';
import { exportableGrids, refuseDeclaredKinds, saveCompressedTensors, saveGgufModel, saveGptq, saveOnnxModel, type GgufModelType } from '@bitsmith/formats';
import { llamaQuantizableModel, loadLlamaModel, readTextFile, writeSafetensors, type LlamaModel } from '@bitsmith/models';
import { loadRecipe, runRecipe, type Recipe, type RecipeProgressEvent, type RecipeReport, type StepRegistry } from '@bitsmith/recipe';
import { calibrationSequences } from '../calibration-data.js';
import { OptionError, outputSinks, parseIntegerOption, type CommandOutput } from '../command-output.js';
import { defaultRegistry } from '../default-registry.js';

/** Options of `bitsmith quantize` as commander parses them. */
export interface QuantizeOptions {
  model: string;
  recipe: string;
  calibration: string;
  out: string;
  samples: string;
  seqLen: string;
  calibrationSeed?: string;
  save?: string;
  ggufType?: string;
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

/** The result of {@link runQuantizeJob}: the quantized model graph, the stored form of every quantized layer and the report. */
export interface QuantizeJob {
  readonly loaded: LlamaModel;
  readonly report: RecipeReport;
  /** Final stored form of each quantized layer, by layer name (`decodeStored` of each is the layer's weight). */
  readonly stored: ReadonlyMap<string, StoredForm>;
  readonly protocol: ReturnType<typeof calibrationSequences>['protocol'];
}

/** Every step of a recipe (overrides included) with the stored kinds it declares (`Quantizer.stores`). */
export function declaredStoredKinds(recipe: Recipe): { step: string; stores?: readonly StoredKind[] }[] {
  return recipe.stages.flatMap((stage) => [stage.step, ...(stage.overrides ?? []).map((o) => o.step)]).map((step) => ({ step: step.id, ...(step.stores ? { stores: step.stores } : {}) }));
}

/**
 * Loads the model, cuts calibration sequences and runs the recipe (the first half of `bitsmith quantize`).
 * With `save`, a recipe whose steps declare a stored kind that exporter cannot write is refused before any work.
 */
export async function runQuantizeJob(options: QuantizeOptions, registry: StepRegistry = defaultRegistry, output: CommandOutput = {}): Promise<QuantizeJob> {
  const { stderr } = outputSinks(output);
  const save = (options.save ?? 'fake') as SaveFormat;
  if (!SAVE_FORMATS.includes(save)) throw new OptionError('--save', `must be one of ${SAVE_FORMATS.join(', ')}; got '${options.save}'`);
  const samples = parseIntegerOption('--samples', options.samples, 1);
  const sequenceLength = parseIntegerOption('--seq-len', options.seqLen, 2);
  const recipe = await loadRecipe(options.recipe, registry);
  refuseDeclaredKinds(save, declaredStoredKinds(recipe));
  const backend = await defaultBackend();
  const loaded = await loadLlamaModel(options.model, { backend });
  const text = await readTextFile(options.calibration);
  const bosTokenId = loaded.tokenizer.bosTokenId ?? loaded.config.bosTokenId;
  const { sequences, protocol } = calibrationSequences(loaded.tokenizer.encode(text, { bos: false }), {
    samples,
    sequenceLength: Math.min(sequenceLength, loaded.config.maxPositionEmbeddings),
    bosTokenId,
    file: options.calibration,
    ...(options.calibrationSeed !== undefined ? { seed: parseIntegerOption('--calibration-seed', options.calibrationSeed, 0) } : {}),
  });
  const model = llamaQuantizableModel(loaded.graph);
  const progress = progressReporter(Boolean(process.stderr.isTTY) && output.stderr === undefined, stderr);
  const stored = new Map<string, StoredForm>();
  try {
    const report = await runRecipe(model, recipe, sequences, { backend, onProgress: (e) => progress.onProgress(e), onStored: (name, s) => stored.set(name, s) });
    return { loaded, report, stored, protocol };
  } finally {
    progress.stop();
  }
}

/**
 * Writes a quantized model in one `--save` format (the second half of `bitsmith quantize`). Every layer's stored
 * form is checked against the exporter (`exportableGrids`) before anything is written: a kind the format cannot
 * hold (a codebook for ONNX, a low-rank branch for GPTQ) is refused with `StoredFormRefusedError`.
 */
export async function writeQuantizedModel(job: QuantizeJob, options: QuantizeOptions, output: CommandOutput = {}): Promise<void> {
  const { stdout } = outputSinks(output);
  const save = (options.save ?? 'fake') as SaveFormat;
  const { loaded, report, stored, protocol } = job;
  const onlineTransforms = loaded.graph
    .linearLayers()
    .filter((l) => l.inputTransform)
    .map((l) => ({ layer: l.name, ...l.inputTransform!.describe() }));
  if (save !== 'fake' && onlineTransforms.length > 0) {
    throw new OptionError('--save', `${save} cannot express run-time input transforms (${onlineTransforms.length} layers have one, e.g. ${onlineTransforms[0]!.layer}); use --save fake or a recipe whose rotations fuse into the weights`);
  }
  const grids = exportableGrids(save, stored);
  const config = JSON.parse(await readFile(join(options.model, 'config.json'), 'utf8')) as Record<string, unknown>;
  if (config.tie_word_embeddings && !loaded.graph.tiedEmbeddings) config.tie_word_embeddings = false;
  const saveWarnings: string[] = [];
  if ((save === 'compressed-tensors' || save === 'gptq' || save === 'gptq-v2') && grids.size === 0) {
    throw new OptionError('--save', `${save} needs a recipe with a quantize step whose result is the final weight (no quantized layers were reported)`);
  }
  await mkdir(options.out, { recursive: true });
  if (save === 'fake') {
    await writeSafetensors(join(options.out, 'model.safetensors'), loaded.graph.tensors(), { metadata: { format: 'pt', producer: 'bitsmith', content: 'fake-quant float32 weights' } });
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
    await writeFile(join(options.out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  } else if (save === 'compressed-tensors' || save === 'gptq' || save === 'gptq-v2') {
    const exported = { tensors: loaded.graph.tensors(), quantized: grids, config };
    const saved =
      save === 'compressed-tensors'
        ? await saveCompressedTensors(options.out, exported)
        : await saveGptq(options.out, exported, { checkpointFormat: save === 'gptq' ? 'gptq' : 'gptq_v2' });
    for (const w of saved.warnings) saveWarnings.push(`${w.layer ? `[${w.layer}] ` : ''}${w.message}`);
  } else if (save === 'onnx') {
    await saveOnnxModel(options.out, loaded.graph, grids);
    await writeFile(join(options.out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  } else {
    const type = (options.ggufType ?? 'Q4_K') as GgufModelType;
    const result = await saveGgufModel(join(options.out, 'model.gguf'), loaded.graph, options.model, { type });
    if (type !== 'F32' && stored.size > 0) saveWarnings.push(`GGUF re-encodes every weight to ${type} from its decoded values; the recipe's own codes are not kept (--gguf-type F32 writes them exactly)`);
    for (const w of result.warnings) saveWarnings.push(`${w.layer ? `[${w.layer}] ` : ''}${w.message}`);
  }
  for (const name of COPIED_FILES) if (existsSync(join(options.model, name))) await copyFile(join(options.model, name), join(options.out, name));
  const recipeText = await readFile(options.recipe, 'utf8');
  await writeFile(
    join(options.out, 'quantization.json'),
    `${JSON.stringify({ recipe: { name: report.recipe, file: options.recipe, text: recipeText }, model: options.model, save, protocol: { calibration: protocol }, onlineTransforms, report }, null, 2)}\n`,
  );
  stdout(`${formatReport(report)}\n${saveWarnings.map((w) => `warning: ${w}\n`).join('')}wrote ${options.out} (${save})\n`);
}

/**
 * Runs `bitsmith quantize`: loads the model, cuts calibration sequences, runs the recipe, and writes a Hugging Face
 * folder with fake-quant float32 weights (or a packed format, `--save`), the config (with a `quantization_config`
 * that states how run-time input transforms are applied), the tokenizer files, and `quantization.json` (recipe,
 * protocol, report). A stored kind the `--save` format cannot write is refused before any work where the recipe's
 * steps declare it, else after the run and before anything is written.
 */
export async function quantizeCommand(options: QuantizeOptions, registry: StepRegistry = defaultRegistry, output: CommandOutput = {}): Promise<RecipeReport> {
  const job = await runQuantizeJob(options, registry, output);
  await writeQuantizedModel(job, options, output);
  return job.report;
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
    .option('--gguf-type <type>', 'GGUF tensor type for --save gguf (Q4_K, Q6_K, Q8_0, Q4_0, Q4_1, Q5_0, F16, F32)', 'Q4_K')
    .action(async (options: QuantizeOptions) => {
      try {
        await quantizeCommand(options, registry, output);
      } finally {
        await disposeDefaultBackend();
      }
    });
}
