// The quantization job, in a Web Worker so that the page stays responsive: loads a Hugging Face Llama-family folder
// (dropped files or a URL), quantizes it with the chosen recipe (and with round-to-nearest for comparison), evaluates
// both against the float model on held-out text, renders the report and packs the quantized model as a
// compressed-tensors checkpoint. Every package here is imported through its browser (default) entry.
import { formatName, type StepRegistry, type StoredForm } from '@bitsmith/core';
import { compressedTensorsCheckpoint, encodeCheckpointFiles, exportableGrids } from '@bitsmith/formats';
import { defaultBackend, type Backend } from '@bitsmith/linalg';
import {
  calibrationSequences,
  decodeJsonFile,
  encodeSafetensors,
  evaluateLanguageModel,
  llamaQuantizableModel,
  loadLlamaGraph,
  loadLlamaModel,
  modelFolderFromFiles,
  modelFolderFromUrl,
  type EvaluationResult,
  type LlamaGraph,
  type ModelFolder,
} from '@bitsmith/models';
import { compareReportViews, parseRecipe, renderReportHtml, reportView, runRecipe, type Recipe, type RecipeReport } from '@bitsmith/recipe';
import { defaultRegistry } from '@bitsmith/steps';
import type { JobEvent, JobRequest, OutputFile, RecipeText, RunFigures } from './protocol.js';

/** The steps recipe files can name here: @bitsmith/steps' browser registry (a `bit-allocation` plan is an object). */
const registry: StepRegistry = defaultRegistry;

/** A recipe file parsed with the registry (errors name the file and the line, as in the CLI). */
function recipeOf(recipe: RecipeText): Recipe {
  const parsed = parseRecipe(recipe.text, registry, recipe.name);
  return parsed.name ? parsed : { ...parsed, name: recipe.name };
}

