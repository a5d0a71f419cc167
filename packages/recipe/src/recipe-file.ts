import { BitsmithError, describeIssue, parseFormat, problemText, validateActivationScheme, type ActivationGranularity, type ActivationScheme } from '@bitsmith/core';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { CacheActivationScheme, Recipe, RecipeKvCacheScheme, RecipeStage } from './recipe-types.js';
import { checkSelectors } from './selector.js';
import type { StepRegistry } from '@bitsmith/core';

/** A recipe file is invalid; the message names the file, the step and the field, and what is allowed. */
export class RecipeFileError extends BitsmithError {
  readonly file: string;
  constructor(file: string, message: string) {
    super('invalid-recipe', `${file}: ${message}`);
    this.name = 'RecipeFileError';
    this.file = file;
  }
  /** True when `error` is a {@link RecipeFileError}. */
  static override isInstance(error: unknown): error is RecipeFileError {
    return BitsmithError.isInstance(error) && error.code === 'invalid-recipe';
  }
}

const selectorList = z.array(z.string()).optional();

/** The options schema of an activation scheme in a recipe file, with the granularities given. */
function activationSchemeOptionsWith<const G extends readonly [string, ...string[]]>(granularities: G) {
  return z
    .strictObject({
      format: z.string(),
      granularity: z.enum(granularities).optional(),
      groupSize: z.number().int().positive().optional(),
      dynamic: z.boolean().optional(),
      observer: z.enum(['minmax', 'percentile', 'mse']).optional(),
      percentile: z.number().gt(0).max(100).optional(),
    })
    .refine((o) => o.granularity === undefined || o.groupSize === undefined, { message: 'give either granularity or groupSize, not both' })
    .refine((o) => o.granularity !== undefined || o.groupSize !== undefined, { message: `needs granularity (${granularities.join(', ')}) or groupSize` });
}

/**
 * An activation scheme as a recipe file writes it: `format` (a core format name: int8, int4, int8-asym, fp8-e4m3,
 * mxfp4, nvfp4, ...), `granularity` (`tensor`, `token` or `channel`) or `groupSize`, `dynamic` (default: true for
 * token and group granularity, false otherwise), and for static schemes `observer` (minmax, percentile, mse) and
 * `percentile`.
 */
export const activationSchemeOptions = activationSchemeOptionsWith(['tensor', 'token', 'channel']);

/** Turns parsed file options into core's {@link ActivationScheme} (throws core's errors on an invalid scheme). */
export function toActivationScheme(options: z.infer<typeof activationSchemeOptions>): ActivationScheme {
  const granularity: ActivationGranularity = options.groupSize !== undefined ? { type: 'group', size: options.groupSize } : { type: options.granularity! };
  const scheme: ActivationScheme = {
    format: parseFormat(options.format),
    granularity,
    dynamic: options.dynamic ?? (granularity.type === 'token' || granularity.type === 'group'),
    ...(options.observer ? { observer: options.observer } : {}),
    ...(options.percentile !== undefined ? { percentile: options.percentile } : {}),
  };
  validateActivationScheme(scheme);
  return scheme;
}

/** A KV-cache scheme as a recipe file writes it: `keys` and `values` activation schemes (granularity may be `head`). */
export const kvCacheOptions = z
  .strictObject({
    keys: activationSchemeOptionsWith(['tensor', 'token', 'channel', 'head']).optional(),
    values: activationSchemeOptionsWith(['tensor', 'token', 'channel', 'head']).optional(),
    hadamard: z.boolean().optional(),
    preRopeKeys: z.boolean().optional(),
  })
  .refine((o) => o.keys !== undefined || o.values !== undefined, { message: 'needs keys, values or both' });

