import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend, GatedMlpArguments } from '../backend.js';
import { seededRandom } from './backend-oracle.js';
import { createOrtBackend, type OrtBackendOptions } from './ort-backend.js';

let available = true;
try {
  await (await createOrtBackend({ threads: 1 })).dispose();
} catch {
  available = false;
}

function problem(rows: number, hidden: number, intermediate: number, seed: number, activation: 'silu' | 'gelu-tanh'): GatedMlpArguments {
  const rnd = seededRandom(seed);
  const fill = (n: number, s: number): Float32Array => Float32Array.from({ length: n }, () => (rnd() - 0.5) * s);
  return { x: fill(rows * hidden, 4), rows, hidden, intermediate, gate: fill(intermediate * hidden, 0.3), up: fill(intermediate * hidden, 0.3), down: fill(hidden * intermediate, 0.2), activation, out: new Float32Array(rows * hidden).fill(Number.NaN) };
}

/** What a caller without `gatedMlp` runs: three constant-weight products and the native gated activation. */
async function separately(backend: Backend, a: GatedMlpArguments): Promise<Float32Array> {
  const { rows, hidden, intermediate } = a;
  const gate = new Float32Array(rows * intermediate);
  const up = new Float32Array(rows * intermediate);
  const out = new Float32Array(rows * hidden);
  await backend.sgemm({ m: rows, n: intermediate, k: hidden, a: a.x, b: a.gate, c: gate, transB: true, constantB: true });
  await backend.sgemm({ m: rows, n: intermediate, k: hidden, a: a.x, b: a.up, c: up, transB: true, constantB: true });
  await backend.gatedActivation({ gate, up, out: gate, activation: a.activation });
  await backend.sgemm({ m: rows, n: hidden, k: intermediate, a: gate, b: a.down, c: out, transB: true, constantB: true });
  return out;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

describe.skipIf(!available)('ort backend gatedMlp', () => {
  const made: Backend[] = [];
  const backend = async (options: OrtBackendOptions = {}): Promise<Backend> => {
    const b = await createOrtBackend({ threads: 2, constantWeightMinRows: 1, ...options });
    made.push(b);
    return b;
  };
  afterAll(async () => {
    for (const b of made) await b.dispose();
  });

  // The contract: bit for bit the separate calls, for both activations, for shapes with MLAS remainders, and with the
  // rows in blocks (a small output chunk).
  for (const [rows, hidden, intermediate, activation, chunk] of [
    [37, 48, 80, 'silu', undefined],
    [37, 48, 80, 'gelu-tanh', undefined],
    [600, 96, 260, 'silu', 64 * 1024],
    [2100, 512, 1536, 'silu', undefined],
  ] as const) {
    it(`equals the constant-weight products and the gated activation bit for bit (${rows} x ${hidden} -> ${intermediate}, ${activation}${chunk ? ', rows in blocks' : ''})`, async () => {
      const b = await backend(chunk ? { outputChunkBytes: chunk } : {});
      const a = problem(rows, hidden, intermediate, rows + hidden, activation);
      const expected = await separately(b, a);
      expect(await b.gatedMlp!(a)).toBe(true);
      expect(a.out.some(Number.isNaN)).toBe(false);
      expect(sameBits(a.out, expected)).toBe(true);
    });
  }

  it('follows a weight edited in place (a new session), and declines below the row minimum or over the budget', async () => {
    const b = await backend();
    const a = problem(50, 32, 64, 9, 'silu');
    expect(await b.gatedMlp!(a)).toBe(true);
    const first = a.out.slice();
    a.down[5] = a.down[5]! + 0.5;
    const expected = await separately(b, a);
    expect(await b.gatedMlp!(a)).toBe(true);
    expect(sameBits(a.out, expected)).toBe(true);
    expect(sameBits(a.out, first)).toBe(false);

    const few = await backend({ constantWeightMinRows: 51 });
    expect(await few.gatedMlp!({ ...a, out: new Float32Array(a.out.length) })).toBe(false);
    const none = await backend({ constantWeightBytes: 0 });
    expect(await none.gatedMlp!({ ...a, out: new Float32Array(a.out.length) })).toBe(false);
  });

  it('rejects bad arguments by name', async () => {
    const b = await backend();
    const a = problem(4, 8, 16, 3, 'silu');
    await expect(b.gatedMlp!({ ...a, gate: new Float32Array(7) })).rejects.toThrow(ShapeMismatchError);
    await expect(b.gatedMlp!({ ...a, down: new Float32Array(8 * 15) })).rejects.toThrow(/gatedMlp\.down/);
    await expect(b.gatedMlp!({ ...a, out: new Float32Array(3) })).rejects.toThrow(/gatedMlp\.out/);
    await expect(b.gatedMlp!({ ...a, activation: 'relu' as 'silu' })).rejects.toThrow(InvalidArgumentError);
  });
});
