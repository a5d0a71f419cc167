// The `node` entry of @bitsmith/steps (what `import '@bitsmith/steps'` gives in Node, through the `node` export
// condition; also `@bitsmith/steps/node`): the default registry whose `bit-allocation` step also reads bit plans
// from JSON files.
import type { StepRegistry } from '@bitsmith/core';
import { bitAllocationFileStep } from './bit-allocation-file-step.js';
import { defaultRegistry as browserRegistry } from './default-registry.js';

export { bitAllocationFileStep } from './bit-allocation-file-step.js';

/**
 * The steps recipe files can name (see the browser entry's `defaultRegistry`), with `bit-allocation`'s `plan` also
 * accepted as the path of a JSON bit plan, relative to the working directory.
 *
 * @example
 * ```ts
 * import { loadRecipe } from '@bitsmith/recipe';
 * import { defaultRegistry } from '@bitsmith/steps';
 * const recipe = await loadRecipe('examples/recipes/gptq-w4g128.yaml', defaultRegistry);
 * ```
 */
export const defaultRegistry: StepRegistry = { ...browserRegistry, 'bit-allocation': bitAllocationFileStep };
