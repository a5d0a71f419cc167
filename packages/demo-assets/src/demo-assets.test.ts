import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { demoModelPath, stateOfTheUnionAddresses } from './demo-assets.js';

describe('demo assets', () => {
  it('demoModelPath is a tfjs graph model.json', () => {
    const json = JSON.parse(readFileSync(demoModelPath(), 'utf8')) as { modelTopology?: { node?: unknown[] }; weightsManifest?: unknown[] };
    expect(json.modelTopology?.node?.length).toBeGreaterThan(0);
    expect(json.weightsManifest?.length).toBeGreaterThan(0);
  });

  it('stateOfTheUnionAddresses returns one address per year in range, with text', () => {
    const speeches = stateOfTheUnionAddresses([2000, 2002]);
    expect(speeches.map((s) => s.year).sort()).toEqual([2000, 2001, 2002]);
    for (const s of speeches) expect(s.text.length).toBeGreaterThan(1000);
  });
});
