// The messages between the page (main.ts) and the quantization worker (worker.ts).

/** The recipes the page offers, each written as code from the algorithm packages' factories. */
export const RECIPES = {
  'gptq-w4g32': 'GPTQ int4, groups of 32 (calibrated)',
  'gptq-w3g32': 'GPTQ int3, groups of 32 (calibrated)',
  'hqq-w4g32': 'HQQ int4, groups of 32 (data-free)',
  'rtn-w4g32': 'round-to-nearest int4, groups of 32 (data-free)',
} as const;

/** A recipe the page offers. */
export type RecipeName = keyof typeof RECIPES;

/** Where the model's files come from: files the user dropped or picked, or a folder served next to the page. */
export type ModelInput = { readonly kind: 'files'; readonly files: readonly File[] } | { readonly kind: 'url'; readonly url: string };

/** What the page asks the worker to do. */
export interface JobRequest {
  readonly type: 'run';
  readonly model: ModelInput;
  readonly recipe: RecipeName;
  /** Also quantize with round-to-nearest at the same setting and compare (the report shows both). */
  readonly compareWithRtn: boolean;
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
      /** The quantized model: compressed-tensors pack-quantized `model.safetensors`, `config.json`, tokenizer files. */
      readonly files: readonly OutputFile[];
      readonly backend: string;
      readonly seconds: number;
    }
  | { readonly type: 'error'; readonly message: string };
