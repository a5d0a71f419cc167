import type { ActivationGranularity, ActivationScheme, KvCacheScheme, Quantizer, StepKind, StepWarning } from '@bitsmith/core';

/** An activation scheme for the KV cache as a recipe writes it: `{ type: 'head' }` is per token and attention head. */
export type CacheActivationScheme = Omit<ActivationScheme, 'granularity'> & { readonly granularity: ActivationGranularity | { readonly type: 'head' } };

/** The KV-cache scheme of a recipe (core's {@link KvCacheScheme} with per-head granularity resolved per model). */
export type RecipeKvCacheScheme = Omit<KvCacheScheme, 'keys' | 'values'> & { readonly keys?: CacheActivationScheme; readonly values?: CacheActivationScheme };
import type { LayerSelector } from './selector.js';

/** One step of a recipe, with the layers it applies to. */
export interface RecipeStage {
  readonly step: Quantizer;
  /** Layers the step applies to. Default: the recipe's `targets`, else every linear layer of every block. */
  readonly targets?: readonly LayerSelector[];
  /** Layers to leave alone. Default: the recipe's `ignore`. */
  readonly ignore?: readonly LayerSelector[];
  /** Per-layer overrides: layers matching `targets` run `step` instead of the stage's step. First match wins. */
  readonly overrides?: readonly { readonly targets: readonly LayerSelector[]; readonly step: Quantizer }[];
}

/** A recipe: steps in order, with default layer selection. Steps are quantizers from any bitsmith package. */
export interface Recipe {
  readonly name?: string;
  readonly stages: readonly RecipeStage[];
  readonly targets?: readonly LayerSelector[];
  readonly ignore?: readonly LayerSelector[];
  /**
   * How the selected layers' inputs are quantized at run time (W8A8, FP8, W4A4, ...). The runner installs the
   * quantizers block by block once the block's weights are final, calibrating static scales on the block's
   * calibration input, so that propagation, evaluation and exports see the model as it would run. The LM head is
   * never included. Default: activations stay in float.
   */
  readonly inputActivations?: ActivationScheme;
  /**
   * How the attention's keys and values are quantized at run time (KV8, KV4, FP8; per token, per head, or static per
   * channel for keys; optional Hadamard and pre-RoPE keys). Installed per block like `inputActivations`.
   */
  readonly kvCache?: RecipeKvCacheScheme;
}

/**
 * What the runner reports while it works. `elapsedSeconds` counts from the start of the run (including the time of
 * an earlier, interrupted process when resuming); `etaSeconds` is the estimated time left in the whole run and
 * `blockEtaSeconds` in the block in hand (mean seconds of the blocks finished in this process; absent until the first
 * block finished).
 */
export type RecipeProgressEvent =
  | { readonly type: 'model-step'; readonly step: string; readonly index: number; readonly total: number }
  /** Progress inside a model-level step (a learned rotation's iterations); `etaSeconds` extrapolates the step's rate. */
  | { readonly type: 'model-step-progress'; readonly step: string; readonly done: number; readonly total: number; readonly message?: string; readonly elapsedSeconds: number; readonly etaSeconds?: number }
  | { readonly type: 'resumed'; readonly nextBlock: number; readonly totalBlocks: number; readonly elapsedSeconds: number }
  | { readonly type: 'block-start'; readonly block: number; readonly totalBlocks: number; readonly elapsedSeconds: number; readonly etaSeconds?: number }
  | {
      readonly type: 'step';
      readonly block: number;
      readonly totalBlocks: number;
      readonly step: string;
      readonly done: number;
      readonly total: number;
      readonly layer?: string;
      readonly elapsedSeconds: number;
      readonly etaSeconds?: number;
      readonly blockEtaSeconds?: number;
    }
  | { readonly type: 'block-done'; readonly block: number; readonly totalBlocks: number; readonly seconds: number; readonly elapsedSeconds: number; readonly etaSeconds: number }
  | { readonly type: 'checkpoint'; readonly block: number; readonly totalBlocks: number; readonly seconds: number; readonly bytes?: number };

/** Per-layer result. */
export interface LayerReport {
  readonly name: string;
  readonly block: number;
  /** Storage bits per weight of the final form (16 when no step quantized the layer: float16 storage). */
  readonly bitsPerWeight: number;
  /** `||X W^T - X Q^T||_F / ||X W^T||_F` on the calibration inputs, W the float weight entering the first quantize step. */
  readonly outputError: number;
  /** The final stored form's kind, for example `grid` or `low-rank(grid)`; absent for layers no step quantized. */
  readonly stored?: string;
  /** Ids of the steps that changed the layer. */
  readonly steps: readonly string[];
  /** Seconds spent in steps on this layer's block, split evenly is not attempted: time of the steps that touched it. */
  readonly seconds: number;
}

/** Per-step result, summed over blocks. */
export interface StepReport {
  readonly id: string;
  readonly kind: StepKind;
  readonly seconds: number;
  readonly warnings: readonly StepWarning[];
}

/** The typed report of a run. */
export interface RecipeReport {
  readonly recipe: string;
  readonly protocol: { readonly sequences: number; readonly tokens: number; readonly maxSequenceLength: number };
  readonly layers: readonly LayerReport[];
  readonly steps: readonly StepReport[];
  /** Weighted by layer size over the selected layers that were quantized. */
  readonly averageBitsPerWeight: number;
  /** Wall seconds of the run (of every process that worked on it, when resumed). */
  readonly seconds: number;
  /** Blocks this process restored from a checkpoint instead of computing them (absent when the run did not resume). */
  readonly resumedBlocks?: number;
}
