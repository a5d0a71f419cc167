import { readTfjsModel, tfjsWeightMatrices } from '@bitsmith/models';
import { describe, expect, it } from 'vitest';
import { defaultTfjsModelPath } from './commands/survey.js';
import { formatSurveyTable, surveyFormats } from './format-survey.js';

describe('format survey on the real Universal Sentence Encoder lite weights', async () => {
  const matrices = tfjsWeightMatrices(await readTfjsModel(await defaultTfjsModelPath())).map((m) => m.weight);
  // The FFN and attention matrices (the embedding table is the largest and slowest; leave it out to keep the test quick).
  const kernels = matrices.filter((m) => m.shape[0] !== 8002);

  it('orders formats by error as their resolution says, and counts bits with scales', () => {
    const rows = surveyFormats(kernels, [
      { label: 'int8', format: 'int8', granularity: { type: 'channel' } },
      { label: 'int4', format: 'int4', granularity: { type: 'group', size: 128 } },
      { label: 'int4 rs', format: 'int4', granularity: { type: 'group', size: 128 }, rangeSearch: true },
      { label: 'int3', format: 'int3', granularity: { type: 'group', size: 128 } },
      { label: 'mxfp4', format: 'mxfp4' },
      { label: 'ternary', format: 'ternary', granularity: { type: 'channel' } },
    ]);
    const byLabel = Object.fromEntries(rows.map((r) => [r.label, r]));
    expect(byLabel.int8!.relativeError).toBeLessThan(0.02);
    expect(byLabel.int8!.relativeError).toBeLessThan(byLabel.int4!.relativeError);
    expect(byLabel.int4!.relativeError).toBeLessThan(byLabel.int3!.relativeError);
    expect(byLabel.int3!.relativeError).toBeLessThan(byLabel.ternary!.relativeError);
    expect(byLabel['int4 rs']!.relativeError).toBeLessThan(byLabel.int4!.relativeError);
    expect(byLabel.int4!.bitsPerWeight).toBe(4 + 16 / 128);
    expect(byLabel.mxfp4!.bitsPerWeight).toBe(4 + 8 / 32);
    for (const r of rows) expect(Number.isFinite(r.relativeError)).toBe(true);
    const table = formatSurveyTable(rows);
    expect(table.split('\n')).toHaveLength(rows.length + 2);
    expect(table).toContain('int4 rs');
  });
});
