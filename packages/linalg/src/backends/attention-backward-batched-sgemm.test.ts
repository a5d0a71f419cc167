import { describe, expect, it } from 'vitest';
import type { AttentionBackwardArguments, BatchedGemmArguments } from '../backend.js';
import { tryReferenceKernels } from '../reference-kernels.js';
import { attentionBackwardWithBatchedSgemm, type AttentionBackwardScratch } from './attention-backward-batched-sgemm.js';
import { seededRandom } from './backend-oracle.js';
import { createJsBackend } from './js-backend.js';

function problem(lengths: number[], H: number, Hkv: number, d: number, seed: number, extra: Partial<AttentionBackwardArguments> = {}): AttentionBackwardArguments {
  const rnd = seededRandom(seed);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  const fill = (n: number, s: number): Float32Array => Float32Array.from({ length: n }, () => (rnd() - 0.5) * s);
  return {
    q: fill(tokens * H * d, 4),
    k: fill(tokens * Hkv * d, 4),
    v: fill(tokens * Hkv * d, 2),
    dOut: fill(tokens * H * d, 2),
    dq: new Float32Array(tokens * H * d).fill(Number.NaN),
    dk: new Float32Array(tokens * Hkv * d).fill(Number.NaN),
    dv: new Float32Array(tokens * Hkv * d).fill(Number.NaN),
    lengths,
    numHeads: H,
    numKvHeads: Hkv,
    headDim: d,
    ...extra,
  };
}

/** Fresh gradient arrays (NaN) for the same problem. */
function again(args: AttentionBackwardArguments): AttentionBackwardArguments {
  return { ...args, dq: args.dq.slice().fill(Number.NaN), dk: args.dk.slice().fill(Number.NaN), dv: args.dv.slice().fill(Number.NaN) };
}

/** Index of the first element whose bits differ (-1: none); NaN equals NaN. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

function sameGradients(a: AttentionBackwardArguments, b: AttentionBackwardArguments): void {
  expect(firstDifference(a.dq, b.dq)).toBe(-1);
  expect(firstDifference(a.dk, b.dk)).toBe(-1);
  expect(firstDifference(a.dv, b.dv)).toBe(-1);
}

/** The batched products as a loop of the js backend's sgemm (each product the one a single call gives). */
function loopOf(backend: ReturnType<typeof createJsBackend>): (g: BatchedGemmArguments) => Promise<void> {
  return async (g) => {
    for (let e = 0; e < g.batch; e++) {
      await backend.sgemm({
        m: g.m,
        n: g.n,
        k: g.k,
        a: g.a.subarray(e * g.m * g.k, (e + 1) * g.m * g.k),
        b: g.b.subarray(e * g.n * g.k, (e + 1) * g.n * g.k),
        c: g.c.subarray(e * g.m * g.n, (e + 1) * g.m * g.n),
        ...(g.transA ? { transA: true } : {}),
        ...(g.transB ? { transB: true } : {}),
        ...(g.alpha !== undefined ? { alpha: g.alpha } : {}),
      });
    }
  };
}

/**
 * The gradients by the definition, in float64, one query at a time: `s_j = scale q . k_j` over the visible keys,
 * `p = softmax(s)`, `dp_j = dO . v_j`, `ds_j = p_j (dp_j - sum_l p_l dp_l)`, `dq = scale sum_j ds_j k_j`,
 * `dk_j += scale ds_j q`, `dv_j += p_j dO`.
 */
function bruteForce(args: AttentionBackwardArguments): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { q, k, v, dOut, lengths, numHeads: H, numKvHeads: Hkv, headDim: d } = args;
  const scale = args.scale ?? 1 / Math.sqrt(d);
  const window = args.slidingWindow ?? Infinity;
  const group = H / Hkv;
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  let start = 0;
  for (const n of lengths) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < n; i++) {
        const qo = (start + i) * H * d + h * d;
        const first = Math.max(0, i - window + 1);
        const s: number[] = [];
        for (let j = first; j <= i; j++) {
          const ko = (start + j) * Hkv * d + g * d;
          let dot = 0;
          for (let t = 0; t < d; t++) dot += q[qo + t]! * k[ko + t]!;
          s.push(scale * dot);
        }
        const max = Math.max(...s);
        const e = s.map((x) => Math.exp(x - max));
        const sum = e.reduce((a, b) => a + b, 0);
        const p = e.map((x) => x / sum);
        const dp = p.map((_, idx) => {
          const vo = (start + first + idx) * Hkv * d + g * d;
          let dot = 0;
          for (let t = 0; t < d; t++) dot += dOut[qo + t]! * v[vo + t]!;
          return dot;
        });
        const mean = p.reduce((a, pj, idx) => a + pj * dp[idx]!, 0);
        for (let idx = 0; idx < p.length; idx++) {
          const ds = p[idx]! * (dp[idx]! - mean);
          const ko = (start + first + idx) * Hkv * d + g * d;
          for (let t = 0; t < d; t++) {
            dq[qo + t] += scale * ds * k[ko + t]!;
            dk[ko + t] += scale * ds * q[qo + t]!;
            dv[ko + t] += p[idx]! * dOut[qo + t]!;
          }
        }
      }
    }
    start += n;
  }
  return { dq, dk, dv };
}

