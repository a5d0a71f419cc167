import { describe, expect, it } from 'vitest';
import { groupLayout } from './granularity.js';

describe('groupLayout', () => {
  it('gives every element the group that the granularity defines (brute force), computed once on first read', () => {
    const rows = 6;
    const columns = 12;
    const cases = [
      [{ type: 'tensor' }, () => 0, 1, [1, 1]],
      [{ type: 'channel' }, (r: number) => r, rows, [rows, 1]],
      [{ type: 'group', size: 4 }, (r: number, c: number) => r * 3 + Math.floor(c / 4), rows * 3, [rows, 3]],
      [{ type: 'block', rows: 4, columns: 5 }, (r: number, c: number) => Math.floor(r / 4) * 3 + Math.floor(c / 5), 6, [2, 3]],
    ] as const;
    for (const [granularity, group, count, shape] of cases) {
      const layout = groupLayout(rows, columns, granularity);
      expect(layout.count).toBe(count);
      expect(layout.scaleShape).toEqual(shape);
      const ids = layout.ids;
      expect(ids.length).toBe(rows * columns);
      for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) expect(ids[r * columns + c]).toBe(group(r, c));
      expect(layout.ids).toBe(ids);
    }
  });
});
