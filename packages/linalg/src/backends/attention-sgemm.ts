import type { AttentionArguments, GemmArguments } from '../backend.js';
import { fastExp } from '../fast-exp.js';
import { tryReferenceKernels, type ReferenceKernels } from '../reference-kernels.js';

/** Default query rows per score block of {@link attentionWithSgemm}. */
export const ATTENTION_CHUNK = 128;

/**
 * Copies one key/value head of one sequence into contiguous `[n, d]` buffers: rows `start .. start + n` of `k` and `v`
 * (`kvRow` floats per token), columns `offset .. offset + d`. Element loops, no `subarray` allocations per row.
 *
 * @example
 * ```ts
 * packHeadKeysValues(k, v, 0, 512, 64, 256, 64, keys, values); // key/value head 1 of the first sequence
 * ```
 */
export function packHeadKeysValues(k: Float32Array, v: Float32Array, start: number, n: number, offset: number, kvRow: number, d: number, keys: Float32Array, values: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const o = (start + i) * kvRow + offset;
    keys.set(k.subarray(o, o + d), i * d);
    values.set(v.subarray(o, o + d), i * d);
  }
}

/**
 * Causal grouped-query attention (see `AttentionArguments`) with its O(n^2 d) work in float32 GEMMs: per sequence
 * and key/value head, the query heads that share the key/value head are stacked; query rows go in chunks of `chunk`,
 * and each chunk's scores `scale Q K^T` are one `sgemm` against only the keys at or before its last row (so about
 * `1/2 + chunk / 2n` of the full square is computed), the causal (and sliding-window) mask, the soft-cap and the
 * softmax run in JavaScript with float64 row sums (`fastExp`), and `P V` is a second `sgemm`, each output row divided
 * by its sum. Without a soft-cap the softmax rows run in WebAssembly SIMD ({@link createReferenceKernels}, bit for bit
 * the JavaScript loop's arithmetic) where available. The `js`, `wasm` and `tfjs` backends' `attention`, the `ort`
 * backend's for sequences too long for one score graph and for `reference` calls.
 *
 * @param sgemm The float32 GEMM to run the products on (a backend's `sgemm`, or an unserialised inner one).
 * @param args Validated attention arguments.
 * @param chunk Query rows per score block. Default {@link ATTENTION_CHUNK} (128).
 * @param kernels The softmax kernels to use; default a new instance where WebAssembly SIMD is available; `null` runs
 *   the JavaScript loop (as a soft-cap, whose `tanh` is JavaScript's, always does).
 * @example
 * ```ts
 * await attentionWithSgemm((g) => backend.sgemm(g), { q, k, v, out, lengths: [512, 512], numHeads: 8, numKvHeads: 4, headDim: 64 });
 * ```
 */