/** Turns parsed file options into a recipe's KV-cache scheme (per-head granularity is resolved per model). */
export function toKvCacheScheme(options: z.infer<typeof kvCacheOptions>): RecipeKvCacheScheme {
  const cache = (o: z.infer<typeof kvCacheOptions>['keys'], field: string): CacheActivationScheme | undefined => {
    if (!o) return undefined;
    const granularity = o.groupSize !== undefined ? ({ type: 'group', size: o.groupSize } as const) : ({ type: o.granularity! } as { type: 'tensor' | 'token' | 'channel' | 'head' });
    const dynamic = o.dynamic ?? ['token', 'group', 'head'].includes(granularity.type);
    const scheme: CacheActivationScheme = {
      format: parseFormat(o.format),
      granularity,
      dynamic,
      ...(o.observer ? { observer: o.observer } : {}),
      ...(o.percentile !== undefined ? { percentile: o.percentile } : {}),
    };
    // Validate with a stand-in head dimension of the group size (the real one is checked against the model).
    const stand = granularity.type === 'head' ? { ...scheme, granularity: { type: 'token' as const } } : (scheme as ActivationScheme);
    try {
      validateActivationScheme(stand);
    } catch (e) {
      throw new Error(`${field}: ${(e as Error).message}`);
    }
    return scheme;
  };
  const keys = cache(options.keys, 'keys');
  const values = cache(options.values, 'values');
  return {
    ...(keys ? { keys } : {}),
    ...(values ? { values } : {}),
    ...(options.hadamard !== undefined ? { hadamard: options.hadamard } : {}),
    ...(options.preRopeKeys !== undefined ? { preRopeKeys: options.preRopeKeys } : {}),
  };
}

const fileSchema = z.strictObject({
  name: z.string().optional(),
  description: z.string().optional(),
  targets: selectorList,
  ignore: selectorList,
  inputActivations: activationSchemeOptions.optional(),
  kvCache: kvCacheOptions.optional(),
  steps: z.array(z.record(z.string(), z.unknown())),
}).refine((d) => d.steps.length > 0 || d.inputActivations !== undefined || d.kvCache !== undefined, {
  message: 'steps: a recipe needs at least one step (or inputActivations / kvCache alone, to quantize only activations or the KV cache)',
  path: ['steps'],
});

/** The parsed, validated content of a recipe file (plain data, before steps are created). */
export interface RecipeDocument {
  readonly name?: string;
  readonly description?: string;
  readonly targets?: string[];
  readonly ignore?: string[];
  readonly inputActivations?: z.infer<typeof activationSchemeOptions>;
  readonly kvCache?: z.infer<typeof kvCacheOptions>;
  readonly steps: ReadonlyArray<Record<string, unknown>>;
}

/** Words a schema's issues as core's `describeIssue` does for step factories, so a file and code read the same. */
function describeIssues(issues: readonly z.core.$ZodIssue[], schema: z.ZodType): string {
  return issues.flatMap((issue) => describeIssue(issue, schema)).map(problemText).join('; ');
}

/**
 * Parses a recipe from YAML or JSON text and creates its steps through a registry. Every step is written as a map
 * with one key, the step name, whose value holds the step's options plus the reserved keys `targets`, `ignore` and
 * `overrides` (a list of `{ targets, ...options }` merged over the step's options for matching layers).
 *
 * ```yaml
 * name: gptq-w4g32
 * ignore: [lm_head]
 * steps:
 *   - gptq: { bits: 4, groupSize: 32, overrides: [{ targets: ["re:.*down_proj"], bits: 8 }] }
 * ```
 *
 * @param file Name used in error messages.
 * @throws RecipeFileError naming the file, the step and the field.
 */
