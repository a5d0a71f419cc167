import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeGgmlTensor, encodeGgmlTensor } from './gguf-tensor-codec.js';
import type { GgmlTypeName } from './gguf-constants.js';

// Bytes produced by ggml's own quantizers (llama.cpp's ggml-quants.c, built by bench/ggml-oracle; see the fixture's
// `source`) for 3 rows of 512 Laplace-like weights with outliers and an all-zero block, with and without an
// importance matrix spanning four orders of magnitude.
const fixture = JSON.parse(readFileSync(new URL('./fixtures/ggml-oracle.json', import.meta.url), 'utf8')) as {
  rows: number;
  columns: number;
  values: string;
  importance: string;
  cases: { type: GgmlTypeName; importance: boolean; bytes: string }[];
};
const floats = (b64: string) => {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
};
const values = floats(fixture.values);
const importance = floats(fixture.importance);

describe('GGML encoders against ggml-quants.c (llama-quantize with and without --imatrix)', () => {
  for (const c of fixture.cases) {
    it(`${c.type}${c.importance ? ' with importance' : ''} is byte-identical`, () => {
      const ours = encodeGgmlTensor(c.type, values, { columns: fixture.columns, ...(c.importance ? { importance } : {}) });
      const theirs = new Uint8Array(Buffer.from(c.bytes, 'base64'));
      expect(ours.byteLength).toBe(theirs.byteLength);
      const firstDiff = ours.findIndex((b, i) => b !== theirs[i]);
      expect(firstDiff).toBe(-1);
    });
  }

  it('importance-weighted encodings have a lower importance-weighted error than the unweighted ones', () => {
    for (const type of ['Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS'] as const) {
      const err = (bytes: Uint8Array) => {
        const d = decodeGgmlTensor(type, bytes, values.length);
        let e = 0;
        for (let i = 0; i < values.length; i++) e += importance[i % fixture.columns]! * (d[i]! - values[i]!) ** 2;
        return e;
      };
      const plain = err(encodeGgmlTensor(type, values, { columns: fixture.columns }));
      const weighted = err(encodeGgmlTensor(type, values, { columns: fixture.columns, importance }));
      expect(weighted, type).toBeLessThan(plain);
    }
  });
});
