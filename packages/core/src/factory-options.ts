import { z } from 'zod';
import { validateActivationScheme, type ActivationScheme } from './activation-quantization.js';
import { InvalidArgumentError } from './errors.js';
import type { Granularity } from './granularity.js';
import { elementCodec, parseFormat, type FormatSpec } from './number-format.js';
import type { ScaleEncoding } from './quantized-tensor.js';

/**
 * A format name as `parseFormat` reads it (`int4`, `int3-asym`, `nf4`, `fp8-e4m3`, `mxfp4`, ...). Recipe files and
 * factories share it, so a wrong name gives the same message from both.
 */
export const formatNameOption = z.string().refine(
  (name) => {
    try {
      parseFormat(name);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'unknown format; expected a name such as int4, int3-asym, nf4, fp4-e2m1, fp8-e4m3, mxfp4, nvfp4, ternary' },
);

const minifloatFields = {
  name: z.string().optional(),
  exponentBits: z.number().int().min(1),
  mantissaBits: z.number().int().min(0),
  bias: z.number().int().optional(),
  specials: z.enum(['ieee', 'nan-only', 'none']),
  subnormals: z.boolean().optional(),
};

/**
 * A {@link FormatSpec} object as code passes it (`{ type: 'int', bits: 4, symmetric: true }`, `parseFormat('nf4')`,
 * ...): the shape of its type, then whatever `elementCodec` refuses (bit widths, lookup tables, MX elements).
 */
export const formatSpecOption: z.ZodType<FormatSpec> = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('int'), bits: z.number(), symmetric: z.boolean() }),
    z.object({ type: z.literal('float'), ...minifloatFields }),
    z.object({ type: z.literal('lut'), values: z.array(z.number()), name: z.string().optional() }),
    z.object({ type: z.literal('nf4') }),
    z.object({ type: z.literal('ternary') }),
    z.object({ type: z.literal('binary') }),
    z.object({ type: z.literal('mx'), element: z.enum(['fp8-e4m3', 'fp8-e5m2', 'fp6-e2m3', 'fp6-e3m2', 'fp4-e2m1', 'int8']) }),
    z.object({ type: z.literal('nvfp4') }),
  ], {
    error: (issue) =>
      issue.code === 'invalid_union' && typeof issue.input === 'object' && issue.input !== null
        ? `expected a FormatSpec object with type int, float, lut, nf4, ternary, binary, mx or nvfp4 (such as { type: 'int', bits: 4, symmetric: true }); got type ${JSON.stringify((issue.input as { type?: unknown }).type)}`
        : undefined,
  })
  .superRefine((spec, context) => {
    try {
      elementCodec(spec as FormatSpec);
    } catch (e) {
      context.addIssue({ code: 'custom', message: (e as Error).message });
    }
  }) as unknown as z.ZodType<FormatSpec>;

/**
 * The `format` option of a factory: a format name ({@link formatNameOption}) or a {@link FormatSpec} object
 * ({@link formatSpecOption}), each checked by its own schema so the message is about the form that was given.
 */
export const formatOption: z.ZodType<FormatSpec | string> = z.unknown().superRefine((value, context) => {
  if (value === undefined) {
    context.addIssue({ code: 'custom', message: 'missing; expected a format name such as int4 or nf4, or a FormatSpec object' });
    return;
  }
  const schema = typeof value === 'string' ? formatNameOption : typeof value === 'object' && value !== null && !Array.isArray(value) ? formatSpecOption : undefined;
  if (!schema) {
    context.addIssue({ code: 'custom', message: `expected a format name such as int4 or nf4, or a FormatSpec object such as { type: 'int', bits: 4, symmetric: true }; got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}` });
    return;
  }
  for (const issue of schema.safeParse(value).error?.issues ?? []) context.addIssue({ ...issue, input: value } as never);
}) as unknown as z.ZodType<FormatSpec | string>;

const positiveInteger = z.number().int().positive();

/**
 * A {@link Granularity} object: `{ type: 'tensor' }`, `{ type: 'channel' }`, `{ type: 'group', size }` or
 * `{ type: 'block', rows, columns }`. A string (`'channel'`) or a `groupSize` is a recipe-file shorthand and is
 * refused with a message that says how to write it in code.
 */
