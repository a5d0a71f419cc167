import type { Backend, BatchedGemmArguments } from './backend.js';
import { checkBatchedGemmArguments } from './backends/check-arguments.js';

/**
 * A batch of equal-shape float32 GEMMs `C[e] = alpha * op(A[e]) op(B[e])` (see {@link BatchedGemmArguments}) on
 * `backend`: one call of the backend's `sgemmBatched` where it has one (`ort`: one MLAS batched product, the batch
 * spread over its threads), else one `sgemm` per product on views of the operands. Either way each product is the
 * one `sgemm` computes alone, so results do not depend on which path ran.
 *
 * @example
 * ```ts
 * // Eight 128 x 64 by 64 x 256 products, scores of eight heads:
 * await sgemmBatched(backend, { batch: 8, m: 128, n: 256, k: 64, a: queries, b: keys, c: scores, transB: true, alpha: 0.125 });
 * ```
 */
export async function sgemmBatched(backend: Backend, args: BatchedGemmArguments): Promise<void> {
  checkBatchedGemmArguments(args);
  if (backend.sgemmBatched) return backend.sgemmBatched(args);
  const { batch, m, n, k, a, b, c } = args;
  for (let e = 0; e < batch; e++) {
    await backend.sgemm({
      m,
      n,
      k,
      a: a.subarray(e * m * k, (e + 1) * m * k),
      b: b.subarray(e * n * k, (e + 1) * n * k),
      c: c.subarray(e * m * n, (e + 1) * m * n),
      ...(args.transA ? { transA: true } : {}),
      ...(args.transB ? { transB: true } : {}),
      ...(args.alpha !== undefined ? { alpha: args.alpha } : {}),
    });
  }
}
