import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { defaultBackend, disposeDefaultBackend } from '@bitsmith/linalg';
import { backendChoice, llamaParameterCount } from '../backend-choice.js';
import { ActivationSchemeRefusedError, BitsmithError, formatName, type Granularity, type QuantizedTensor, type StoredForm, type StoredKind } from '@bitsmith/core';
import { GGUF_ARCHITECTURES, GGUF_MODEL_TYPES, imatrixImportance, quantizedRun, readImatrix, refuseCompressedTensorsActivations, refuseDeclaredKinds, RUN_EXPORTERS, type GgufModelType, type OnnxRunExportResult, type QuantizedRun, type RunExporter, type RunExportResult, type SaveGgufResult } from '@bitsmith/formats';
import { architectureMapping, evaluateLanguageModel, llamaQuantizableModel, loadLlamaConfig, loadLlamaGraph, loadLlamaModel, type LlamaModel } from '@bitsmith/models';
import { fakeQuantExporter } from '../fake-quant-export.js';
import { withActivationCapture, type ActivationSummary } from '../activation-summary.js';
import { evalSummary } from './eval.js';
import { directoryCheckpointStore, formatDuration, parseRecipe, RecipeFileError, runRecipe, type Recipe, type RecipeProgressEvent, type RecipeReport, type RunCheckpointOptions, type StepRegistry } from '@bitsmith/recipe';
import { checkpointFolder, quantizeFingerprint } from '../run-fingerprint.js';
import { calibrationSequences, readCalibrationText } from '../calibration-data.js';
import { OptionError, outputSinks, parseIntegerOption, type CommandOutput } from '../command-output.js';
import { defaultRegistry } from '../default-registry.js';
import { stageOutputFolder, writeOutputFolder } from '../output-folder.js';
import { PRESETS, resolvePreset, type QuantizePreset } from '../presets.js';

/**
 * Text that data-free recipes (RTN, HQQ) run through the model when no `--calibration` is given: it only feeds the
 * per-layer output-error column of the report, the weights do not depend on it.
 */
const BUILT_IN_SAMPLE =
  'Once upon a time, a small robot lived in a quiet town by the sea. Every morning it walked to the harbour to count the boats. ' +
  'One day a storm came and the boats did not return. The robot waited on the pier all night, and when the sun rose it saw ' +
  'the first sail on the water. It was happy, and it counted every boat twice to be sure. The fishermen laughed and thanked it.';

/** True when some step of the recipe (or of an override) asks for calibration statistics. */
export function recipeNeedsCalibration(recipe: Recipe): boolean {
  return recipe.stages.some((stage) => stage.step.requires.length > 0 || (stage.overrides ?? []).some((o) => o.step.requires.length > 0));
}

/** Bits per weight of a GGML tensor type (block bytes x 8 / block elements). */
function ggmlBitsPerWeight(type: string): number {
  const table: Record<string, [number, number]> = { F32: [4, 1], F16: [2, 1], Q4_0: [18, 32], Q4_1: [20, 32], Q5_0: [22, 32], Q8_0: [34, 32], Q4_K: [144, 256], Q5_K: [176, 256], Q6_K: [210, 256], IQ4_NL: [18, 32], IQ4_XS: [136, 256] };
  const [bytes, elements] = table[type] ?? [4, 1];
  return (bytes * 8) / elements;
}

/** A short label of a granularity: `g32`, `per channel`, `per tensor`. */
function granularityLabel(g: Granularity): string {
  if (g.type === 'group') return `g${g.size}`;
  if (g.type === 'channel') return 'per channel';
  if (g.type === 'tensor') return 'per tensor';
  return g.type;
}

/** The setting a layer was quantized with, as the bit plan shows it: `int3 g32`. */
export function quantizedSettingLabel(q: QuantizedTensor): string {
  return `${formatName(q.format)} ${granularityLabel(q.granularity)}`;
}

