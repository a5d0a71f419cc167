import { heldMatrix, heldMatrixAccess } from '@bitsmith/core';
import { createBackend, type Backend } from '@bitsmith/linalg';
import { describe, expect, it } from 'vitest';
import { applyLinear, createLinearLayer } from './linear-layer.js';

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

// Values with bfloat16 precision, so that "decoding" a row is exact, like a checkpoint's bf16 table.
function table(rows: number, columns: number, seed: number): Float32Array {
  const out = new Float32Array(rows * columns);
  let s = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = Math.fround((s / 2 ** 32 - 0.5) * 0.25);
  }
  const words = new Uint32Array(out.buffer);
  for (let i = 0; i < words.length; i++) words[i] = words[i]! & 0xffff0000;
  return out;
}

const backends: [string, Backend | undefined][] = [];
for (const name of ['js', 'wasm', 'ort'] as const) backends.push([name, await createBackend(name).catch(() => undefined)]);

describe('applyLinear on a streamed held weight (an LM head read a block of rows at a time)', () => {
  // 2500 x 4096: blocks of 1024 rows (16 MiB of floats), the last one partial.
  const [n, k] = [2500, 4096];
  const w = table(n, k, 1);
  const bias = table(1, n, 3);
  for (const [name, backend] of backends) {
    // ort splits the work over threads by rows and columns: 256 rows there (the js backend is slow at that size).
    const rows = name === 'ort' ? 256 : 3;
    const x = table(rows, k, 2);
    it.skipIf(!backend)(`${name}, ${rows} rows: the same bits as the product with the float32 weight, and no float32 copy kept`, async () => {
      let decodedRows = 0;
      const held = heldMatrix(n, k, (start, end, out) => {
        decodedRows += end - start;
        out.set(w.subarray(start * k, end * k));
      }, { streamed: true });
      const seen: string[] = [];
      const lazy = createLinearLayer('lm_head', 'lm_head', held, bias);
      const eager = createLinearLayer('lm_head', 'lm_head', { dtype: 'float32', shape: [n, k], data: w }, bias);
      const out = new Float32Array(rows * n + 5).fill(Number.NaN);
      const got = await applyLinear(lazy, x, rows, backend!, { out: out.subarray(0, rows * n), observer: (e) => void seen.push(e.name) });
      const expected = await applyLinear(eager, x, rows, backend!);
      expect(bits(got)).toEqual(bits(expected));
      expect(Number.isNaN(out[rows * n]!)).toBe(true);
      expect(seen).toEqual(['lm_head']);
      expect(decodedRows).toBe(n);
      expect(heldMatrixAccess(held)!.resident).toBe(false);
      // Once its data has been read, the weight is a plain float32 matrix again, with the same product.
      expect(held.data.length).toBe(n * k);
      expect(bits(await applyLinear(lazy, x, rows, backend!))).toEqual(bits(expected));
      expect(decodedRows).toBe(2 * n);
    });
  }
});