export async function attentionWithSgemm(
  sgemm: (args: GemmArguments<Float32Array>) => Promise<void>,
  args: AttentionArguments,
  chunk: number = ATTENTION_CHUNK,
  kernels?: ReferenceKernels | null,
): Promise<void> {
  const { q, k, v, out, lengths, numHeads, numKvHeads, headDim: d } = args;
  const window = args.slidingWindow ?? Infinity;
  const group = numHeads / numKvHeads;
  const qRow = numHeads * d;
  const kvRow = numKvHeads * d;
  const scale = args.scale ?? 1 / Math.sqrt(d);
  const cap = args.softcap;
  let maxLength = 0;
  for (const n of lengths) maxLength = Math.max(maxLength, n);
  if (maxLength === 0) return;
  const rowsPerChunk = Math.max(1, Math.min(Math.floor(chunk), maxLength));
  const keys = new Float32Array(maxLength * d);
  const values = new Float32Array(maxLength * d);
  const queries = new Float32Array(group * rowsPerChunk * d);
  const weighted = new Float32Array(group * rowsPerChunk * d);
  // Scores and row sums live in the kernels' memory when they run the softmax (no copies), else in JavaScript arrays.
  const wasm = cap === undefined && kernels !== null ? (kernels ?? (await tryReferenceKernels())) : undefined;
  const { scores, sums: rowSums } = wasm
    ? wasm.reserve(group * rowsPerChunk * maxLength, group * rowsPerChunk)
    : { scores: new Float32Array(group * rowsPerChunk * maxLength), sums: new Float64Array(group * rowsPerChunk) };
  let start = 0;
  for (const n of lengths) {
    for (let g = 0; g < numKvHeads; g++) {
      packHeadKeysValues(k, v, start, n, g * d, kvRow, d, keys, values);
      for (let r0 = 0; r0 < n; r0 += rowsPerChunk) {
        const r1 = Math.min(n, r0 + rowsPerChunk);
        const rows = r1 - r0;
        const k0 = Math.max(0, r0 - window + 1);
        const width = r1 - k0;
        // Queries of the group's heads, stacked head by head: row a * rows + i is head g * group + a, position r0 + i.
        for (let a = 0; a < group; a++) {
          const h = g * group + a;
          for (let i = 0; i < rows; i++) {
            const o = (start + r0 + i) * qRow + h * d;
            queries.set(q.subarray(o, o + d), (a * rows + i) * d);
          }
        }
        const m = group * rows;
        const s = scores.subarray(0, m * width);
        await sgemm({ m, n: width, k: d, a: queries.subarray(0, m * d), b: keys.subarray(k0 * d, r1 * d), c: s, transB: true, alpha: scale });
        // Unnormalised softmax in place (masked entries 0); the row sums divide the rows of P V below.
        if (wasm) wasm.softmaxRows({ group, rows, width, r0, k0, window });
        else softmaxRowsLoop(s, rowSums, group, rows, width, r0, k0, window, cap);
        const y = weighted.subarray(0, m * d);
        await sgemm({ m, n: d, k: width, a: s, b: values.subarray(k0 * d, r1 * d), c: y });
        for (let a = 0; a < group; a++) {
          const h = g * group + a;
          for (let i = 0; i < rows; i++) {
            const o = (start + r0 + i) * qRow + h * d;
            const yo = (a * rows + i) * d;
            const inv = 1 / rowSums[a * rows + i]!;
            for (let t = 0; t < d; t++) out[o + t] = y[yo + t]! * inv;
          }
        }
      }
    }
    start += n;
  }
}

/**
 * The softmax rows of one score block in JavaScript (see {@link attentionWithSgemm}): soft-cap, then the live entries
 * `fastExp(s - max)` with float64 row sums, masked entries 0. The reference the WebAssembly kernel matches bit for bit.
 *
 * @param s Scores of `group` heads of `rows` query rows (positions `r0 ..`) against keys `k0 .. k0 + width`, in place.
 * @param rowSums Receives the `group * rows` row sums.
 * @example
 * ```ts
 * softmaxRowsLoop(scores, sums, 2, 128, 256, 128, 0, Infinity, undefined);
 * ```
 */
export function softmaxRowsLoop(s: Float32Array, rowSums: Float64Array, group: number, rows: number, width: number, r0: number, k0: number, window: number, cap: number | undefined): void {
  for (let a = 0; a < group; a++) {
    for (let i = 0; i < rows; i++) {
      const position = r0 + i;
      const o = (a * rows + i) * width;
      const first = Math.max(k0, position - window + 1) - k0;
      const last = position - k0; // inclusive
      if (cap !== undefined) for (let j = first; j <= last; j++) s[o + j] = cap * Math.tanh(s[o + j]! / cap);
      let max = -Infinity;
      for (let j = first; j <= last; j++) if (s[o + j]! > max) max = s[o + j]!;
      let sum = 0;
      for (let j = first; j <= last; j++) {
        const e = fastExp(s[o + j]! - max);
        s[o + j] = e;
        sum += e;
      }
      rowSums[a * rows + i] = sum;
      for (let j = 0; j < first; j++) s[o + j] = 0;
      for (let j = last + 1; j < width; j++) s[o + j] = 0;
    }
  }
}
