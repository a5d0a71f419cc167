const MARKER = Symbol.for('bitsmith.error');

/**
 * Base class of every error bitsmith throws. Carries a `Symbol.for('bitsmith.error')` marker so that
 * `BitsmithError.isInstance(e)` works across duplicated package copies and realms.
 *
 * @example
 * ```ts
 * try { quantize(w, spec); } catch (e) { if (BitsmithError.isInstance(e)) console.error(e.code, e.message); }
 * ```
 */
export class BitsmithError extends Error {
  /** Stable machine-readable code of the error class, for example `'invalid-argument'`. */
  readonly code: string;
  private readonly [MARKER] = true;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BitsmithError';
    this.code = code;
  }

  /** True when `error` is any bitsmith error (checked by marker, not by prototype). */
  static isInstance(error: unknown): error is BitsmithError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[MARKER] === true;
  }
}

function hasCode(error: unknown, code: string): boolean {
  return BitsmithError.isInstance(error) && error.code === code;
}

/** An argument has a value outside what the function accepts; the message names the argument and what was expected. */
export class InvalidArgumentError extends BitsmithError {
  /** Name of the offending argument or option, for example `'groupSize'`. */
  readonly argument: string;
  constructor(argument: string, message: string, options?: { cause?: unknown }) {
    super('invalid-argument', `${argument}: ${message}`, options);
    this.name = 'InvalidArgumentError';
    this.argument = argument;
  }
  /** True when `error` is an {@link InvalidArgumentError}. */
  static override isInstance(error: unknown): error is InvalidArgumentError {
    return hasCode(error, 'invalid-argument');
  }
}

/** Two shapes that must agree do not; the message gives both. */
export class ShapeMismatchError extends BitsmithError {
  /** The shape that was expected. */
  readonly expected: readonly number[];
  /** The shape that was given. */
  readonly actual: readonly number[];
  constructor(what: string, expected: readonly number[], actual: readonly number[], detail = '') {
    super(
      'shape-mismatch',
      `${what}: expected shape [${expected.join(', ')}], got [${actual.join(', ')}]${detail ? ` (${detail})` : ''}`,
    );
    this.name = 'ShapeMismatchError';
    this.expected = expected;
    this.actual = actual;
  }
  /** True when `error` is a {@link ShapeMismatchError}. */
  static override isInstance(error: unknown): error is ShapeMismatchError {
    return hasCode(error, 'shape-mismatch');
  }
}

/** A number format, granularity or file layout is not supported by the function it was given to. */
export class UnsupportedFormatError extends BitsmithError {
  constructor(message: string) {
    super('unsupported-format', message);
    this.name = 'UnsupportedFormatError';
  }
  /** True when `error` is an {@link UnsupportedFormatError}. */
  static override isInstance(error: unknown): error is UnsupportedFormatError {
    return hasCode(error, 'unsupported-format');
  }
}

/** A numerical method failed (a matrix is not positive definite, an iteration did not converge, a NaN appeared). */
export class NumericalError extends BitsmithError {
  /** A suggested remedy, for example the dampening to add; absent when none is known. */
  readonly suggestion?: string;
  constructor(message: string, suggestion?: string) {
    super('numerical', suggestion ? `${message}; ${suggestion}` : message);
    this.name = 'NumericalError';
    if (suggestion !== undefined) this.suggestion = suggestion;
  }
  /** True when `error` is a {@link NumericalError}. */
  static override isInstance(error: unknown): error is NumericalError {
    return hasCode(error, 'numerical');
  }
}

/** Work was cancelled through an `AbortSignal`. */
export class AbortError extends BitsmithError {
  constructor(message = 'the operation was aborted') {
    super('aborted', message);
    this.name = 'AbortError';
  }
  /** True when `error` is an {@link AbortError}. */
  static override isInstance(error: unknown): error is AbortError {
    return hasCode(error, 'aborted');
  }
}

/**
 * A step returned a stored form that does not decode to the weight it returned (or no stored form where one is
 * required). Names the step and the layer.
 */
export class StoredFormMismatchError extends BitsmithError {
  /** Id of the step that returned the layer. */
  readonly step: string;
  /** Full name of the layer. */
  readonly layer: string;
  constructor(step: string, layer: string, detail: string) {
    super('stored-form-mismatch', `step '${step}', layer '${layer}': ${detail}`);
    this.name = 'StoredFormMismatchError';
    this.step = step;
    this.layer = layer;
  }
  /** True when `error` is a {@link StoredFormMismatchError}. */
  static override isInstance(error: unknown): error is StoredFormMismatchError {
    return hasCode(error, 'stored-form-mismatch');
  }
}

/**
 * An exporter was given a stored form it cannot write (a vector codebook for a grid-only format, a low-rank branch a
 * format has no place for, float zero points where a format stores integers, ...). Thrown before any work; names the
 * exporter, the kind and the layer (or, when refused from a recipe before running it, the step that would produce it).
 */
