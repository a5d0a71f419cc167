import { InvalidArgumentError } from './errors.js';

/**
 * Checks the options object a step factory was called with from code (where TypeScript may not be there to help):
 * every key must be one the factory takes and every required key present, else an `InvalidArgumentError` naming the
 * key, the options the factory takes, and, for the recipe-file shorthands `bits` / `groupSize` / `symmetric`, how to
 * write them in code.
 *
 * @example
 * ```ts
 * checkFactoryOptions('gptq', options, ['format', 'granularity', 'dampening'], ['format']);
 * ```
 */
export function checkFactoryOptions(step: string, options: unknown, allowed: readonly string[], required: readonly string[]): void {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', `${step} expects an object with ${allowed.join(', ')}; got ${String(options)}`);
  for (const key of Object.keys(options)) {
    if (allowed.includes(key)) continue;
    const hint =
      key === 'bits' || key === 'groupSize' || key === 'symmetric'
        ? ` (${key} is a recipe-file shorthand; in code write format: 'int4' and granularity: { type: 'group', size: 32 })`
        : '';
    throw new InvalidArgumentError(key, `${step} has no option '${key}'; it takes ${allowed.join(', ')}${hint}`);
  }
  for (const key of required) {
    if ((options as Record<string, unknown>)[key] === undefined) {
      throw new InvalidArgumentError(key, key === 'format' ? `${step} needs a format: a name such as 'int4' or 'nf4', or a FormatSpec` : `${step} needs '${key}'`);
    }
  }
}