export const granularityOption: z.ZodType<Granularity> = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('tensor') }),
    z.strictObject({ type: z.literal('channel') }),
    z.strictObject({ type: z.literal('group'), size: positiveInteger }),
    z.strictObject({ type: z.literal('block'), rows: positiveInteger, columns: positiveInteger }),
  ],
  {
    error: (issue) =>
      typeof issue.input === 'string'
        ? `expected a granularity object such as { type: '${issue.input === 'tensor' ? 'tensor' : 'channel'}' } or { type: 'group', size: 32 }; got the string '${issue.input}' (a recipe-file shorthand)`
        : issue.code === 'invalid_union'
          ? "expected type 'tensor', 'channel', 'group' (with size) or 'block' (with rows and columns)"
          : undefined,
  },
) as unknown as z.ZodType<Granularity>;

/** How a factory stores scales ({@link ScaleEncoding}). */
export const scaleEncodingOption: z.ZodType<ScaleEncoding> = z.enum(['float32', 'float16', 'bfloat16', 'e8m0', 'e4m3']);

/** An activation scheme object as core's `validateActivationScheme` checks it (its own messages). */
export const activationSchemeOption: z.ZodType<ActivationScheme> = z
  .custom<ActivationScheme>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), { message: 'expected an activation scheme object { format, granularity, dynamic }' })
  .superRefine((scheme, context) => {
    try {
      validateActivationScheme(scheme);
    } catch (e) {
      context.addIssue({ code: 'custom', message: (e as Error).message });
    }
  });

/** A linear-algebra backend object (from `@bitsmith/linalg`'s `createBackend` / `defaultBackend`). */
export const backendOption = z.custom<object>((v) => typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string', {
  message: "expected a linalg Backend object (createBackend('js') from @bitsmith/linalg)",
});

/** An `AbortSignal` (checked by shape, so a signal of another realm passes). */
export const signalOption = z.custom<AbortSignal>((v) => typeof v === 'object' && v !== null && typeof (v as AbortSignal).aborted === 'boolean' && typeof (v as AbortSignal).addEventListener === 'function', {
  message: 'expected an AbortSignal (new AbortController().signal)',
});

/**
 * A callback option (`onPlan`, `progress`, ...).
 *
 * @example
 * ```ts
 * const shape = { onPlan: callbackOption<(plan: BitPlan) => void>().optional() };
 * ```
 */
export function callbackOption<F extends (...args: never[]) => unknown>(): z.ZodType<F> {
  return z.custom<F>((v) => typeof v === 'function', { message: 'expected a function' });
}

/** The zod schemas of a factory's options: one per option of `T`, none missing (the compiler checks it), none extra. */
export type FactoryOptionsShape<T> = { readonly [K in keyof T]-?: z.ZodType };

/**
 * The options schema of a step factory, from one zod schema per option of its options type `T`: a strict object,
 * so an unknown option is an error. Give `T` explicitly; TypeScript then refuses a shape that misses an option of
 * `T` or names one `T` lacks, so the schema cannot drift from the type. Reuse the recipe step's field schemas
 * (`dampening`, `rank`, ...) where the factory takes the same option, so both check it with the same words.
 *
 * @example
 * ```ts
 * const gptqOptionsSchema = factoryOptions<GptqOptions>({ format: formatOption, dampening: dampeningOption.optional(), ... });
 * ```
 */
export function factoryOptions<T>(shape: FactoryOptionsShape<T>): z.ZodType<T> {
  return z.strictObject(shape as Record<string, z.ZodType>) as unknown as z.ZodType<T>;
}

/** One option path and what is wrong with it, as {@link describeIssue} words it. */
export interface OptionProblem {
  /** The option's path: `dampening`, `rangeSearch.steps`, `candidates[1].format`, or `(top level)`. */
  readonly path: string;
  /** What is wrong and what was expected. */
  readonly message: string;
}

