import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as allocate from '@bitsmith/allocate';
import * as codebook from '@bitsmith/codebook';
import * as core from '@bitsmith/core';
import * as learned from '@bitsmith/learned';
import * as lowrank from '@bitsmith/lowrank';
import { loadRecipe, parseRecipe } from '@bitsmith/recipe';
import * as rotation from '@bitsmith/rotation';
import * as smoothing from '@bitsmith/smoothing';
import * as solvers from '@bitsmith/solvers';
import { describe, expect, it } from 'vitest';
import { defaultRegistry as browserRegistry } from './default-registry.js';
import { defaultRegistry } from './node.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');

describe('defaultRegistry', () => {
  it('holds every step definition that an algorithm package exports (none forgotten, as a hand-kept copy once forgot two)', () => {
    const packages = { allocate, codebook, core, learned, lowrank, rotation, smoothing, solvers };
    const exported = new Set<unknown>();
    for (const [pkg, module] of Object.entries(packages)) {
      for (const [name, value] of Object.entries(module)) {
        const isDefinition = typeof value === 'object' && value !== null && 'options' in value && 'create' in value && 'description' in value;
        if (isDefinition && name.endsWith('Step')) exported.add(value);
        else if (name.endsWith('Step') && typeof value === 'object') throw new Error(`${pkg}.${name} looks like a step but is not a definition`);
      }
    }
    expect(exported.size).toBeGreaterThanOrEqual(21);
    const registered = new Set(Object.values(browserRegistry));
    const missing = [...exported].filter((d) => !registered.has(d as never)).map((d) => (d as { description: string }).description.slice(0, 40));
    expect(missing).toEqual([]);
  });

  it('the Node registry has the same step names, and reads bit plans from files where the browser one takes objects', () => {
    expect(Object.keys(defaultRegistry).sort()).toEqual(Object.keys(browserRegistry).sort());
    const withFile = 'steps:\n  - bit-allocation: { plan: examples/plans/does-not-exist.json }\n  - rtn: { bits: 4 }\n';
    expect(() => parseRecipe(withFile, defaultRegistry, 'r.yaml')).toThrow(/cannot read the bit plan examples\/plans\/does-not-exist\.json \(ENOENT\)/);
    expect(() => parseRecipe(withFile, browserRegistry, 'r.yaml')).toThrow(/plan.*expected a bit plan object/);
  });

  it('parses every recipe in examples/recipes (run from the repository root, as their plan paths expect)', async () => {
    const cwd = process.cwd();
    process.chdir(root);
    try {
      const files = readdirSync(join(root, 'examples/recipes')).filter((f) => f.endsWith('.yaml'));
      expect(files.length).toBeGreaterThan(50);
      for (const file of files) {
        const recipe = await loadRecipe(join(root, 'examples/recipes', file), defaultRegistry);
        expect(recipe.stages.length + (recipe.inputActivations || recipe.kvCache ? 1 : 0), file).toBeGreaterThan(0);
      }
    } finally {
      process.chdir(cwd);
    }
  });
});
