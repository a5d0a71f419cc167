import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AttentionArguments, AttentionBackwardArguments, Backend } from '../backend.js';
import { attentionBackwardWithBatchedSgemm } from './attention-backward-batched-sgemm.js';
import { sgemmBatched } from '../sgemm-batched.js';
import { referenceKernelsModule, tryReferenceKernels } from '../reference-kernels.js';
import { attentionWithSgemm } from './attention-sgemm.js';
import { seededRandom } from './backend-oracle.js';
import { batchedModelKey, SILU_HELPER_ROUND, splitByWeight, startReferenceHelpers } from './ort-reference-threads.js';
import { createOrtBackend } from './ort-backend.js';
import { gatedActivationLoop } from './gated-activation-loop.js';
import { fastExp } from '../fast-exp.js';

function problem(lengths: number[], H: number, Hkv: number, d: number, seed: number, extra: Partial<AttentionArguments> = {}): AttentionArguments {
  const rnd = seededRandom(seed);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  const fill = (n: number): Float32Array => Float32Array.from({ length: n }, () => (rnd() - 0.5) * 6);
  return { q: fill(tokens * H * d), k: fill(tokens * Hkv * d), v: fill(tokens * Hkv * d), out: new Float32Array(tokens * H * d).fill(Number.NaN), lengths, numHeads: H, numKvHeads: Hkv, headDim: d, ...extra };
}

