import { z } from 'zod';
import { formatNameOption } from './factory-options.js';
import type { Granularity } from './granularity.js';
import { parseFormat, type FormatSpec } from './number-format.js';
import type { Quantizer } from './quantizer.js';

/**
 * How a recipe file names a step: its options schema (zod) and the factory that makes the quantizer. Each algorithm
 * package exports the definitions of its own steps beside the algorithm (`gptqStep` in `@bitsmith/solvers`, ...), so
 * every option reachable from code is reachable from a recipe file; a registry only assembles them.
 */
export interface StepDefinition<Options = any> {
  /** One line for `--help` and error messages. */
  readonly description: string;
  /** Validates the step's options as written in the file (use `z.strictObject` so unknown fields are errors). */
  readonly options: z.ZodType<Options>;
  /** Makes the quantizer from validated options. */
  readonly create: (options: Options) => Quantizer;
}

/** Step names usable in recipe files. Explicit: nothing registers itself; the CLI assembles the packages' definitions. */
export type StepRegistry = Readonly<Record<string, StepDefinition>>;

/**
 * Defines a step with typed options (an identity function that makes TypeScript infer `Options` from the schema).
 *
 * @example
 * ```ts
 * const myStep = defineStep({ description: 'mine: bits', options: quantizationOptions, create: (o) => rtn(resolveQuantization(o)) });
 * ```
 */
export function defineStep<Options>(definition: StepDefinition<Options>): StepDefinition<Options> {
  return definition;
}

/**
 * Drops the keys whose value is `undefined`, so optional recipe fields that were not written do not override a
 * factory's defaults (with `exactOptionalPropertyTypes`, `{ x: undefined }` is not `{}`).
 *
 * @example
 * ```ts
 * definedOptions({ a: 1, b: undefined }); // { a: 1 }
 * ```
 */
export function definedOptions<T extends Record<string, unknown>>(options: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

/**
 * The quantization options most steps share in recipe files: either `bits` (integers, `symmetric` default true) or a
 * `format` name (`int4`, `nf4`, `fp4-e2m1`, `mxfp4`, ... see core's `parseFormat`), and `groupSize` (absent: per
 * output channel) or an explicit `granularity`.
 */
export const quantizationOptions = z.strictObject({
  bits: z.number().int().min(1).max(8).optional(),
  symmetric: z.boolean().optional(),
  format: formatNameOption.optional(),
  groupSize: z.number().int().positive().optional(),
  granularity: z.enum(['tensor', 'channel']).optional(),
});

/** Parsed shared quantization options. */
export type QuantizationOptions = z.infer<typeof quantizationOptions>;

/**
 * Resolves shared quantization options to a core format and granularity; `bits` and `format` are exclusive, and so
 * are `groupSize` and `granularity`.
 *
 * @example
 * ```ts
 * resolveQuantization({ bits: 4, groupSize: 128 }); // { format: { type: 'int', bits: 4, symmetric: true }, granularity: { type: 'group', size: 128 } }
 * ```
 */
export function resolveQuantization(options: QuantizationOptions): { format: FormatSpec; granularity?: Granularity } {
  if (options.bits !== undefined && options.format !== undefined) throw new Error('give either bits or format, not both');
  if (options.groupSize !== undefined && options.granularity !== undefined) throw new Error('give either groupSize or granularity, not both');
  const format: FormatSpec =
    options.format !== undefined ? parseFormat(options.format) : { type: 'int', bits: options.bits ?? 4, symmetric: options.symmetric ?? true };
  const granularity: Granularity | undefined =
    options.groupSize !== undefined ? { type: 'group', size: options.groupSize } : options.granularity ? { type: options.granularity } : undefined;
  return granularity ? { format, granularity } : { format };
}
