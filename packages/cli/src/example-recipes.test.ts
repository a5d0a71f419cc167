import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRecipe } from '@bitsmith/recipe';
import { describe, expect, it } from 'vitest';
import { defaultRegistry } from './default-registry.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const RECIPES = join(ROOT, 'examples', 'recipes');
const files = readdirSync(RECIPES).filter((f) => f.endsWith('.yaml')).sort();

describe('examples/recipes', () => {
  it('holds the recipe files the README tables name', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const named = [...readme.matchAll(/`([a-z0-9.-]+)`\s*\|\s*\d/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(20);
    for (const name of named) expect(files, name).toContain(`${name}.yaml`);
  });

  it.each(files)('%s parses with the default registry, names itself after its file, and its steps build', (file) => {
    // Plan paths are relative to the repository root (where the README runs them from).
    const text = readFileSync(join(RECIPES, file), 'utf8').replace(/plan: examples\//g, `plan: ${ROOT}/examples/`);
    const recipe = parseRecipe(text, defaultRegistry, file);
    expect(recipe.name).toBe(file.replace(/\.yaml$/, ''));
    // A recipe quantizes something: weights through its steps, or activations / the KV cache alone.
    expect(recipe.stages.length + (recipe.inputActivations ? 1 : 0) + (recipe.kvCache ? 1 : 0)).toBeGreaterThan(0);
    for (const stage of recipe.stages) {
      expect(typeof stage.step.run).toBe('function');
      expect(['transform', 'allocate', 'quantize', 'compensate']).toContain(stage.step.kind);
    }
  });
});
