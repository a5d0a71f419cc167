// The messages between the page (main.ts) and the quantization worker (worker.ts).

/** Recipe files the page offers (the repository's examples/recipes, inlined by the build), each with its baseline. */
export const PRESETS = [
  { file: 'gptq-w4g32', label: 'GPTQ int4, groups of 32 (calibrated)', baseline: 'rtn-w4g32' },
  { file: 'gptq-w3g32', label: 'GPTQ int3, groups of 32 (calibrated)', baseline: 'rtn-w3g32' },
  { file: 'awq-gptq-w4g32', label: 'AWQ + GPTQ int4, groups of 32 (calibrated)', baseline: 'rtn-w4g32' },
  { file: 'hqq-w4g32', label: 'HQQ int4, groups of 32 (data-free)', baseline: 'rtn-w4g32' },
  { file: 'rtn-w4g32', label: 'round-to-nearest int4, groups of 32 (data-free)', baseline: undefined },
] as const;

/** A recipe file: its name and YAML (or JSON) text, as `parseRecipe` reads it. */
export interface RecipeText {
  readonly name: string;
  readonly text: string;
}

/** Where the model's files come from: files the user dropped or picked, or a folder served next to the page. */
export type ModelInput = { readonly kind: 'files'; readonly files: readonly File[] } | { readonly kind: 'url'; readonly url: string };

/** What the page asks the worker to do. */
export interface JobRequest {
  readonly type: 'run';
  readonly model: ModelInput;
  readonly recipe: RecipeText;
  /** A second recipe to run and compare with (the report shows both), typically round-to-nearest at the same setting. */
  readonly baseline?: RecipeText;
  readonly calibrationText: string;
  readonly evaluationText: string;
  /** Calibration sequences and their length (BOS included). */
  readonly samples: number;
  readonly sequenceLength: number;
}

/** The figures of one quantized model on the evaluation text. */
export interface RunFigures {
  readonly recipe: string;
  readonly averageBitsPerWeight: number;
  readonly perplexity: number;
  readonly kl: number;
  readonly top1Agreement: number;
  /** Mean of the layers' relative output errors on the calibration inputs. */
  readonly meanOutputError: number;
}

/** A file the page offers for download. */
export interface OutputFile {
  readonly name: string;
  readonly bytes: ArrayBuffer;
}

/** What the worker reports. */
export type JobEvent =
  | { readonly type: 'progress'; readonly fraction: number; readonly message: string; readonly etaSeconds?: number }
  | {
      readonly type: 'done';
      /** The report, a self-contained HTML page. */
      readonly html: string;
      readonly floatPerplexity: number;
      readonly runs: readonly RunFigures[];
      /**
       * The quantized model: `model.safetensors` (compressed-tensors pack-quantized where every layer is a plain grid
       * and no run-time transform is needed, else fake-quant float32), `config.json`, the tokenizer files.
       */
      readonly files: readonly OutputFile[];
      /** `'compressed-tensors'` or `'fake-quant'`, and why when fake-quant. */
      readonly format: string;
      readonly backend: string;
      readonly seconds: number;
    }
  | { readonly type: 'error'; readonly message: string };
