import { afterAll, describe, expect, it } from 'vitest';
import type { AttentionArguments, Backend } from '../backend.js';
import { tryReferenceKernels } from '../reference-kernels.js';
import { attentionWithBatchedSgemm, type BatchedGemmArguments } from './attention-batched-sgemm.js';
import { attentionWithSgemm } from './attention-sgemm.js';
import { seededRandom } from './backend-oracle.js';
import { createJsBackend } from './js-backend.js';
import { createOrtBackend } from './ort-backend.js';

function problem(lengths: number[], H: number, Hkv: number, d: number, seed: number, extra: Partial<AttentionArguments> = {}): AttentionArguments {
  const rnd = seededRandom(seed);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  const fill = (n: number): Float32Array => Float32Array.from({ length: n }, () => (rnd() - 0.5) * 6);
  return {
    q: fill(tokens * H * d),
    k: fill(tokens * Hkv * d),
    v: fill(tokens * Hkv * d),
    out: new Float32Array(tokens * H * d).fill(Number.NaN),
    lengths,
    numHeads: H,
    numKvHeads: Hkv,
    headDim: d,
    ...extra,
  };
}

/** Index of the first element whose bits differ (-1: none); NaN equals NaN. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

// Runs of equal lengths and lone ones, an empty sequence, one token, chunks that do not divide the length,
// grouped-query and plain heads, sliding windows, a soft-cap (the JavaScript softmax), and score budgets so small
// that every batch holds one pair.
const cases: Array<{
  name: string;
  lengths: number[];
  H: number;
  Hkv: number;
  d: number;
  extra?: Partial<AttentionArguments>;
  scoreBytes?: number;
  chunk?: number;
}> = [
  {
    name: 'equal lengths, grouped heads',
    lengths: [300, 300, 300],
    H: 4,
    Hkv: 2,
    d: 16,
  },
  {
    name: 'mixed lengths, empty and single-token sequences',
    lengths: [37, 37, 0, 1, 130, 64, 64, 5],
    H: 6,
    Hkv: 2,
    d: 8,
  },
  {
    name: 'one head per key/value head, scale',
    lengths: [200, 200],
    H: 3,
    Hkv: 3,
    d: 32,
    extra: { scale: 0.3 },
  },
  {
    name: 'sliding window narrower than a chunk',
    lengths: [260, 260, 90],
    H: 4,
    Hkv: 1,
    d: 16,
    extra: { slidingWindow: 50 },
  },
  {
    name: 'sliding window wider than a chunk',
    lengths: [400],
    H: 2,
    Hkv: 2,
    d: 16,
    extra: { slidingWindow: 300 },
  },
  {
    name: 'soft-cap (JavaScript softmax rows)',
    lengths: [150, 150, 20],
    H: 4,
    Hkv: 2,
    d: 16,
    extra: { softcap: 5 },
  },
  {
    name: 'one pair per batch',
    lengths: [140, 140, 140],
    H: 4,
    Hkv: 2,
    d: 16,
    scoreBytes: 1,
  },
  { name: 'chunk of 7 rows', lengths: [50, 50], H: 4, Hkv: 2, d: 8, chunk: 7 },
];

/** The batched products as a loop of the backend's single products (any backend), for the indexing checks. */
function loopOf(backend: Backend): (g: BatchedGemmArguments) => Promise<void> {
  return async ({ batch, m, n, k, a, b, c, transB, alpha }) => {
    for (let e = 0; e < batch; e++) {
      await backend.sgemm({
        m,
        n,
        k,
        a: a.subarray(e * m * k, (e + 1) * m * k),
        b: b.subarray(e * n * k, (e + 1) * n * k),
        c: c.subarray(e * m * n, (e + 1) * m * n),
        transB,
        alpha,
      });
    }
  };
}