const post = (event: JobEvent, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(event, transfer);

/** Progress with an ETA: `fraction` of the whole job done, the rest extrapolated from the time spent so far. */
function progressReporter(started: number) {
  return (fraction: number, message: string) => {
    const elapsed = (performance.now() - started) / 1000;
    const etaSeconds = fraction > 0.03 && fraction < 1 ? (elapsed / fraction) * (1 - fraction) : undefined;
    post({ type: 'progress', fraction: Math.min(1, fraction), message, ...(etaSeconds !== undefined ? { etaSeconds } : {}) });
  };
}

interface QuantizedRun {
  readonly name: string;
  readonly graph: LlamaGraph;
  readonly report: RecipeReport;
  readonly stored: Map<string, StoredForm>;
  readonly settings: Record<string, string>;
}

async function quantize(
  folder: ModelFolder,
  backend: Backend,
  recipe: Recipe,
  sequences: number[][],
  onFraction: (fraction: number, message: string) => void,
): Promise<QuantizedRun> {
  const graph = await loadLlamaGraph(folder, { backend });
  const stored = new Map<string, StoredForm>();
  const settings: Record<string, string> = {};
  const name = recipe.name ?? 'recipe';
  const report = await runRecipe(llamaQuantizableModel(graph), recipe, sequences, {
    backend,
    onProgress: (e) => {
      if (e.type === 'step') onFraction((e.block + e.done / Math.max(1, e.total)) / e.totalBlocks, `${name}: block ${e.block + 1}/${e.totalBlocks}, ${e.step} ${e.done}/${e.total}${e.layer ? ` ${e.layer}` : ''}`);
      else if (e.type === 'block-done') onFraction((e.block + 1) / e.totalBlocks, `${name}: block ${e.block + 1}/${e.totalBlocks} done in ${e.seconds.toFixed(2)} s`);
    },
    onStored: (layer, form) => {
      stored.set(layer, form);
      if (form.kind === 'grid') settings[layer] = `${formatName(form.tensor.format)} ${form.tensor.granularity.type === 'group' ? `g${form.tensor.granularity.size}` : form.tensor.granularity.type}`;
    },
  });
  return { name, graph, report, stored, settings };
}

function figures(run: QuantizedRun, result: EvaluationResult): RunFigures {
  const errors = run.report.layers.map((l) => l.outputError).filter(Number.isFinite);
  return {
    recipe: run.name,
    averageBitsPerWeight: run.report.averageBitsPerWeight,
    perplexity: result.perplexity,
    kl: result.kl ?? Number.NaN,
    top1Agreement: result.top1Agreement ?? Number.NaN,
    meanOutputError: errors.reduce((a, b) => a + b, 0) / Math.max(1, errors.length),
  };
}

async function run(request: JobRequest): Promise<void> {
  const started = performance.now();
  const progress = progressReporter(started);
  progress(0, 'loading the model');
  const folder = request.model.kind === 'files' ? modelFolderFromFiles(request.model.files, 'dropped files') : modelFolderFromUrl(new URL(request.model.url, self.location.href));
  const backend = await defaultBackend();
  const model = await loadLlamaModel(folder, { backend });
  const reference = model.graph;
  const { tokenizer, config } = model;
  const bosTokenId = tokenizer.bosTokenId ?? config.bosTokenId;
  const sequenceLength = Math.min(request.sequenceLength, config.maxPositionEmbeddings);
  const cut = calibrationSequences(tokenizer.encode(request.calibrationText, { bos: false }), { samples: request.samples, sequenceLength, bosTokenId, file: 'calibration text' });
  const evalIds = tokenizer.encode(request.evaluationText);
  progress(0.05, `loaded ${config.modelType} (${config.numHiddenLayers} blocks) on the ${backend.name} backend; ${cut.sequences.length} calibration sequences`);

  // Both recipe files are parsed before any work, so a mistake in either is reported at once.
  const texts = [...(request.baseline ? [request.baseline] : []), request.recipe];
  const plan = texts.map(recipeOf);
  const runs: QuantizedRun[] = [];
  for (const [i, recipe] of plan.entries()) {
    runs.push(await quantize(folder, backend, recipe, cut.sequences, (f, message) => progress(0.05 + (0.7 * (i + f)) / plan.length, message)));
  }

  const ctx = Math.min(128, config.maxPositionEmbeddings);
  const bos = bosTokenId === undefined ? {} : { bosTokenId };
  const evaluations = 1 + runs.length;
  const evalProgress = (k: number, what: string) => (done: number, total: number) => progress(0.75 + (0.23 * (k + done / Math.max(1, total))) / evaluations, `evaluating ${what}: window ${done}/${total}`);
  const float = await evaluateLanguageModel(reference, evalIds, { ctx, ...bos, onProgress: evalProgress(0, 'the float model') });
  const results: EvaluationResult[] = [];
  for (const [k, r] of runs.entries()) results.push(await evaluateLanguageModel(r.graph, evalIds, { ctx, ...bos, reference, onProgress: evalProgress(k + 1, r.name) }));

  progress(0.98, 'rendering the report and packing the files');
  const documents = runs.map((r, k) => ({
    recipe: { name: r.name, file: 'browser page', text: texts[k]!.text },
    model: folder.label,
    save: 'compressed-tensors',
    protocol: { calibration: cut.protocol },
    warnings: { model: model.warnings.map((w) => w.message), calibration: cut.warnings },
    report: r.report,
    settings: r.settings,
    evaluation: {
      text: 'evaluation text',
      tokens: results[k]!.tokens,
      windows: results[k]!.windows,
      ctx: results[k]!.ctx,
      perplexity: results[k]!.perplexity,
      referencePerplexity: float.perplexity,
      kl: results[k]!.kl,
      top1Agreement: results[k]!.top1Agreement,
      protocol: results[k]!.protocol,
    },
  }));
  const views = documents.map((d) => reportView(d));
  const html = renderReportHtml(views.length === 1 ? views[0] : compareReportViews(views, runs.map((r) => r.name)));

  // The chosen recipe's model: a compressed-tensors pack-quantized checkpoint where every layer is a plain grid and no
  // run-time transform or cache quantization is needed (what vLLM and transformers load), else fake-quant float32
  // weights (values on the grid; any float runtime loads them), as `bitsmith quantize --save fake` writes them.
  const chosen = runs[runs.length - 1]!;
  const modelConfig = decodeJsonFile(await folder.readBytes('config.json'), folder.path('config.json')) as Record<string, unknown>;
  if (modelConfig.tie_word_embeddings && !chosen.graph.tiedEmbeddings) modelConfig.tie_word_embeddings = false;
  const forms = [...chosen.stored.values()];
  const packable =
    forms.length > 0 && forms.every((f) => f.kind === 'grid') && !chosen.graph.linearLayers().some((l) => l.inputTransform) && !chosen.graph.blocks.some((b) => b.kvCache);
  const files: OutputFile[] = [];
  let format: string;
  if (packable) {
    const checkpoint = compressedTensorsCheckpoint({ tensors: chosen.graph.tensors(), quantized: exportableGrids('compressed-tensors', chosen.stored), config: modelConfig });
    for (const [name, bytes] of encodeCheckpointFiles(checkpoint, { content: `compressed-tensors pack-quantized (${chosen.name}, bitsmith in the browser)` })) files.push({ name, bytes: bytes.slice().buffer });
    format = 'compressed-tensors pack-quantized';
  } else {
    const why = forms.length === 0 ? 'no layer was quantized' : forms.some((f) => f.kind !== 'grid') ? `stored forms ${[...new Set(forms.map((f) => f.kind))].join(', ')} are not all plain grids` : 'the model needs run-time transforms';
    const bytes = encodeSafetensors(chosen.graph.tensors(), { metadata: { format: 'pt', producer: 'bitsmith', content: 'fake-quant float32 weights' } });
    const onlineTransforms = chosen.graph
      .linearLayers()
      .filter((l) => l.inputTransform)
      .map((l) => ({ layer: l.name, ...l.inputTransform!.describe() }));
    modelConfig.quantization_config = {
      quant_method: 'bitsmith',
      format: 'fake-quant',
      recipe: chosen.name,
      average_bits_per_weight: chosen.report.averageBitsPerWeight,
      online_transforms: onlineTransforms,
      ...(onlineTransforms.length > 0 ? { online_transforms_note: 'each listed layer multiplies its input by the described transform before its weight (x -> x H); runtimes that ignore this produce wrong outputs' } : {}),
    };
    files.push({ name: 'model.safetensors', bytes: bytes.slice().buffer }, { name: 'config.json', bytes: new TextEncoder().encode(`${JSON.stringify(modelConfig, null, 2)}\n`).buffer as ArrayBuffer });
    format = `fake-quant float32 (${why})`;
  }
  for (const name of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
    if (await folder.has(name)) files.push({ name, bytes: (await folder.readBytes(name)).slice().buffer });
  }
  post(
    {
      type: 'done',
      html,
      floatPerplexity: float.perplexity,
      runs: runs.map((r, k) => figures(r, results[k]!)),
      files,
      format,
      backend: backend.name,
      seconds: (performance.now() - started) / 1000,
    },
    files.map((f) => f.bytes),
  );
}

self.addEventListener('message', (event: MessageEvent<JobRequest>) => {
  if (event.data?.type !== 'run') return;
  run(event.data).catch((error: unknown) => post({ type: 'error', message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }));
});
