import { describe, expect, it } from 'vitest';
import { attentionChunk, attentionPairAt, equalLengthRuns, packKeyValueRows, packQueryRows, unpackQueryRows, type AttentionPairLayout } from './attention-pair-rows.js';

// Every element of the source matrices is its own (token, head, t) code, so a packed element names where it came from.
const code = (token: number, head: number, t: number) => token * 10_000 + head * 100 + t;

describe('attention pair rows', () => {
  // A run of 3 sequences of 6 tokens starting at token row 4, 2 key/value heads of 3 query heads each, head dim 5.
  const layout: AttentionPairLayout = { start: 4, n: 6, numKvHeads: 2, group: 3, d: 5, qRow: 6 * 5, kvRow: 2 * 5 };
  const tokens = 4 + 3 * 6;
  const q = new Float32Array(tokens * layout.qRow);
  const k = new Float32Array(tokens * layout.kvRow);
  const v = new Float32Array(tokens * layout.kvRow);
  for (let r = 0; r < tokens; r++) {
    for (let h = 0; h < 6; h++) for (let t = 0; t < 5; t++) q[r * layout.qRow + h * 5 + t] = code(r, h, t);
    for (let g = 0; g < 2; g++) for (let t = 0; t < 5; t++) {
      k[r * layout.kvRow + g * 5 + t] = code(r, g, t);
      v[r * layout.kvRow + g * 5 + t] = -code(r, g, t);
    }
  }

  it('numbers pairs sequence-major: pair p is sequence floor(p / numKvHeads), key/value head p % numKvHeads', () => {
    expect(attentionPairAt(layout, 0)).toEqual({ first: 4, g: 0 });
    expect(attentionPairAt(layout, 1)).toEqual({ first: 4, g: 1 });
    expect(attentionPairAt(layout, 5)).toEqual({ first: 4 + 2 * 6, g: 1 });
  });

  it('packs query rows head by head into a slot, and unpacking writes exactly those elements back', () => {
    const rows = 2;
    const r0 = 3;
    const packed = new Float32Array(2 * layout.group * rows * layout.d).fill(NaN);
    packQueryRows(layout, 3, 1, r0, rows, q, packed); // pair 3 (sequence 1, kv head 1) into slot 1
    for (let a = 0; a < 3; a++)
      for (let i = 0; i < rows; i++)
        for (let t = 0; t < 5; t++) expect(packed[((1 * 3 + a) * rows + i) * 5 + t]).toBe(code(4 + 6 + r0 + i, 1 * 3 + a, t));
    expect(packed.subarray(0, 3 * rows * 5).every(Number.isNaN)).toBe(true); // slot 0 untouched
    const back = new Float32Array(q.length);
    unpackQueryRows(layout, 3, 1, r0, rows, packed, back);
    let written = 0;
    for (let i = 0; i < back.length; i++) {
      if (back[i] === 0) continue;
      written++;
      expect(back[i]).toBe(q[i]);
    }
    expect(written).toBe(3 * rows * 5); // no code in these rows is 0
  });

  it('packs key and value rows from .. to - 1 at the slot stride, row j at j - k0', () => {
    const width = 4;
    const k0 = 2;
    const keys = new Float32Array(2 * width * 5).fill(NaN);
    const values = new Float32Array(2 * width * 5).fill(NaN);
    packKeyValueRows(layout, 4, 1, 3, 6, k0, width, k, v, keys, values); // pair 4: sequence 2, kv head 0; rows 3..5
    for (let j = 3; j < 6; j++)
      for (let t = 0; t < 5; t++) {
        expect(keys[(1 * width + j - k0) * 5 + t]).toBe(code(4 + 12 + j, 0, t));
        expect(values[(1 * width + j - k0) * 5 + t]).toBe(-code(4 + 12 + j, 0, t));
      }
    // Row k0 of the slot (j = 2) was not in from .. to - 1: untouched.
    for (let t = 0; t < 5; t++) expect(keys[(1 * width) * 5 + t]).toBeNaN();
  });
});

describe('attentionChunk', () => {
  it('gives the causal chunk geometry, with and without a sliding window (worked by hand)', () => {
    expect(attentionChunk(0, 128, 300, Infinity, 2)).toEqual({ r1: 128, rows: 128, k0: 0, width: 128, mm: 256 });
    expect(attentionChunk(256, 128, 300, Infinity, 2)).toEqual({ r1: 300, rows: 44, k0: 0, width: 300, mm: 88 });
    // Window 100: row 256 sees keys 157..256, so the chunk's keys start at 157.
    expect(attentionChunk(256, 128, 300, 100, 3)).toEqual({ r1: 300, rows: 44, k0: 157, width: 143, mm: 132 });
  });
});

describe('equalLengthRuns', () => {
  it('yields the runs of equal-length sequences that hold the requested pairs, leaving out empty sequences', () => {
    expect([...equalLengthRuns([4, 4, 2], 2, 0, 6)]).toEqual([
      { start: 0, n: 4, lo: 0, hi: 4 },
      { start: 8, n: 2, lo: 0, hi: 2 },
    ]);
    // Pairs 3 .. 4 of [4, 4, 0, 2] with 2 heads: the first run's last pair; the empty sequence's pairs (4, 5) are skipped.
    expect([...equalLengthRuns([4, 4, 0, 2], 2, 3, 5)]).toEqual([{ start: 0, n: 4, lo: 3, hi: 4 }]);
    expect([...equalLengthRuns([4, 4, 0, 2], 2, 4, 8)]).toEqual([{ start: 8, n: 2, lo: 0, hi: 2 }]);
    expect([...equalLengthRuns([3, 5, 5, 5, 1], 1, 2, 4)]).toEqual([{ start: 3, n: 5, lo: 1, hi: 3 }]);
    expect([...equalLengthRuns([], 4, 0, 0)]).toEqual([]);
  });
});
