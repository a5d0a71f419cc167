import { MissingCapabilityError } from './errors.js';
import type { HiddenStatesHandle, LinearView, NormView, QuantizableModel } from './model-view.js';
import type { Matrix } from './tensor.js';

/**
 * The language-model head capability of a model: the token embedding that writes the residual stream, the final norm
 * and the LM head that read it. A calibratable model needs only blocks and their linears ({@link ModelView},
 * {@link QuantizableModel}); a decoder language model (`llamaQuantizableModel` of `@bitsmith/models`) has this
 * capability too, an encoder (`tfjsQuantizableModel`) does not. Consumers that need it check it with
 * {@link hasLanguageModelHead} and skip their head-only part, or ask for it with {@link requireLanguageModelHead},
 * which throws {@link MissingCapabilityError}. The fields are writable in the same way as the views (rotations fold
 * into them).
 */
export interface LanguageModelHead {
  /** Token embedding table `[vocab, hidden]` (writable). */
  embedding: Matrix;
  /** The norm before the head. */
  readonly finalNorm: NormView;
  /** The LM head `[vocab, hidden]`. */
  readonly lmHead: LinearView;
  /**
   * Whether the LM head shares the embedding's storage. A transform that changes one but not the other must call
   * `untieEmbeddings()` first.
   */
  readonly tiedEmbeddings: boolean;
  /** Gives the LM head its own copy of the weight, so embedding and head can differ. */
  untieEmbeddings(): void;
}

/**
 * The head's forward pass, for a calibratable model that has a {@link LanguageModelHead}: the final norm and the LM
 * head on the last block's output.
 */
export interface LanguageModelLogits {
  /** Final norm and LM head: logits `[tokens, vocab]` of every position. */
  logits(hidden: HiddenStatesHandle): Promise<Matrix>;
}

/** A calibratable language model: blocks, the head's views and its forward pass (what `llamaQuantizableModel` returns). */
export type QuantizableLanguageModel = QuantizableModel & LanguageModelHead & LanguageModelLogits;

/**
 * Whether `model` has the {@link LanguageModelHead} capability (an embedding, a final norm, an LM head and
 * `untieEmbeddings`). Reads no field (getters are not called), so a lazily held head stays on disk.
 *
 * @example
 * ```ts
 * if (hasLanguageModelHead(model)) model.untieEmbeddings(); // else: an encoder, only blocks
 * ```
 */
export function hasLanguageModelHead<M extends object>(model: M): model is M & LanguageModelHead {
  return 'embedding' in model && 'finalNorm' in model && 'lmHead' in model && 'tiedEmbeddings' in model && typeof (model as { untieEmbeddings?: unknown }).untieEmbeddings === 'function';
}

/**
 * Whether `model` has the head's forward pass ({@link LanguageModelLogits}) as well as its views.
 *
 * @example
 * ```ts
 * if (hasLogits(model)) console.log((await model.logits(hidden)).shape); // [tokens, vocab]
 * ```
 */
export function hasLogits<M extends object>(model: M): model is M & LanguageModelHead & LanguageModelLogits {
  return hasLanguageModelHead(model) && typeof (model as { logits?: unknown }).logits === 'function';
}

function architectureOf(model: object): string {
  const architecture = (model as { architecture?: unknown }).architecture;
  return typeof architecture === 'string' ? architecture : 'the model';
}

/**
 * Returns `model` typed with its {@link LanguageModelHead}, or throws {@link MissingCapabilityError} naming `consumer`
 * (what needs the head) when the model has none (an encoder).
 *
 * @param consumer - What needs the head, for the message, for example `'rotateModel with residual: true'`.
 * @example
 * ```ts
 * const head = requireLanguageModelHead(model, 'rotateModel with residual: true');
 * head.lmHead.weight; // [vocab, hidden]
 * ```
 */
export function requireLanguageModelHead<M extends object>(model: M, consumer: string): M & LanguageModelHead {
  if (!hasLanguageModelHead(model)) {
    throw new MissingCapabilityError(consumer, 'language-model-head', `an embedding, a final norm, an LM head and untieEmbeddings(); ${architectureOf(model)} has blocks only`);
  }
  return model;
}

/**
 * Returns `model` typed with its head and {@link LanguageModelLogits}, or throws {@link MissingCapabilityError} naming
 * `consumer` when it cannot compute logits (an encoder).
 *
 * @example
 * ```ts
 * const logits = await requireLogits(model, 'klSensitivities').logits(hidden);
 * ```
 */
export function requireLogits<M extends object>(model: M, consumer: string): M & LanguageModelHead & LanguageModelLogits {
  if (!hasLogits(model)) {
    throw new MissingCapabilityError(consumer, 'logits', `a language-model head with logits(hidden) (final norm and LM head); ${architectureOf(model)} has ${hasLanguageModelHead(model) ? 'a head but no logits()' : 'blocks only'}`);
  }
  return model;
}