/** Where the recipe comes from: a file or a preset. */
async function recipeSource(options: QuantizeOptions): Promise<{ name: string; file: string; text: string | undefined; preset?: QuantizePreset }> {
  if (options.recipe !== undefined && options.preset !== undefined) throw new OptionError('--preset', 'give either --recipe or --preset, not both');
  if (options.preset !== undefined) {
    const preset = resolvePreset(options.preset);
    if (options.save !== undefined && options.save !== 'fake' && !options.save.split(',').includes(preset.save)) {
      throw new OptionError('--save', `preset ${preset.name} saves ${preset.save}; got --save ${options.save}`);
    }
    const text = preset.recipeFor ? preset.recipeFor((await loadLlamaConfig(options.model)).numHiddenLayers) : preset.recipe;
    return { name: preset.name, file: `preset:${preset.name}`, text, preset };
  }
  if (options.recipe === undefined) throw new OptionError('--recipe', `give a recipe file or --preset (${Object.keys(PRESETS).join(', ')})`);
  let text: string;
  try {
    text = await readFile(options.recipe, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new RecipeFileError(options.recipe, code === 'ENOENT' ? 'file not found' : `cannot be read (${(cause as Error).message})`);
  }
  return { name: options.recipe.replace(/^.*\//, '').replace(/\.(ya?ml|json)$/, ''), file: options.recipe, text };
}

/** Options of `bitsmith quantize` as commander parses them. */
export interface QuantizeOptions {
  model: string;
  /** Recipe file; exactly one of `recipe` and `preset`. */
  recipe?: string;
  /** A named preset ({@link PRESETS}); exactly one of `recipe` and `preset`. */
  preset?: string;
  /** Calibration text; optional for data-free recipes (no step declares a statistic in `requires`). */
  calibration?: string;
  out: string;
  samples: string;
  seqLen: string;
  calibrationSeed?: string;
  /** `native` (default) or `reference`: the arithmetic of learned steps' training passes (`llamaQuantizableModel`'s `trainingArithmetic`). */
  trainingArithmetic?: string;
  save?: string;
  ggufType?: string;
  /** llama.cpp importance matrix (GGUF or legacy .dat, e.g. from `bitsmith imatrix`) for `--save gguf`. */
  imatrix?: string;
  /** Held-out text: after quantizing, perplexity, KL and top-1 agreement against the original model go into the report. */
  eval?: string;
  /** Replace a non-empty `out` (atomically, once the run succeeded). Default false. */
  overwrite?: boolean;
  /**
   * Continue an interrupted run from its checkpoint (`.<out>.checkpoint` beside `--out`): the finished blocks are
   * read back instead of recomputed, and the output is bit-identical to an uninterrupted run. Default false.
   */
  resume?: boolean;
  /** Write a checkpoint after every block (`--no-checkpoint` sets false). Default true in `quantizeCommand`. */
  checkpoint?: boolean;
  /** Where checkpoints go; set by `quantizeCommand` (beside `--out`). Without it `runQuantizeJob` writes none. */
  checkpointDir?: string;
}

/** Peak resident set size of this process so far, in bytes (`getrusage`'s ru_maxrss). */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/**
 * The formats of one run: `--save a,b` (several formats, each written to `--out/<format>/`), the preset's format
 * (plus the others listed), or `fake`.
 */
export function saveFormats(options: Pick<QuantizeOptions, 'save'>, preset?: QuantizePreset): SaveFormat[] {
  const listed = options.save === undefined ? [] : options.save.split(',').map((f) => f.trim());
  const saves = [...new Set(preset ? [preset.save, ...listed.filter((f) => f !== 'fake' || listed.length > 1)] : listed.length > 0 ? listed : ['fake'])];
  for (const save of saves) if (!(SAVE_FORMATS as readonly string[]).includes(save)) throw new OptionError('--save', `must be one of ${SAVE_FORMATS.join(', ')} (or several, comma-separated); got '${options.save}'`);
  return saves as SaveFormat[];
}

/** Output formats of `bitsmith quantize --save`. */
export const SAVE_FORMATS = ['fake', 'compressed-tensors', 'gptq', 'gptq-v2', 'onnx', 'gguf'] as const;
/** One of {@link SAVE_FORMATS}. */
export type SaveFormat = (typeof SAVE_FORMATS)[number];

/**
 * Formats a report as a plain-text table (one line per layer, then totals); `peakRssBytes` (the process's peak
 * resident memory) goes into the first line when given.
 */
export function formatReport(report: RecipeReport, resources: { peakRssBytes?: number } = {}): string {
  const extra = [
    ...(resources.peakRssBytes !== undefined ? [`peak RSS ${mib(resources.peakRssBytes)}`] : []),
    ...(report.resumedBlocks ? [`resumed after block ${report.resumedBlocks}`] : []),
  ];
  const lines = [`recipe ${report.recipe}: ${report.averageBitsPerWeight.toFixed(3)} bits/weight on quantized layers, ${report.seconds.toFixed(1)} s${extra.map((e) => `, ${e}`).join('')}`];
  const width = Math.max(0, ...report.layers.map((l) => l.name.length));
  for (const l of report.layers) {
    const error = Number.isFinite(l.outputError) ? `output error ${l.outputError.toFixed(4)}` : 'output error not measured';
    lines.push(`  ${l.name.padEnd(width)}  ${l.bitsPerWeight.toFixed(3).padStart(6)} bits  ${error}  ${l.steps.join('+') || '-'}`);
  }
  for (const s of report.steps) {
    lines.push(`  step ${s.id} (${s.kind}): ${s.seconds.toFixed(2)} s${s.warnings.length ? `, ${s.warnings.length} warning(s)` : ''}`);
    for (const w of s.warnings) lines.push(`    warning${w.layer ? ` [${w.layer}]` : ''}: ${w.message}`);
  }
  return lines.join('\n');
}

/**
 * Progress of `bitsmith quantize` on standard error: a bar with the ETA of the run and of the block in hand on a
 * terminal; otherwise one line per finished block with the elapsed time, the ETA and the memory (resident now, peak).
 */
export function progressReporter(interactive: boolean, write: (text: string) => void) {
  const layerLines = process.env.BITSMITH_PROGRESS_LAYERS?.trim() === '1';
  const memory = () => `RSS ${mib(process.memoryUsage.rss())} (peak ${mib(peakRssBytes())})`;
  // A model-level step that learns (a learned rotation) reports its iterations: about ten lines per step.
  const writeModelStepProgress = (e: Extract<RecipeProgressEvent, { type: 'model-step-progress' }>) => {
    if (e.done !== e.total && e.done % Math.max(1, Math.round(e.total / 10)) !== 0) return;
    write(`  ${e.step} ${e.done}/${e.total}${e.message ? ` ${e.message}` : ''}; ${formatDuration(e.elapsedSeconds)}${e.etaSeconds !== undefined ? `, ETA ${formatDuration(e.etaSeconds)}` : ''}\n`);
  };
  if (interactive) {
    const bar = new cliProgress.SingleBar({ format: 'quantizing |{bar}| {value}/{total} blocks  ETA {eta_run}  {step}', hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic);
    let started = false;
    return {
      onProgress(e: RecipeProgressEvent) {
        if (e.type === 'resumed') write(`resuming: blocks 1-${e.nextBlock} read from the checkpoint (${formatDuration(e.elapsedSeconds)} of earlier work)\n`);
        if (e.type === 'model-step-progress') writeModelStepProgress(e);
        if (e.type === 'block-start' && !started) {
          bar.start(e.totalBlocks, e.block, { step: '', eta_run: formatDuration(e.etaSeconds) });
          started = true;
        } else if (e.type === 'step') {
          const block = e.blockEtaSeconds === undefined ? '' : ` (block ETA ${formatDuration(e.blockEtaSeconds)})`;
          bar.update({ step: `${e.step} ${e.done}/${e.total}${e.layer ? ` ${e.layer}` : ''}${block}`, eta_run: formatDuration(e.etaSeconds) });
        } else if (e.type === 'block-done') bar.update(e.block + 1, { step: memory(), eta_run: formatDuration(e.etaSeconds) });
      },
      stop: () => started && bar.stop(),
    };
  }
  return {
    onProgress(e: RecipeProgressEvent) {
      if (e.type === 'model-step') write(`model step ${e.step} (${e.index + 1}/${e.total})\n`);
      else if (e.type === 'model-step-progress') writeModelStepProgress(e);
      else if (e.type === 'resumed') write(`resuming: blocks 1-${e.nextBlock} of ${e.totalBlocks} read from the checkpoint (${formatDuration(e.elapsedSeconds)} of earlier work)\n`);
      // BITSMITH_PROGRESS_LAYERS=1: a line per block start and per layer a step finished, with the run's elapsed seconds.
      else if (layerLines && e.type === 'block-start') write(`  block ${e.block + 1} starts at ${e.elapsedSeconds.toFixed(2)} s\n`);
      else if (layerLines && e.type === 'step') write(`  ${e.step} ${e.done}/${e.total}${e.layer ? ` ${e.layer}` : ''} done at ${e.elapsedSeconds.toFixed(2)} s\n`);
      else if (e.type === 'block-done') {
        write(`block ${e.block + 1}/${e.totalBlocks} done in ${e.seconds.toFixed(2)} s; elapsed ${formatDuration(e.elapsedSeconds)}, ETA ${formatDuration(e.etaSeconds)}; ${memory()}\n`);
      }
    },
    stop: () => undefined,
  };
}

/**
 * The result of {@link runQuantizeJob}: the run ({@link QuantizedRun}: the quantized graph, the stored form of every
 * quantized layer, its run-time transforms, config and report), which every `--save` exporter takes, and what
 * `quantization.json` records beside it.
 */
export interface QuantizeJob {
  readonly source: Awaited<ReturnType<typeof recipeSource>>;
  /** The recipe that ran; absent for a preset whose export format quantizes by itself. */
  readonly recipe?: Recipe;
  readonly loaded: LlamaModel;
  readonly report: RecipeReport;
  /** Final stored form of each quantized layer, by layer name (`decodeStored` of each is the layer's weight). */
  readonly stored: ReadonlyMap<string, StoredForm>;
  readonly protocol: unknown;
  /** The setting each grid-quantized layer got (`int4 g128`), for the report's bit plan. */
  readonly settings: Readonly<Record<string, string>>;
  /** Activation statistics of every linear input seen during calibration. */
  readonly activations: ReadonlyMap<string, ActivationSummary>;
  /** The `--eval` result, when asked for. */
  readonly evaluation?: Record<string, unknown>;
  /** Warnings about the calibration text (too short, ...), also written to quantization.json. */
  readonly calibrationWarnings: readonly string[];
  /** The run as every exporter takes it, built once from `loaded.graph`, `stored`, the model's config.json and `report`. */
  readonly run: QuantizedRun<RecipeReport>;
}

/**
 * The GGUF tensor type of a run, checked to be one of the known types; with `onlyWithGguf` (the command line), a
 * `--gguf-type` given without `--save gguf` is refused too.
 */
function resolveGgufType(options: QuantizeOptions, source: Awaited<ReturnType<typeof recipeSource>>, save: SaveFormat, onlyWithGguf = false): GgufModelType {
  if (onlyWithGguf && options.ggufType !== undefined && save !== 'gguf') throw new OptionError('--gguf-type', `applies to --save gguf only; got --save ${save}`);
  if (onlyWithGguf && options.imatrix !== undefined && save !== 'gguf') throw new OptionError('--imatrix', `applies to --save gguf only; got --save ${save}`);
  const ggufType = (source.preset?.ggufType ?? options.ggufType ?? 'Q4_K') as GgufModelType;
  if (!GGUF_MODEL_TYPES.includes(ggufType)) throw new OptionError('--gguf-type', `must be one of ${GGUF_MODEL_TYPES.join(', ')}; got '${options.ggufType}'`);
  return ggufType;
}

/** Every step of a recipe (overrides included) with the stored kinds it declares (`Quantizer.stores`). */
export function declaredStoredKinds(recipe: Recipe): { step: string; stores?: readonly StoredKind[] }[] {
  return recipe.stages.flatMap((stage) => [stage.step, ...(stage.overrides ?? []).map((o) => o.step)]).map((step) => ({ step: step.id, ...(step.stores ? { stores: step.stores } : {}) }));
}

/**
 * Refuses, before any work, a recipe whose `inputActivations` or `kvCache` the `--save` format cannot carry:
 * compressed-tensors takes what {@link refuseCompressedTensorsActivations} accepts (W8A8 int8 static per tensor or
 * dynamic per token, FP8 dynamic per token, static FP8 KV cache); GPTQ and GGUF store weights only. `fake` records
 * every scheme; ONNX decides for itself after the run.
 *
 * @throws ActivationSchemeRefusedError naming the format, the field and why.
 */
export function refuseActivationSchemes(save: SaveFormat, recipe: Pick<Recipe, 'inputActivations' | 'kvCache'>): void {
  if (!recipe.inputActivations && !recipe.kvCache) return;
  if (save === 'compressed-tensors') refuseCompressedTensorsActivations(recipe);
  else if (save === 'gptq' || save === 'gptq-v2' || save === 'gguf') {
    throw new ActivationSchemeRefusedError(save, recipe.inputActivations ? 'inputActivations' : 'kvCache', `${save} stores weights only; use --save compressed-tensors (W8A8, FP8, FP8 KV cache) or --save fake`);
  }
}

/**
 * The checkpointing of a run (`options.checkpointDir`), or undefined: none asked for, or a recipe whose run-time
 * activation or cache quantizers a checkpoint cannot hold (then `--resume` is refused).
 */
async function checkpointOptions(
  options: QuantizeOptions,
  recipe: Recipe,
  recipeText: string,
  activations: Map<string, ActivationSummary>,
  calibrationOptions: Record<string, unknown>,
  stderr: (text: string) => void,
): Promise<RunCheckpointOptions | undefined> {
  const resumable = !recipe.inputActivations && !recipe.kvCache;
  if (options.resume && (!resumable || options.checkpoint === false || options.checkpointDir === undefined)) {
    throw new OptionError(
      '--resume',
      !resumable
        ? `recipe ${recipe.name} quantizes ${recipe.inputActivations ? 'input activations' : 'the key/value cache'} at run time; checkpoints cannot hold those quantizers yet, so its runs cannot resume`
        : 'needs checkpoints; drop --no-checkpoint',
    );
  }
  if (!resumable || options.checkpointDir === undefined || options.checkpoint === false) return undefined;
  const dir = options.checkpointDir;
  const found = existsSync(join(dir, 'head.ckpt'));
  if (options.resume && !found) stderr(`--resume: no checkpoint in ${dir}; starting from the first block\n`);
  if (!options.resume && found) stderr(`note: ${dir} holds the checkpoint of an earlier, unfinished run; starting over (pass --resume to continue it instead)\n`);
  return {
    store: directoryCheckpointStore(dir),
    fingerprint: await quantizeFingerprint({ model: options.model, recipe: recipeText, ...(options.calibration !== undefined ? { calibration: options.calibration } : {}), options: calibrationOptions }),
    resume: options.resume ?? false,
    save: () => [...activations.values()],
    restore: (value) => {
      for (const a of value as ActivationSummary[]) activations.set(a.layer, a);
    },
  };
}

/**
 * Loads the model, cuts calibration sequences, runs the recipe and, with `--eval`, evaluates the result (the first
 * half of `bitsmith quantize`). With `options.checkpointDir` a checkpoint is written after every block and
 * `options.resume` continues from it. A recipe whose steps declare a stored kind the `--save` format cannot write is refused
 * before any work.
 */
export async function runQuantizeJob(options: QuantizeOptions, registry: StepRegistry = defaultRegistry, output: CommandOutput = {}): Promise<QuantizeJob> {
  const { stdout, stderr } = outputSinks(output);
  const source = await recipeSource(options);
  const saves = saveFormats(options, source.preset);
  for (const save of saves) resolveGgufType(options, source, save);
  const samples = parseIntegerOption('--samples', options.samples, 1);
  const sequenceLength = parseIntegerOption('--seq-len', options.seqLen, 2);
  const parsed = source.text === undefined ? undefined : parseRecipe(source.text, registry, source.file);
  const recipe = parsed && (parsed.name ? parsed : { ...parsed, name: source.name });
  if (recipe && options.calibration === undefined && recipeNeedsCalibration(recipe)) {
    const needy = recipe.stages.filter((s) => s.step.requires.length > 0).map((s) => s.step.id);
    throw new OptionError('--calibration', `recipe ${recipe.name} needs calibration text (step ${[...new Set(needy)].join(', ')} uses statistics of the layers' inputs); data-free recipes (rtn, hqq) run without it`);
  }
  for (const save of saves) {
    if (recipe) refuseDeclaredKinds(save, declaredStoredKinds(recipe));
    if (recipe) refuseActivationSchemes(save, recipe);
    if (recipe && (save === 'compressed-tensors' || save === 'gptq' || save === 'gptq-v2' || save === 'onnx') && !recipe.stages.some((s) => s.step.kind === 'quantize')) {
      throw new OptionError('--save', `${save} stores quantized layers, but recipe ${recipe.name} has no quantize step; use --save fake or add one`);
    }
  }
  const config = await loadLlamaConfig(options.model);
  // webgpu first for models large enough to pay for it (probed only then, so small models and CI never load Dawn).
  const choice = backendChoice({ hiddenSize: config.hiddenSize, parameters: llamaParameterCount(config) }, process.env);
  if (choice.probeWebgpu) process.env.BITSMITH_WEBGPU = '1';
  const backend = await defaultBackend();
  if (choice.probeWebgpu || backend.name === 'webgpu') {
    stderr(`backend: ${backend.name} (${backend.name === 'webgpu' ? choice.reason : `no WebGPU adapter was found, so a CPU backend; ${choice.reason}`})\n`);
  }
  const modelType = config.modelType;
  const fused = Object.keys(architectureMapping(modelType).fused);
  const named = saves.find((save) => save === 'compressed-tensors' || save === 'gptq' || save === 'gptq-v2');
  if (named && fused.length > 0) {
    const save = named;
    // Refused before any work: these formats name quantized modules, and the split layers would not match the fused ones.
    throw new OptionError('--save', `${save} writes quantized layers under their module names, but ${modelType} stores ${fused.join(' and ')} fused (split into separate layers here); re-fusing quantized layers is not supported yet: use --save fake or onnx`);
  }
  const loaded = await loadLlamaModel(options.model, { backend, keepStoredDtype: true });
  for (const w of loaded.warnings) stderr(`warning: ${w.message}\n`);
  if (saves.includes('gguf') && !GGUF_ARCHITECTURES.includes(loaded.config.modelType)) {
    throw new OptionError('--save', `gguf writes ${GGUF_ARCHITECTURES.join(' and ')} models; ${options.model} is ${loaded.config.modelType}`);
  }
  if (recipe && options.calibration !== undefined && sequenceLength > loaded.config.maxPositionEmbeddings) {
    throw new OptionError('--seq-len', `${sequenceLength} exceeds the model's max_position_embeddings (${loaded.config.maxPositionEmbeddings}); expected at most ${loaded.config.maxPositionEmbeddings}`);
  }
  let calibrationWarnings: string[] = [];
  const stored = new Map<string, StoredForm>();
  const settings: Record<string, string> = {};
  const activations = new Map<string, ActivationSummary>();
  let report: RecipeReport;
  let protocol: unknown;
  if (recipe) {
    const text = options.calibration === undefined ? BUILT_IN_SAMPLE : await readCalibrationText(options.calibration);
    const bosTokenId = loaded.tokenizer.bosTokenId ?? loaded.config.bosTokenId;
    const cut = calibrationSequences(loaded.tokenizer.encode(text, { bos: false }), {
      samples: options.calibration === undefined ? 1 : samples,
      sequenceLength: Math.min(sequenceLength, loaded.config.maxPositionEmbeddings),
      bosTokenId,
      file: options.calibration ?? 'none (data-free recipe): a built-in paragraph, used only to measure the output error column',
      ...(options.calibrationSeed !== undefined ? { seed: parseIntegerOption('--calibration-seed', options.calibrationSeed, 0) } : {}),
    });
    protocol = cut.protocol;
    // The built-in paragraph only feeds the output-error column; its length is no user's choice to warn about.
    if (options.calibration !== undefined) calibrationWarnings = cut.warnings;
    for (const w of calibrationWarnings) stderr(`warning: ${w}\n`);
    if (options.calibration === undefined) stderr(`no --calibration: ${recipe.name} is data-free; the output error column is measured on a built-in paragraph\n`);
    const trainingArithmetic = options.trainingArithmetic === 'reference' ? 'reference' : 'native';
    const model = withActivationCapture(llamaQuantizableModel(loaded.graph, { trainingArithmetic }), options.calibration === undefined ? 'built-in paragraph' : 'calibration input', activations);
    const calibrationOptions = { samples: options.calibration === undefined ? 1 : samples, sequenceLength, seed: options.calibrationSeed ?? null, ...(trainingArithmetic !== 'native' ? { trainingArithmetic } : {}) };
    const checkpoint = await checkpointOptions(options, recipe, source.text ?? source.file, activations, calibrationOptions, stderr);
    const progress = progressReporter(Boolean(process.stderr.isTTY) && output.stderr === undefined, stderr);
    try {
      report = await runRecipe(model, recipe, cut.sequences, {
        backend,
        ...(checkpoint ? { checkpoint } : {}),
        onProgress: (e) => progress.onProgress(e),
        onStored: (name, form) => stored.set(name, form),
        onQuantized: (name, q) => {
          settings[name] = quantizedSettingLabel(q);
        },
      });
    } finally {
      progress.stop();
    }
  } else {
    protocol = 'none: the export format quantizes the float weights itself';
    report = { recipe: source.name, protocol: { sequences: 0, tokens: 0, maxSequenceLength: 0 }, layers: [], steps: [], averageBitsPerWeight: 0, seconds: 0 };
  }

  let evaluation: Record<string, unknown> | undefined;
  if (options.eval !== undefined) {
    if (!recipe) {
      stderr(`warning: --eval skipped: preset ${source.name} quantizes while writing the file; evaluate it with llama.cpp\n`);
    } else {
      const ctx = Math.min(128, loaded.config.maxPositionEmbeddings);
      const ids = loaded.tokenizer.encode(await readCalibrationText(options.eval));
      const bosTokenId = loaded.tokenizer.bosTokenId ?? loaded.config.bosTokenId;
      const reference = await loadLlamaGraph(options.model, { backend });
      const bos = bosTokenId === undefined ? {} : { bosTokenId };
      stderr(`evaluating on ${options.eval} (${ids.length} tokens)...\n`);
      const result = await evaluateLanguageModel(loaded.graph, ids, { ctx, reference, ...bos });
      const float = await evaluateLanguageModel(reference, ids, { ctx, ...bos });
      evaluation = {
        text: options.eval,
        tokens: result.tokens,
        windows: result.windows,
        ctx: result.ctx,
        perplexity: result.perplexity,
        referencePerplexity: float.perplexity,
        kl: result.kl,
        top1Agreement: result.top1Agreement,
        protocol: result.protocol,
      };
      stdout(`eval: ${evalSummary(result)} (float model: perplexity ${Number(float.perplexity.toPrecision(4))})\n`);
    }
  }
  // The one result every exporter takes.
  const modelConfig = JSON.parse(await readFile(join(options.model, 'config.json'), 'utf8')) as Record<string, unknown>;
  const run = quantizedRun({ graph: loaded.graph, stored, config: modelConfig, report, source: options.model });
  return { source, ...(recipe ? { recipe } : {}), loaded, report, stored, protocol, settings, activations, calibrationWarnings, ...(evaluation ? { evaluation } : {}), run };
}

/**
 * The exporter of each `--save` format: all take the job's one {@link QuantizedRun} and say which stored kinds they
 * accept (`fake`: {@link fakeQuantExporter}; the others: `RUN_EXPORTERS` of `@bitsmith/formats`).
 */
export const SAVE_EXPORTERS: Readonly<Record<SaveFormat, RunExporter<never, RunExportResult>>> = { fake: fakeQuantExporter, ...RUN_EXPORTERS } as Readonly<Record<SaveFormat, RunExporter<never, RunExportResult>>>;

/**
 * Writes a quantized model in one `--save` format (the second half of `bitsmith quantize`) and returns the report.
 * The format's exporter takes the job's {@link QuantizedRun} and checks it before anything is written: a stored kind
 * it cannot hold (a codebook for ONNX, a low-rank branch for GPTQ) is refused with `StoredFormRefusedError`, run-time
 * transforms or a cache quantization it cannot express with `ActivationSchemeRefusedError`.
 */
export async function writeQuantizedModel(
  job: QuantizeJob,
  options: QuantizeOptions,
  output: CommandOutput = {},
  commit: (write: (dir: string) => Promise<void>) => Promise<void> = async (write) => {
    await mkdir(options.out, { recursive: true });
    await write(options.out);
  },
): Promise<RecipeReport> {
  const { stdout } = outputSinks(output);
  const { source, recipe, loaded, stored, protocol, settings, activations, evaluation, calibrationWarnings, run } = job;
  let report = job.report;
  // The caller names one format (quantizeCommand resolves presets and lists into single formats).
  const save = (options.save ?? source.preset?.save ?? 'fake') as SaveFormat;
  if (!SAVE_FORMATS.includes(save)) throw new OptionError('--save', `writes one of ${SAVE_FORMATS.join(', ')} at a time; got '${options.save}'`);
  const ggufType = resolveGgufType(options, source, save);
  const importance = save === 'gguf' && options.imatrix !== undefined ? imatrixImportance(await readImatrix(options.imatrix)) : undefined;
  const exporterOptions = save === 'gguf' ? { type: ggufType, ...(importance ? { importance } : {}) } : {};
  const exporter = SAVE_EXPORTERS[save] as RunExporter<typeof exporterOptions, RunExportResult>;
  // Everything the format cannot hold is refused here, before any file is opened.
  exporter.check(run, exporterOptions);
  const onlineTransforms = run.transforms.map((t) => ({ layer: t.layer, ...t.description }));
  const saveWarnings: string[] = [];
  await commit(async (out) => {
    const started = performance.now();
    const saved = await exporter.save(out, run, exporterOptions);
    for (const w of saved.warnings) saveWarnings.push(`${w.layer ? `[${w.layer}] ` : ''}${w.message}`);
    if (save === 'onnx') {
      // transformers.js layout: onnx/model_q4.onnx (+ q4f16, fp32), config.json with transformers.js_config, tokenizer.
      const files = (saved as unknown as OnnxRunExportResult).dtypeFiles;
      saveWarnings.push(...Object.entries(files).map(([dtype, f]) => `onnx ${dtype}: ${f!.path.replace(/^.*\/onnx\//, 'onnx/')} (${(f!.bytes / 2 ** 20).toFixed(1)} MiB)`));
    } else if (save === 'gguf') {
      const tensors = (saved as unknown as SaveGgufResult).tensors;
      if (stored.size > 0) {
        const paths = new Map<string, number>();
        for (const t of tensors) if (t.path) paths.set(t.path, (paths.get(t.path) ?? 0) + 1);
        stdout(`gguf ${ggufType}: ${[...paths].map(([p, n]) => `${n} ${p}`).join(', ')} (exact/carried: the recipe's codes; re-derived: k-quant sub-scales from the recipe's grid; re-quantized: ggml's quantizer on the calibrated weights; quantized: from float weights)\n`);
      }
      if (!recipe) {
        // No recipe ran: the report lists the GGUF types of the 2-D weights.
        const weights = tensors.filter((t) => t.shape.length === 2);
        const layers = weights.map((t) => ({ name: t.name, block: Number(/^blk\.(\d+)\./.exec(t.name)?.[1] ?? -1), bitsPerWeight: ggmlBitsPerWeight(t.type), outputError: Number.NaN, steps: [`gguf ${t.type}`], seconds: 0 }));
        const count = weights.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
        const bits = weights.reduce((n, t) => n + ggmlBitsPerWeight(t.type) * t.shape.reduce((a, b) => a * b, 1), 0);
        report = { ...report, layers, averageBitsPerWeight: count > 0 ? bits / count : 0, seconds: (performance.now() - started) / 1000 };
      }
    }
    await writeFile(
      join(out, 'quantization.json'),
      `${JSON.stringify({ recipe: { name: report.recipe, file: source.file, text: source.text ?? null }, model: options.model, save, ...(save === 'gguf' ? { ggufType } : {}), protocol: { calibration: protocol }, warnings: { model: loaded.warnings.map((w) => w.message), calibration: calibrationWarnings }, onlineTransforms, report, resources: { peakRssBytes: peakRssBytes(), note: 'peak resident memory of the process until this file was written (getrusage ru_maxrss)' }, settings, activations: [...activations.values()], ...(evaluation ? { evaluation } : {}) }, null, 2)}\n`,
    );
  });
  stdout(`${formatReport(report, { peakRssBytes: peakRssBytes() })}\n${saveWarnings.map((w) => `warning: ${w}\n`).join('')}wrote ${options.out} (${save})\n`);
  return report;
}

/**
 * Runs `bitsmith quantize`: loads the model, cuts calibration sequences, runs the recipe, and writes a Hugging Face
 * folder with fake-quant float32 weights (or a packed format, `--save`), the config (with a `quantization_config`
 * that states how run-time input transforms are applied), the tokenizer files, and `quantization.json` (recipe,
 * protocol, report). A stored kind the `--save` format cannot write is refused before any work where the recipe's
 * steps declare it, else after the run and before anything is written.
 */
export async function quantizeCommand(options: QuantizeOptions, registry: StepRegistry = defaultRegistry, output: CommandOutput = {}): Promise<RecipeReport> {
  // Every option and the output folder are checked before any work; the output is staged beside --out and renamed
  // onto it only when complete, so a failed or killed run leaves --out as it was.
  const source = await recipeSource(options);
  const saves = saveFormats(options, source.preset);
  if (options.trainingArithmetic !== undefined && options.trainingArithmetic !== 'native' && options.trainingArithmetic !== 'reference') {
    throw new OptionError('--training-arithmetic', `must be native or reference; got '${options.trainingArithmetic}'`);
  }
  resolveGgufType(options, source, saves.includes('gguf') ? 'gguf' : saves[0]!, true);
  const inputs = [options.model, ...(options.eval !== undefined ? [options.eval] : []), ...(options.recipe !== undefined ? [options.recipe] : []), ...(options.calibration !== undefined ? [options.calibration] : []), ...(options.imatrix !== undefined ? [options.imatrix] : [])];
  const staged = await stageOutputFolder(options.out, { inputs, overwrite: options.overwrite ?? false });
  // Checkpoints go beside --out (.NAME.checkpoint) and are removed once the output is in place.
  const checkpointDir = options.checkpoint === false ? undefined : checkpointFolder(options.out);
  const jobOptions: QuantizeOptions = { ...options, ...(checkpointDir ? { checkpointDir } : {}) };
  let finished = false;
  try {
    const job = await runQuantizeJob(jobOptions, registry, output);
    finished = true;
    let report = job.report;
    if (saves.length === 1) report = await writeQuantizedModel(job, { ...options, save: saves[0]! }, output, (write) => writeOutputFolder(staged, write));
    else {
      // Several formats: each in its own subfolder of --out, committed together.
      await writeOutputFolder(staged, async (dir) => {
        for (const save of saves) {
          report = await writeQuantizedModel(job, { ...options, save }, output, async (write) => {
            await mkdir(join(dir, save), { recursive: true });
            await write(join(dir, save));
          });
        }
      });
    }
    if (checkpointDir) await rm(checkpointDir, { recursive: true, force: true });
    return report;
  } catch (error) {
    if (checkpointDir && existsSync(join(checkpointDir, 'head.ckpt'))) {
      // A refusal of the finished result (a format that cannot hold it) would come again on resume: nothing to keep.
      // Anything else (a crash, a full disk, Ctrl-C, an option refused before this run did any work) leaves the
      // finished blocks for --resume.
      if (finished && BitsmithError.isInstance(error) && REFUSALS.has(error.code)) await rm(checkpointDir, { recursive: true, force: true });
      else outputSinks(output).stderr(`the checkpoint ${checkpointDir} keeps the finished blocks: run the same command with --resume to continue\n`);
    }
    throw error;
  } finally {
    await staged.discard();
  }
}

/** Error codes that refuse a run's result whatever is retried: the checkpoint of such a run is removed. */
const REFUSALS = new Set(['stored-form-refused', 'unsupported-format', 'activation-scheme-refused', 'invalid-argument']);

/**
 * Registers `bitsmith quantize --model DIR (--recipe FILE | --preset NAME) [--calibration FILE] --out DIR [--samples 128]
 * [--seq-len 128] [--calibration-seed N]`. `--calibration` may be left out for data-free recipes (RTN, HQQ).
 */
export function registerQuantize(program: Command, registry: StepRegistry = defaultRegistry, output: CommandOutput = {}): void {
  program
    .command('quantize')
    .description('quantize a Hugging Face Llama-family model with a recipe file and write a fake-quant model folder')
    .requiredOption('--model <dir>', 'model folder (config.json, model.safetensors, tokenizer.json)')
    .option('--recipe <file>', `recipe file (YAML or JSON); steps: ${Object.keys(registry).join(', ')}`)
    .option('--preset <name>', `a named setting instead of --recipe: ${Object.values(PRESETS).map((p) => `${p.name} (${p.description})`).join('; ')}`)
    .option('--calibration <file>', 'UTF-8 calibration text (not needed by data-free recipes: rtn, hqq)')
    .requiredOption('--out <dir>', 'output folder')
    .option('--samples <n>', 'calibration sequences', '128')
    .option('--seq-len <n>', 'tokens per calibration sequence, BOS included', '128')
    .option('--calibration-seed <n>', 'sample the calibration windows at random offsets with this seed (default: consecutive chunks from the start)')
    .option('--training-arithmetic <kind>', "learned steps' training passes (autoround, lwc, omniquant; learned rotations always use reference): native (default: the backend's attention, float32 SiLU) or reference (the same bits on every backend and release, about 10% slower)")
    .option('--save <formats>', `output: ${SAVE_FORMATS.join(', ')}, or several comma-separated (each written to --out/<format>/); default fake: float32 weights on the grid; onnx writes the transformers.js layout (onnx/model_q4.onnx, model_q4f16.onnx, model.onnx)`)
    .option('--gguf-type <type>', `GGUF tensor type for --save gguf (${GGUF_MODEL_TYPES.join(', ')}; default Q4_K)`)
    .option('--imatrix <file>', "llama.cpp importance matrix (bitsmith imatrix, or llama-imatrix's .gguf/.dat) for --save gguf: weighs the k-quant and IQ4 fits as llama-quantize --imatrix does")
    .option('--eval <file>', 'held-out text: after quantizing, report perplexity, KL and top-1 agreement against the original model')
    .option('--overwrite', 'replace a non-empty --out folder (atomically, once the run has succeeded)')
    .option('--resume', 'continue an interrupted run from its checkpoint (.<out>.checkpoint beside --out) instead of starting over; the result is bit-identical')
    .option('--no-checkpoint', 'do not write a checkpoint after every block (a killed run then cannot --resume)')
    .action(async (options: QuantizeOptions) => {
      try {
        await quantizeCommand(options, registry, output);
      } finally {
        await disposeDefaultBackend();
      }
    });
}