function pathText(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[');
}

type SchemaDef = { type: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType; options?: z.ZodType[]; in?: z.ZodType; element?: z.ZodType };

/** The keys the object schema(s) at `path` accept (for naming them beside an unknown key). */
function keysAt(schema: z.ZodType | undefined, path: readonly PropertyKey[]): string[] {
  if (!schema) return [];
  const def = (schema as unknown as { _zod: { def: SchemaDef } })._zod.def;
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'readonly':
    case 'nonoptional':
      return keysAt(def.innerType, path);
    case 'pipe':
      return keysAt(def.in, path);
    case 'union':
      return [...new Set((def.options ?? []).flatMap((o) => keysAt(o, path)))];
    case 'array':
      return typeof path[0] === 'number' ? keysAt(def.element, path.slice(1)) : [];
    case 'object':
      if (path.length === 0) return Object.keys(def.shape ?? {});
      return keysAt(def.shape?.[String(path[0])], path.slice(1));
    default:
      return [];
  }
}

/**
 * Words a zod issue as `path: what is wrong; what was expected`, one problem per unknown key. The recipe loader and
 * the step factories both use it, so a wrong option reads the same from a recipe file and from code. Give `schema`
 * (the one that was parsed) to list the accepted keys beside an unknown one.
 *
 * @example
 * ```ts
 * const result = schema.safeParse(options);
 * if (!result.success) console.error(result.error.issues.flatMap((i) => describeIssue(i, schema)).join('; '));
 * ```
 */
export function describeIssue(issue: z.core.$ZodIssue, schema?: z.ZodType): OptionProblem[] {
  const prefix = issue.path.length ? `${pathText(issue.path)}.` : '';
  if (issue.code === 'unrecognized_keys') {
    const accepted = keysAt(schema, issue.path);
    const expected = accepted.length ? `; expected one of ${accepted.join(', ')}` : '';
    return issue.keys.map((key) => ({ path: `${prefix}${key}`, message: `unknown option${expected}` }));
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && message.endsWith('received undefined')) message = `missing; expected ${issue.expected}`;
  else if (issue.code === 'invalid_union' && message === 'Invalid input' && issue.errors.length > 0) {
    const forms = issue.errors.map((branch) => branch.flatMap((i) => describeIssue(i).map((p) => (i.path.length ? `${p.path}: ${p.message}` : p.message))).join(', '));
    message = `matches none of the accepted forms (${[...new Set(forms)].join(' | ')})`;
  }
  return [{ path: pathText(issue.path) || '(top level)', message }];
}

/** `path: message`, the one-line form of an {@link OptionProblem}. */
export function problemText(problem: OptionProblem): string {
  return `${problem.path}: ${problem.message}`;
}

const SHORTHANDS: Record<string, string> = {
  bits: "format: 'int4'",
  symmetric: "format: 'int4' (symmetric) or 'int4-asym'",
  groupSize: "granularity: { type: 'group', size: 32 }",
};

/**
 * Validates the options a step factory was called with against its schema (see {@link factoryOptions}) and returns
 * them unchanged (functions, signals and backends pass through as given). From code without TypeScript, an unknown
 * key, a wrong type, a value out of range or a missing required option throws before any work, worded by
 * {@link describeIssue} as the recipe loader words the same mistake in a file; the recipe-file shorthands `bits`,
 * `symmetric` and `groupSize` (unknown to a factory) are explained.
 *
 * @throws InvalidArgumentError whose `argument` is the first wrong option's path and whose message names every
 *   problem and the step: `dampening: Too small: expected number to be >0 (in the options of gptq)`.
 * @example
 * ```ts
 * export function gptq(options: GptqOptions): Quantizer {
 *   checkOptions('gptq', gptqOptionsSchema, options);
 *   ...
 * }
 * ```
 */
export function checkOptions<T>(step: string, schema: z.ZodType<T>, options: T): T {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidArgumentError('options', `${step} expects an options object; got ${options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options}`);
  }
  const result = schema.safeParse(options);
  if (result.success) return options;
  // Unknown options first: a recipe-file shorthand (bits: 4) also leaves the required format missing.
  const issues = [...result.error.issues].sort((a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'));
  const problems = issues.flatMap((issue) => describeIssue(issue, schema));
  const [first, ...rest] = problems.map((p) => {
    const shorthand = SHORTHANDS[p.path];
    if (!shorthand || !p.message.startsWith('unknown option')) return p;
    return { ...p, message: `${p.message} (${p.path} is a recipe-file shorthand; in code write ${shorthand})` };
  });
  throw new InvalidArgumentError(first!.path, `${[first!.message, ...rest.map(problemText)].join('; ')} (in the options of ${step})`);
}