export function parseRecipe(text: string, registry: StepRegistry, file = 'recipe'): Recipe {
  let raw: unknown;
  try {
    raw = text.trimStart().startsWith('{') ? JSON.parse(text) : parseYaml(text);
  } catch (cause) {
    throw new RecipeFileError(file, `is not valid YAML or JSON: ${(cause as Error).message}`);
  }
  if (raw !== null && typeof raw === 'object' && 'outputActivations' in raw) {
    // Named on purpose (compressed-tensors has the field): a linear's output is the next op's input, which
    // inputActivations (linears) and kvCache (keys and values) already quantize where a runtime rounds it.
    throw new RecipeFileError(
      file,
      'outputActivations: quantizing a linear layer\'s output is not supported: no runtime bitsmith exports to rounds it there (vLLM and compressed-tensors presets leave output_activations null); ' +
        'quantize what consumes it instead, with inputActivations (the next linear\'s input) or kvCache (the keys and values k_proj / v_proj produce)',
    );
  }
  const doc = fileSchema.safeParse(raw);
  if (!doc.success) throw new RecipeFileError(file, describeIssues(doc.error.issues, fileSchema));
  const { name, targets, ignore, steps } = doc.data;
  let inputActivations: ActivationScheme | undefined;
  if (doc.data.inputActivations) {
    try {
      inputActivations = toActivationScheme(doc.data.inputActivations);
    } catch (e) {
      throw new RecipeFileError(file, `inputActivations: ${(e as Error).message}`);
    }
  }
  let kvCache: RecipeKvCacheScheme | undefined;
  if (doc.data.kvCache) {
    try {
      kvCache = toKvCacheScheme(doc.data.kvCache);
    } catch (e) {
      throw new RecipeFileError(file, `kvCache.${(e as Error).message}`);
    }
  }
  try {
    checkSelectors([...(targets ?? []), ...(ignore ?? [])]);
  } catch (e) {
    throw new RecipeFileError(file, (e as Error).message);
  }
  const available = Object.keys(registry).join(', ');
  const stages: RecipeStage[] = steps.map((entry, index) => {
    const keys = Object.keys(entry);
    if (keys.length !== 1) throw new RecipeFileError(file, `steps[${index}]: expected one key naming the step (one of ${available}), got ${keys.length ? keys.join(', ') : 'none'}`);
    const stepName = keys[0]!;
    const definition = registry[stepName];
    if (!definition) throw new RecipeFileError(file, `steps[${index}]: unknown step '${stepName}'; available: ${available}`);
    const where = `steps[${index}] (${stepName})`;
    const value = entry[stepName] ?? {};
    if (typeof value !== 'object' || Array.isArray(value)) throw new RecipeFileError(file, `${where}: expected a map of options`);
    const { targets: stepTargets, ignore: stepIgnore, overrides, ...options } = value as Record<string, unknown>;
    const selectors = z.array(z.string()).optional();
    const checkList = (v: unknown, field: string): string[] | undefined => {
      const parsed = selectors.safeParse(v);
      if (!parsed.success) throw new RecipeFileError(file, `${where}: ${field}: expected a list of layer names or re: patterns`);
      try {
        checkSelectors(parsed.data ?? []);
      } catch (e) {
        throw new RecipeFileError(file, `${where}: ${field}: ${(e as Error).message}`);
      }
      return parsed.data;
    };
    const create = (opts: Record<string, unknown>, context: string) => {
      const parsed = definition.options.safeParse(opts);
      if (!parsed.success) throw new RecipeFileError(file, `${context}: ${describeIssues(parsed.error.issues, definition.options)}`);
      try {
        return definition.create(parsed.data);
      } catch (e) {
        throw new RecipeFileError(file, `${context}: ${(e as Error).message}`);
      }
    };
    const stage: { -readonly [K in keyof RecipeStage]: RecipeStage[K] } = { step: create(options, where) };
    const t = checkList(stepTargets, 'targets');
    const ig = checkList(stepIgnore, 'ignore');
    if (t) stage.targets = t;
    if (ig) stage.ignore = ig;
    if (overrides !== undefined) {
      if (!Array.isArray(overrides)) throw new RecipeFileError(file, `${where}: overrides: expected a list of { targets, ...options }`);
      stage.overrides = overrides.map((o, k) => {
        if (typeof o !== 'object' || o === null) throw new RecipeFileError(file, `${where}: overrides[${k}]: expected a map`);
        const { targets: ot, ...rest } = o as Record<string, unknown>;
        const list = checkList(ot, `overrides[${k}].targets`);
        if (!list || list.length === 0) throw new RecipeFileError(file, `${where}: overrides[${k}]: needs targets`);
        return { targets: list, step: create({ ...options, ...rest }, `${where}: overrides[${k}]`) };
      });
    }
    return stage;
  });
  return { ...(name ? { name } : {}), ...(targets ? { targets } : {}), ...(ignore ? { ignore } : {}), ...(inputActivations ? { inputActivations } : {}), ...(kvCache ? { kvCache } : {}), stages };
}