/** Index of the first element whose bits differ (-1: none); NaN equals NaN. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

describe('splitByWeight', () => {
  it('cuts into consecutive nonempty parts of about equal weight', () => {
    expect(splitByWeight([1, 1, 1, 1], 2)).toEqual([0, 2, 4]);
    expect(splitByWeight([1, 1, 1, 1, 1, 1], 3)).toEqual([0, 2, 4, 6]);
    expect(splitByWeight([5, 1, 1, 1, 1, 1], 2)).toEqual([0, 1, 6]);
    expect(splitByWeight([1, 1, 1, 1, 1, 100], 2)).toEqual([0, 5, 6]);
    expect(splitByWeight([1, 1], 2)).toEqual([0, 1, 2]);
    const next = seededRandom(3);
    const rnd = (): number => next() + 0.5; // [0, 1)
    for (let trial = 0; trial < 200; trial++) {
      const weights = Array.from({ length: 1 + Math.floor(rnd() * 20) }, () => Math.floor(rnd() * 50));
      const parts = 1 + Math.floor(rnd() * Math.min(4, weights.length));
      const bounds = splitByWeight(weights, parts);
      expect(bounds.length).toBe(parts + 1);
      expect(bounds[0]).toBe(0);
      expect(bounds[parts]).toBe(weights.length);
      for (let i = 0; i < parts; i++) expect(bounds[i + 1]!).toBeGreaterThan(bounds[i]!);
    }
  });
});

// The helper threads run the built worker module; from the sources (here) it is bundled with esbuild first, into a
// folder below this package so that the worker finds onnxruntime-node as the built one does.
describe('the ort backend\'s reference attention on helper threads', () => {
  const backends: Backend[] = [];
  let workerUrl: URL | undefined;
  beforeAll(async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const outdir = join(here, '..', '..', 'node_modules', '.cache', 'bitsmith-test');
    mkdirSync(outdir, { recursive: true });
    const outfile = join(outdir, 'ort-reference-worker.mjs');
    const { build } = await import('esbuild');
    await build({ entryPoints: [join(here, 'ort-reference-worker.ts')], bundle: true, platform: 'node', format: 'esm', target: 'es2022', outfile, logLevel: 'silent' });
    workerUrl = pathToFileURL(outfile);
  });
  afterAll(async () => {
    for (const b of backends) await b.dispose();
  });

  async function ort(options: Parameters<typeof createOrtBackend>[0]): Promise<Backend | undefined> {
    try {
      const backend = await createOrtBackend(options);
      backends.push(backend);
      return backend;
    } catch {
      console.warn('onnxruntime-node not available: skipped');
      return undefined;
    }
  }

  /** Two helper threads on the worker module (for the tests that hand parts to helpers directly). */
  async function twoHelpers() {
    const helpers = await startReferenceHelpers(2, workerUrl!, await referenceKernelsModule(), { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 });
    expect(helpers?.count).toBe(2);
    return helpers!;
  }

  /** The batched GEMM models the helpers need for attention with head dimension `d` (forward and backward). */
  async function batchedModels(d: number): Promise<Record<string, Uint8Array>> {
    const { buildBatchedGemmModel } = await import('./ort-graph.js');
    const onnx = (await import('onnx-proto')) as unknown as { onnx?: unknown; default?: { onnx?: unknown } };
    const proto = (onnx.onnx ?? onnx.default?.onnx) as Parameters<typeof buildBatchedGemmModel>[0];
    const scale = 1 / Math.sqrt(d);
    return {
      [batchedModelKey(true, scale)]: buildBatchedGemmModel(proto, { transB: true, alpha: Math.fround(scale) }),
      [batchedModelKey(true, 1)]: buildBatchedGemmModel(proto, { transB: true, alpha: 1 }),
      [batchedModelKey(false, 1)]: buildBatchedGemmModel(proto, { transB: false, alpha: 1 }),
      [batchedModelKey(false, 1, true)]: buildBatchedGemmModel(proto, { transA: true, transB: false, alpha: 1 }),
    };
  }

  // Sequences cut between helpers at and inside sequence bounds, unequal lengths, windows, a soft-cap, more than one helper.
  const cases: Array<{ name: string; lengths: number[]; H: number; Hkv: number; d: number; threads: number; extra?: Partial<AttentionArguments> }> = [
    { name: 'llama-docs geometry, 3 sequences', lengths: [512, 512, 512], H: 8, Hkv: 4, d: 64, threads: 2 },
    { name: 'one sequence, heads split', lengths: [700], H: 6, Hkv: 3, d: 32, threads: 2 },
    { name: 'mixed lengths, empty and one-token sequences', lengths: [300, 0, 1, 300, 130, 64], H: 4, Hkv: 2, d: 16, threads: 2 },
    { name: 'sliding window, scale', lengths: [400, 260], H: 4, Hkv: 1, d: 32, threads: 2, extra: { slidingWindow: 100, scale: 0.3 } },
    { name: 'soft-cap', lengths: [300, 300], H: 4, Hkv: 2, d: 32, threads: 2, extra: { softcap: 5 } },
    { name: 'three threads', lengths: [512, 512, 512, 256], H: 8, Hkv: 4, d: 64, threads: 3 },
  ];
  for (const c of cases) {
    it(`equals the single-thread call and attentionWithSgemm bit for bit (${c.name})`, async () => {
      const shared = await ort({ threads: c.threads, referenceWorker: workerUrl });
      const alone = await ort({ threads: c.threads, referenceThreads: 1 });
      if (!shared || !alone) return;
      const args = problem(c.lengths, c.H, c.Hkv, c.d, 7, c.extra);
      const single = { ...args, out: args.out.slice() };
      await alone.attention({ ...single, reference: true });
      const expected = { ...args, out: args.out.slice() };
      await attentionWithSgemm((g) => alone.sgemm(g), expected, undefined, c.extra?.softcap === undefined ? ((await tryReferenceKernels()) ?? null) : null);
      for (let round = 0; round < 2; round++) {
        const out = args.out.slice().fill(Number.NaN);
        await shared.attention({ ...args, out, reference: true });
        expect(firstDifference(out, single.out)).toBe(-1);
        expect(firstDifference(out, expected.out)).toBe(-1);
      }
      expect(single.out.some(Number.isNaN)).toBe(false);
    });
  }

  it('hands each helper its pairs and copies back exactly their heads (the calling thread\'s part left to it)', async () => {
    const alone = await ort({ threads: 1 });
    if (!alone || !workerUrl) return;
    const helpers = await twoHelpers();
    try {
      // 2 sequences x 3 key/value heads: 6 pairs, 2 per thread; the helpers' parts cut the second sequence's heads.
      const lengths = [300, 300];
      const [H, Hkv, d] = [6, 3, 32];
      const args = problem(lengths, H, Hkv, d, 9);
      const expected = { ...args, out: args.out.slice() };
      await alone.attention({ ...expected, reference: true });
      const models = await batchedModels(d);
      let localPairs: readonly [number, number] | undefined;
      const ran = await helpers.attention(args, async (pairs) => void (localPairs = pairs), models);
      expect(ran).toBe(true);
      expect(localPairs).toEqual([0, 2]);
      const group = H / Hkv;
      for (let t = 0; t < 600; t++) {
        for (let g = 0; g < Hkv; g++) {
          const pair = Math.floor(t / 300) * Hkv + g;
          const o = t * H * d + g * group * d;
          const got = args.out.subarray(o, o + group * d);
          if (pair < 2) expect(got.every(Number.isNaN)).toBe(true);
          else expect(firstDifference(got, expected.out.subarray(o, o + group * d))).toBe(-1);
        }
      }
      // Too little work to share: nothing done.
      const small = problem([8], 2, 2, 4, 1);
      expect(await helpers.attention(small, async () => undefined, models)).toBe(false);
    } finally {
      await helpers.dispose();
    }
  });

  /** A backward problem: the forward's q, k, v (as `problem`), an output gradient, NaN-filled gradients. */
  function backwardProblem(lengths: number[], H: number, Hkv: number, d: number, seed: number, extra: Partial<AttentionBackwardArguments> = {}): AttentionBackwardArguments {
    const { q, k, v } = problem(lengths, H, Hkv, d, seed);
    const rnd = seededRandom(seed + 1);
    const dOut = Float32Array.from({ length: q.length }, () => (rnd() - 0.5) * 2);
    const nan = (n: number): Float32Array => new Float32Array(n).fill(Number.NaN);
    return { q, k, v, dOut, dq: nan(q.length), dk: nan(k.length), dv: nan(v.length), lengths, numHeads: H, numKvHeads: Hkv, headDim: d, ...extra };
  }
  const freshGradients = (a: AttentionBackwardArguments): AttentionBackwardArguments => ({ ...a, dq: a.dq.slice().fill(Number.NaN), dk: a.dk.slice().fill(Number.NaN), dv: a.dv.slice().fill(Number.NaN) });

  // Pairs cut at and inside sequence bounds, empty and one-token sequences, a window with a scale float32 cannot hold.
  const backwardCases: Array<{ name: string; lengths: number[]; H: number; Hkv: number; d: number; threads: number; extra?: Partial<AttentionBackwardArguments> }> = [
    { name: 'llama-docs geometry, 8 sequences', lengths: Array<number>(8).fill(256), H: 8, Hkv: 4, d: 64, threads: 2 },
    { name: 'one sequence, heads split', lengths: [700], H: 6, Hkv: 3, d: 32, threads: 2 },
    { name: 'mixed lengths, empty and one-token sequences', lengths: [300, 0, 1, 300, 130, 64], H: 4, Hkv: 2, d: 16, threads: 2 },
    { name: 'sliding window, scale 0.3', lengths: [400, 260], H: 4, Hkv: 1, d: 32, threads: 2, extra: { slidingWindow: 100, scale: 0.3 } },
    { name: 'three threads', lengths: [512, 512, 256], H: 8, Hkv: 4, d: 64, threads: 3 },
  ];
  for (const c of backwardCases) {
    it(`shares the attention backward bit for bit with the one-thread call (${c.name})`, async () => {
      const shared = await ort({ threads: c.threads, referenceWorker: workerUrl });
      const alone = await ort({ threads: c.threads, referenceThreads: 1 });
      if (!shared?.attentionBackward || !alone) return;
      const args = backwardProblem(c.lengths, c.H, c.Hkv, c.d, 17, c.extra);
      const expected = freshGradients(args);
      await attentionBackwardWithBatchedSgemm((g) => sgemmBatched(alone, g), expected, (await tryReferenceKernels()) ?? null);
      expect(expected.dq.some(Number.isNaN) || expected.dk.some(Number.isNaN) || expected.dv.some(Number.isNaN)).toBe(false);
      // Without helpers the backend declines (the caller computes it).
      expect(await alone.attentionBackward?.(freshGradients(args))).toBeFalsy();
      for (let round = 0; round < 2; round++) {
        const got = freshGradients(args);
        expect(await shared.attentionBackward(got)).toBe(true);
        expect(firstDifference(got.dq, expected.dq)).toBe(-1);
        expect(firstDifference(got.dk, expected.dk)).toBe(-1);
        expect(firstDifference(got.dv, expected.dv)).toBe(-1);
      }
    });
  }

  it("hands each helper its pairs of the attention backward and copies back exactly their heads' gradients", async () => {
    const alone = await ort({ threads: 1 });
    if (!alone || !workerUrl) return;
    const helpers = await twoHelpers();
    try {
      // 2 sequences x 3 key/value heads: 6 pairs, 2 per thread; the helpers' parts cut the second sequence's heads.
      const lengths = [300, 300];
      const [H, Hkv, d] = [6, 3, 32];
      const args = backwardProblem(lengths, H, Hkv, d, 19);
      const expected = freshGradients(args);
      await attentionBackwardWithBatchedSgemm((g) => sgemmBatched(alone, g), expected, (await tryReferenceKernels()) ?? null);
      const models = await batchedModels(d);
      let localPairs: readonly [number, number] | undefined;
      expect(await helpers.attentionBackward(args, async (pairs) => void (localPairs = pairs), models)).toBe(true);
      expect(localPairs).toEqual([0, 2]);
      const group = H / Hkv;
      for (let t = 0; t < 600; t++) {
        for (let g = 0; g < Hkv; g++) {
          const pair = Math.floor(t / 300) * Hkv + g;
          const oq = t * H * d + g * group * d;
          const okv = t * Hkv * d + g * d;
          const got = [args.dq.subarray(oq, oq + group * d), args.dk.subarray(okv, okv + d), args.dv.subarray(okv, okv + d)];
          const want = [expected.dq.subarray(oq, oq + group * d), expected.dk.subarray(okv, okv + d), expected.dv.subarray(okv, okv + d)];
          for (let i = 0; i < 3; i++) {
            if (pair < 2) expect(got[i]!.every(Number.isNaN)).toBe(true);
            else expect(firstDifference(got[i]!, want[i]!)).toBe(-1);
          }
        }
      }
      // Too little work to share: nothing done.
      expect(await helpers.attentionBackward(backwardProblem([8], 2, 2, 4, 1), async () => undefined, models)).toBe(false);
    } finally {
      await helpers.dispose();
    }
  });

  it('shares the SiLU gate bit for bit with gatedActivationLoop (in place, odd lengths, below the sharing size)', async () => {
    const shared = await ort({ threads: 3, referenceWorker: workerUrl });
    if (!shared) return;
    const rnd = seededRandom(21);
    for (const length of [3 * 65536 + 7, 1 << 20, 1000]) {
      // Wide values (exp's range ends, ties) and some non-finite ones.
      const gate = Float32Array.from({ length }, (_, i) => (i % 997 === 0 ? [Infinity, -Infinity, Number.NaN, 800, -800][i % 5]! : rnd() * 60));
      const up = Float32Array.from({ length }, () => rnd() * 4);
      const expected = new Float32Array(length);
      gatedActivationLoop({ gate, up, out: expected, activation: 'silu' });
      const out = new Float32Array(length).fill(Number.NaN);
      await shared.gatedActivation({ gate, up, out, activation: 'silu', reference: true });
      expect(firstDifference(out, expected)).toBe(-1);
      // In place over the gate, and a prefix (length) of longer arrays.
      const inPlace = gate.slice();
      await shared.gatedActivation({ gate: inPlace, up, out: inPlace, activation: 'silu', reference: true, length: length - 5 });
      expect(firstDifference(inPlace.subarray(0, length - 5), expected.subarray(0, length - 5))).toBe(-1);
      expect(firstDifference(inPlace.subarray(length - 5), gate.subarray(length - 5))).toBe(-1);
    }
  });

  it("shares SwiGLU's backward bit for bit with its definition (in place, odd lengths), and declines what is too short", async () => {
    const shared = await ort({ threads: 3, referenceWorker: workerUrl });
    if (!shared?.swigluBackward) return;
    // Values compared with Object.is: -0 differs from +0, and NaN equals NaN whatever its payload (WebAssembly's
    // canonical NaN may carry another sign than JavaScript's).
    const firstValueDifference = (x: Float32Array, y: Float32Array): number => x.findIndex((v, i) => !Object.is(v, y[i]));
    const rnd = seededRandom(31);
    for (const length of [3 * 65536 + 7, 2 * SILU_HELPER_ROUND * 3 + 5]) {
      const gate = Float32Array.from({ length }, (_, i) => (i % 997 === 0 ? [Infinity, -Infinity, Number.NaN, 800, -800][i % 5]! : rnd() * 30));
      const up = Float32Array.from({ length }, () => rnd() * 4);
      const dOut = Float32Array.from({ length }, () => rnd());
      // The definition: sig = 1 / (1 + fastExp(-g)), float64 inside each element, multiplied left to right.
      const wantGate = new Float32Array(length);
      const wantUp = new Float32Array(length);
      for (let i = 0; i < length; i++) {
        const g = gate[i]!;
        const u = up[i]!;
        const d = dOut[i]!;
        const sig = 1 / (1 + fastExp(-g));
        wantGate[i] = d * u * sig * (1 + g * (1 - sig));
        wantUp[i] = d * g * sig;
      }
      const dGate = new Float32Array(length).fill(Number.NaN);
      const dUp = new Float32Array(length).fill(Number.NaN);
      expect(await shared.swigluBackward({ gate, up, dOut, dGate, dUp })).toBe(true);
      expect(firstValueDifference(dGate, wantGate)).toBe(-1);
      expect(firstValueDifference(dUp, wantUp)).toBe(-1);
      // In place over gate and up, as the block backward calls it.
      const g2 = gate.slice();
      const u2 = up.slice();
      expect(await shared.swigluBackward({ gate: g2, up: u2, dOut, dGate: g2, dUp: u2 })).toBe(true);
      expect(firstValueDifference(g2, wantGate)).toBe(-1);
      expect(firstValueDifference(u2, wantUp)).toBe(-1);
    }
    const few = new Float32Array(1000);
    expect(await shared.swigluBackward({ gate: few, up: few, dOut: few, dGate: few.slice(), dUp: few.slice() })).toBe(false);
    await expect(shared.swigluBackward({ gate: few, up: few, dOut: few, dGate: few, dUp: few, length: 1001 })).rejects.toThrow(/gate/);
    const alone = await ort({ threads: 1, referenceWorker: workerUrl });
    if (alone?.swigluBackward) expect(await alone.swigluBackward({ gate: new Float32Array(1 << 17), up: new Float32Array(1 << 17), dOut: new Float32Array(1 << 17), dGate: new Float32Array(1 << 17), dUp: new Float32Array(1 << 17) })).toBe(false);
  });

  it('hands each helper its share of the SiLU gate and copies back exactly that share', async () => {
    if (!workerUrl) return;
    const helpers = await startReferenceHelpers(1, workerUrl, await referenceKernelsModule(), {});
    expect(helpers?.count).toBe(1);
    try {
      const length = 100_002;
      const rnd = seededRandom(4);
      const gate = Float32Array.from({ length }, () => rnd() * 20);
      const up = Float32Array.from({ length }, () => rnd() * 4);
      const expected = new Float32Array(length);
      gatedActivationLoop({ gate, up, out: expected, activation: 'silu' });
      const out = new Float32Array(length).fill(Number.NaN);
      let local: [number, number] | undefined;
      expect(await helpers!.silu(gate, up, out, length, (from, to) => void (local = [from, to]))).toBe(true);
      expect(local).toEqual([0, 50_000]);
      expect(out.subarray(0, 50_000).every(Number.isNaN)).toBe(true);
      expect(firstDifference(out.subarray(50_000), expected.subarray(50_000))).toBe(-1);
      expect(await helpers!.silu(gate, up, out, 1000, () => undefined)).toBe(false);
      // Longer than one round: each round's first share here.
      const long = 2 * 2 * SILU_HELPER_ROUND + 10;
      const big = { gate: Float32Array.from({ length: long }, () => rnd() * 20), up: Float32Array.from({ length: long }, () => rnd() * 4) };
      const wanted = new Float32Array(long);
      gatedActivationLoop({ gate: big.gate, up: big.up, out: wanted, activation: 'silu' });
      const got = new Float32Array(long).fill(Number.NaN);
      const locals: Array<[number, number]> = [];
      await helpers!.silu(big.gate, big.up, got, long, (from, to) => void locals.push([from, to]));
      const r = 2 * SILU_HELPER_ROUND;
      expect(locals).toEqual([[0, SILU_HELPER_ROUND], [r, r + SILU_HELPER_ROUND], [2 * r, 2 * r + 4]]);
      for (let i = 0; i < long; i++) {
        const here = locals.some(([from, to]) => i >= from && i < to);
        if (here ? !Number.isNaN(got[i]!) : got[i] !== wanted[i] && !(Number.isNaN(got[i]!) && Number.isNaN(wanted[i]!))) throw new Error(`element ${i}`);
      }
      // A helper that died: calls are no longer shared (the caller runs them alone).
      await helpers!.dispose();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await helpers!.silu(gate, up, out, length, () => undefined)).toBe(false);
    } finally {
      await helpers?.dispose();
    }
  });

  it('falls back to the calling thread where the worker module is missing', async () => {
    const missing = new URL('file:///nonexistent/ort-reference-worker.js');
    expect(await startReferenceHelpers(1, missing, await referenceKernelsModule(), {})).toBeUndefined();
    const shared = await ort({ threads: 2, referenceWorker: missing });
    const alone = await ort({ threads: 2, referenceThreads: 1 });
    if (!shared || !alone) return;
    const args = problem([512, 512], 8, 4, 64, 5);
    const single = { ...args, out: args.out.slice() };
    await alone.attention({ ...single, reference: true });
    await shared.attention({ ...args, reference: true });
    expect(firstDifference(args.out, single.out)).toBe(-1);
  });
});
