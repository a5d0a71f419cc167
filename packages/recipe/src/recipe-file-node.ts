import { readFile } from 'node:fs/promises';
import { parseRecipe, RecipeFileError } from './recipe-file.js';
import type { Recipe } from './recipe-types.js';
import type { StepRegistry } from '@bitsmith/core';

/**
 * Reads and parses a recipe file (`.yaml`, `.yml` or `.json`). Node only (the package's `node` entry, which
 * `import '@bitsmith/recipe'` gives in Node); in browsers, {@link parseRecipe} takes the text of a fetched or dropped file.
 *
 * @example
 * ```ts
 * const recipe = await loadRecipe('examples/recipes/gptq-w4g32.yaml', registry);
 * ```
 */
export async function loadRecipe(path: string, registry: StepRegistry): Promise<Recipe> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new RecipeFileError(path, code === 'ENOENT' ? 'file not found' : `cannot be read (${(cause as Error).message})`);
  }
  const recipe = parseRecipe(text, registry, path);
  return recipe.name ? recipe : { ...recipe, name: path.replace(/^.*\//, '').replace(/\.(ya?ml|json)$/, '') };
}