describe('attentionWithBatchedSgemm', () => {
  const backends: Backend[] = [];
  afterAll(async () => {
    for (const b of backends) await b.dispose();
  });

  // The batching's bookkeeping (pairs, chunks, windows, budgets) against attentionWithSgemm on the same products.
  for (const c of cases) {
    it(`equals attentionWithSgemm bit for bit with the products looped (${c.name})`, async () => {
      const js = createJsBackend();
      const kernels = await tryReferenceKernels();
      const args = problem(c.lengths, c.H, c.Hkv, c.d, 11, c.extra);
      const expected = { ...args, out: args.out.slice() };
      await attentionWithSgemm((g) => js.sgemm(g), expected, c.chunk, kernels ?? null);
      const kept = new Map<string, Float32Array>();
      const scratch = (name: string, length: number): Float32Array =>
        (kept.get(name)?.length ?? 0) >= length ? kept.get(name)!.fill(Number.NaN) : kept.set(name, new Float32Array(length + 3).fill(Number.NaN)).get(name)!;
      await attentionWithBatchedSgemm(loopOf(js), args, kernels ?? null, {
        chunk: c.chunk,
        scoreBytes: c.scoreBytes,
      });
      const again = { ...args, out: args.out.slice().fill(0) };
      await attentionWithBatchedSgemm(loopOf(js), again, kernels ?? null, {
        chunk: c.chunk,
        scoreBytes: c.scoreBytes,
        scratch,
      });
      await attentionWithBatchedSgemm(loopOf(js), again, kernels ?? null, {
        chunk: c.chunk,
        scoreBytes: c.scoreBytes,
        scratch,
      });
      expect(firstDifference(again.out, expected.out)).toBe(-1);
      expect(firstDifference(args.out, expected.out)).toBe(-1);
      expect(args.out.some(Number.isNaN)).toBe(false);
    });
  }

  // Parts of the pairs (cut inside sequences, at sequence bounds, empty parts) together give the whole call's bits, and
  // each part leaves the other heads' output untouched.
  for (const c of cases) {
    it(`computes only the requested pairs, which together equal the whole call bit for bit (${c.name})`, async () => {
      const js = createJsBackend();
      const kernels = await tryReferenceKernels();
      const args = problem(c.lengths, c.H, c.Hkv, c.d, 13, c.extra);
      const whole = { ...args, out: args.out.slice() };
      await attentionWithBatchedSgemm(loopOf(js), whole, kernels ?? null, { chunk: c.chunk, scoreBytes: c.scoreBytes });
      const pairs = c.lengths.length * c.Hkv;
      const cuts = [0, 1, Math.floor(pairs / 2), Math.floor(pairs / 2), pairs - 1, pairs].filter((x) => x >= 0 && x <= pairs).sort((a, b) => a - b);
      const parts = { ...args, out: args.out.slice() };
      for (let i = 0; i + 1 < cuts.length; i++) {
        const [from, to] = [cuts[i]!, cuts[i + 1]!];
        const before = parts.out.slice();
        await attentionWithBatchedSgemm(loopOf(js), parts, kernels ?? null, { chunk: c.chunk, scoreBytes: c.scoreBytes, pairs: [from, to] });
        // Outside the part's pairs nothing changed (NaN stays NaN: compare bits).
        const group = c.H / c.Hkv;
        let t0 = 0;
        for (let s = 0; s < c.lengths.length; s++) {
          for (let g = 0; g < c.Hkv; g++) {
            const p = s * c.Hkv + g;
            if (p >= from && p < to) continue;
            for (let t = t0; t < t0 + c.lengths[s]!; t++) {
              const o = t * c.H * c.d + g * group * c.d;
              expect(firstDifference(parts.out.subarray(o, o + group * c.d), before.subarray(o, o + group * c.d))).toBe(-1);
            }
          }
          t0 += c.lengths[s]!;
        }
      }
      expect(firstDifference(parts.out, whole.out)).toBe(-1);
    });
  }

  // onnxruntime's batched MatMul against its single Gemm calls: the reference attention of the ort backend (batched)
  // equals attentionWithSgemm over the same backend's sgemm bit for bit, including sequences longer than the
  // products' 512-deep reduction blocks.
  const ortCases = [
    ...cases,
    {
      name: 'long sequences (deep P V reductions)',
      lengths: [1100, 1100],
      H: 4,
      Hkv: 2,
      d: 64,
    },
    {
      name: 'llama-docs geometry',
      lengths: [512, 512, 512],
      H: 8,
      Hkv: 4,
      d: 64,
    },
  ];
  for (const c of ortCases) {
    it(`the ort backend's reference attention equals attentionWithSgemm on its sgemm bit for bit (${c.name})`, async () => {
      let ort: Backend;
      try {
        ort = await createOrtBackend({ threads: 2 });
      } catch {
        console.warn('onnxruntime-node not available: skipped');
        return;
      }
      backends.push(ort);
      const args = problem(c.lengths, c.H, c.Hkv, c.d, 5, c.extra);
      const expected = { ...args, out: args.out.slice() };
      await attentionWithSgemm((g) => ort.sgemm(g), expected, undefined, (await tryReferenceKernels()) ?? null);
      await ort.attention({ ...args, reference: true });
      expect(firstDifference(args.out, expected.out)).toBe(-1);
    });
  }
});