function maxRelative(got: Float32Array, want: Float64Array): number {
  let max = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    max = Math.max(max, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return max / scale;
}

// Runs of equal lengths and lone ones, empty and one-token sequences, chunks that do not divide the length, grouped
// and plain heads, a sliding window, a scale float32 cannot hold (applied after the product), tiny score budgets.
const cases: Array<{ name: string; lengths: number[]; H: number; Hkv: number; d: number; extra?: Partial<AttentionBackwardArguments>; chunk?: number; scoreBytes?: number }> = [
  { name: 'equal lengths, grouped heads, chunks of 16', lengths: [40, 40, 40], H: 4, Hkv: 2, d: 8, chunk: 16 },
  { name: 'mixed lengths, empty and one-token sequences', lengths: [9, 9, 0, 1, 23, 5], H: 6, Hkv: 2, d: 4, chunk: 4 },
  { name: 'multi-head, one chunk', lengths: [33], H: 3, Hkv: 3, d: 8 },
  { name: 'sliding window 7, scale 0.3', lengths: [30, 19], H: 4, Hkv: 1, d: 8, chunk: 8, extra: { slidingWindow: 7, scale: 0.3 } },
  { name: 'one pair per batch', lengths: [20, 20, 20], H: 2, Hkv: 2, d: 4, chunk: 8, scoreBytes: 1 },
];

describe('attentionBackwardWithBatchedSgemm', () => {
  for (const c of cases) {
    it(`agrees with the float64 definition (${c.name})`, async () => {
      const js = createJsBackend();
      const args = problem(c.lengths, c.H, c.Hkv, c.d, 3, c.extra);
      await attentionBackwardWithBatchedSgemm(loopOf(js), args, (await tryReferenceKernels()) ?? null, { chunk: c.chunk, scoreBytes: c.scoreBytes });
      const want = bruteForce(args);
      expect(maxRelative(args.dq, want.dq)).toBeLessThan(2e-5);
      expect(maxRelative(args.dk, want.dk)).toBeLessThan(2e-5);
      expect(maxRelative(args.dv, want.dv)).toBeLessThan(2e-5);
    });

    it(`gives the same bits with the WebAssembly softmax and the JavaScript loops, any batching and a reused scratch (${c.name})`, async () => {
      const js = createJsBackend();
      const kernels = await tryReferenceKernels();
      const args = problem(c.lengths, c.H, c.Hkv, c.d, 5, c.extra);
      const loops = again(args);
      await attentionBackwardWithBatchedSgemm(loopOf(js), loops, null, { chunk: c.chunk, scoreBytes: c.scoreBytes });
      expect(loops.dq.some(Number.isNaN) || loops.dk.some(Number.isNaN) || loops.dv.some(Number.isNaN)).toBe(false);
      if (kernels) {
        const simd = again(args);
        await attentionBackwardWithBatchedSgemm(loopOf(js), simd, kernels, { chunk: c.chunk, scoreBytes: c.scoreBytes });
        sameGradients(simd, loops);
      }
      // One pair per batch, then the default budget, through one scratch whose leftovers are NaN.
      const kept = new Map<string, Float32Array | Float64Array>();
      const scratch: AttentionBackwardScratch = {
        float32: (name, length) => ((kept.get(name)?.length ?? -1) >= length ? (kept.get(name) as Float32Array) : (kept.set(name, new Float32Array(length + 5).fill(Number.NaN)).get(name) as Float32Array)),
        float64: (name, length) => ((kept.get(name)?.length ?? -1) >= length ? (kept.get(name) as Float64Array) : (kept.set(name, new Float64Array(length + 5).fill(Number.NaN)).get(name) as Float64Array)),
      };
      for (const scoreBytes of [1, undefined]) {
        const batched = again(args);
        await attentionBackwardWithBatchedSgemm(loopOf(js), batched, kernels ?? null, { chunk: c.chunk, scratch, ...(scoreBytes !== undefined ? { scoreBytes } : {}) });
        sameGradients(batched, loops);
      }
    });

    it(`computes only the requested pairs, which together equal the whole call bit for bit (${c.name})`, async () => {
      const js = createJsBackend();
      const kernels = (await tryReferenceKernels()) ?? null;
      const args = problem(c.lengths, c.H, c.Hkv, c.d, 7, c.extra);
      const whole = again(args);
      await attentionBackwardWithBatchedSgemm(loopOf(js), whole, kernels, { chunk: c.chunk, scoreBytes: c.scoreBytes });
      const pairs = c.lengths.length * c.Hkv;
      const cuts = [0, 1, Math.floor(pairs / 2), Math.floor(pairs / 2), pairs - 1, pairs].filter((x) => x >= 0 && x <= pairs).sort((a, b) => a - b);
      const parts = again(args);
      const group = c.H / c.Hkv;
      for (let i = 0; i + 1 < cuts.length; i++) {
        const [from, to] = [cuts[i]!, cuts[i + 1]!];
        const before = { dq: parts.dq.slice(), dk: parts.dk.slice(), dv: parts.dv.slice() };
        await attentionBackwardWithBatchedSgemm(loopOf(js), parts, kernels, { chunk: c.chunk, scoreBytes: c.scoreBytes, pairs: [from, to] });
        // Outside the part's pairs nothing changed (NaN stays NaN: compare bits).
        let t0 = 0;
        for (let s = 0; s < c.lengths.length; s++) {
          for (let g = 0; g < c.Hkv; g++) {
            const p = s * c.Hkv + g;
            if (p >= from && p < to) continue;
            for (let t = t0; t < t0 + c.lengths[s]!; t++) {
              const oq = t * c.H * c.d + g * group * c.d;
              const okv = t * c.Hkv * c.d + g * c.d;
              expect(firstDifference(parts.dq.subarray(oq, oq + group * c.d), before.dq.subarray(oq, oq + group * c.d))).toBe(-1);
              expect(firstDifference(parts.dk.subarray(okv, okv + c.d), before.dk.subarray(okv, okv + c.d))).toBe(-1);
              expect(firstDifference(parts.dv.subarray(okv, okv + c.d), before.dv.subarray(okv, okv + c.d))).toBe(-1);
            }
          }
          t0 += c.lengths[s]!;
        }
      }
      sameGradients(parts, whole);
    });
  }
});