export class StoredFormRefusedError extends BitsmithError {
  /** The exporter, for example `onnx`. */
  readonly exporter: string;
  /** The refused stored kind, for example `codebook` or `low-rank(grid)`. */
  readonly kind: string;
  /** The first refused layer, when known. */
  readonly layer?: string;
  /** The step that produces the refused kind, when refused from a recipe. */
  readonly step?: string;
  constructor(exporter: string, where: { readonly layer?: string; readonly step?: string }, kind: string, reason: string) {
    const subject = where.layer !== undefined ? `layer '${where.layer}'` : `the layers of step '${where.step ?? '?'}'`;
    super('stored-form-refused', `${exporter} cannot write ${subject} stored as ${kind}: ${reason}`);
    this.name = 'StoredFormRefusedError';
    this.exporter = exporter;
    this.kind = kind;
    if (where.layer !== undefined) this.layer = where.layer;
    if (where.step !== undefined) this.step = where.step;
  }
  /** True when `error` is a {@link StoredFormRefusedError}. */
  static override isInstance(error: unknown): error is StoredFormRefusedError {
    return hasCode(error, 'stored-form-refused');
  }
}

/**
 * An exporter was asked to write a model whose recipe quantizes activations or the key/value cache in a way the
 * format cannot express (a per-channel static input scale for compressed-tensors, an int8 KV cache for vLLM, an online
 * Hadamard, ...). Thrown before any work; names the exporter, the recipe field and why.
 */
export class ActivationSchemeRefusedError extends BitsmithError {
  /** The exporter, for example `compressed-tensors`. */
  readonly exporter: string;
  /** The refused recipe field: `inputActivations`, `kvCache`, `outputActivations` or `onlineTransforms`. */
  readonly field: string;
  constructor(exporter: string, field: string, reason: string) {
    super('activation-scheme-refused', `${exporter} cannot express the recipe's ${field}: ${reason}`);
    this.name = 'ActivationSchemeRefusedError';
    this.exporter = exporter;
    this.field = field;
  }
  /** True when `error` is an {@link ActivationSchemeRefusedError}. */
  static override isInstance(error: unknown): error is ActivationSchemeRefusedError {
    return hasCode(error, 'activation-scheme-refused');
  }
}

/**
 * A step implements another version of the step contract than the runner supports (see `Quantizer.specificationVersion`).
 * Names the step, the version it declares (`'none'` when it declares none: the first, unversioned contract) and the
 * supported one, as vercel/ai refuses a model of another specification version.
 */
export class UnsupportedSpecificationVersionError extends BitsmithError {
  /** Id of the refused step. */
  readonly step: string;
  /** The version the step declares, or `'none'`. */
  readonly version: string;
  /** The version the runner supports, for example `'v2'`. */
  readonly supported: string;
  constructor(step: string, version: string, supported: string) {
    super(
      'unsupported-specification-version',
      `step '${step}' implements step contract ${version === 'none' ? 'none (it declares no specificationVersion)' : `'${version}'`}; this runner supports '${supported}' (steps return new states and model edits, never write through views)`,
    );
    this.name = 'UnsupportedSpecificationVersionError';
    this.step = step;
    this.version = version;
    this.supported = supported;
  }
  /** True when `error` is an {@link UnsupportedSpecificationVersionError}. */
  static override isInstance(error: unknown): error is UnsupportedSpecificationVersionError {
    return hasCode(error, 'unsupported-specification-version');
  }
}

/**
 * A step broke the model-edit contract: it wrote into a view of the model it was handed (a norm's weight, a linear's
 * weight or bias) instead of returning a model edit, or returned an edit the runner cannot apply (an unknown target,
 * a wrong length). Names the step and the tensor.
 */
export class ModelEditError extends BitsmithError {
  /** Id of the step. */
  readonly step: string;
  /** Name of the tensor, for example `model.layers.0.input_layernorm.weight`. */
  readonly tensor: string;
  constructor(step: string, tensor: string, detail: string) {
    super('model-edit', `step '${step}', tensor '${tensor}': ${detail}`);
    this.name = 'ModelEditError';
    this.step = step;
    this.tensor = tensor;
  }
  /** True when `error` is a {@link ModelEditError}. */
  static override isInstance(error: unknown): error is ModelEditError {
    return hasCode(error, 'model-edit');
  }
}

/**
 * A model lacks a capability that an operation needs: for example a residual rotation, an LM-head quantization or a
 * perplexity on a model without a language-model head (an encoder, which has blocks only). Names what needed it, the
 * capability and what was expected.
 */
export class MissingCapabilityError extends BitsmithError {
  /** What needed the capability, for example `'rotateModel with residual: true'`. */
  readonly consumer: string;
  /** The missing capability, for example `'language-model-head'` or `'logits'`. */
  readonly capability: string;
  constructor(consumer: string, capability: string, expected: string) {
    super('missing-capability', `${consumer} needs the model's ${capability} capability: expected ${expected}`);
    this.name = 'MissingCapabilityError';
    this.consumer = consumer;
    this.capability = capability;
  }
  /** True when `error` is a {@link MissingCapabilityError}. */
  static override isInstance(error: unknown): error is MissingCapabilityError {
    return hasCode(error, 'missing-capability');
  }
}
