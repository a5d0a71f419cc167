import type { Backend, BackendOptions, GemmArguments, GramArguments } from '../backend.js';
import { attentionWithSgemm } from './attention-sgemm.js';
import { BackendUnavailableError } from '../backend-unavailable-error.js';
import { gatedActivationReference } from './gated-activation-loop.js';
import { checkAttentionArguments, checkFwhtArguments, checkGatedActivationArguments, checkGemmArguments, checkGramArguments } from './check-arguments.js';
import { fwhtRadix4 } from './fwht-radix4.js';
import { addUpperBlock, gemmEpilogue, mirrorUpper, scaleGram } from './gram-accumulate.js';
import { createJsBackend } from './js-backend.js';

/** The part of a tfjs tensor this backend uses. */
export interface TfjsTensorLike {
  /** Resolves to the values (a `Float32Array` for float32 tensors). */
  data(): Promise<unknown>;
  dispose(): void;
}

/**
 * The part of the `@tensorflow/tfjs-core` (or `@tensorflow/tfjs`) module this backend uses. Declared
 * structurally so that any tfjs 4.x module instance fits and the types do not require tfjs to be installed.
 */
export interface TfjsModuleLike<T extends TfjsTensorLike = TfjsTensorLike> {
  ready(): Promise<void>;
  getBackend(): string;
  tensor2d(values: Float32Array, shape: [number, number], dtype: 'float32'): T;
  matMul(a: T, b: T, transposeA?: boolean, transposeB?: boolean): T;
}

/** Options of {@link createTfjsBackend}. */
export interface TfjsBackendOptions extends BackendOptions {
  /**
   * The tfjs module whose registered backend runs the products, e.g. `import * as tf from '@tensorflow/tfjs-node'`
   * or `'@tensorflow/tfjs'` with `tf.setBackend('webgpu')` already done. Default: `import('@tensorflow/tfjs-core')`,
   * which needs some backend (`@tensorflow/tfjs-backend-cpu`, `-wasm`, `-webgl`, `-webgpu`, or `tfjs-node`) registered.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any tfjs Tensor class
  tf?: TfjsModuleLike<any>;
  /**
   * How `dgemm` runs, since tfjs has no float64: `'js'` (default) computes in float64 with the `js` backend's
   * kernel (exact, single-threaded, slow); `'float32'` rounds `A` and `B` to float32 and runs `matMul` on the tfjs
   * backend (fast, but only float32 precision: relative errors around `1e-7 * sqrt(k)`, unsuitable for
   * factorizations such as Cholesky).
   */
  dgemm?: 'js' | 'float32';
  /** Rows of `X` per `gram` product, summed in float32 by tfjs and then added to the float64 `H`. Default 4096. */
  gramChunkRows?: number;
}

const TFJS_PACKAGE: string = '@tensorflow/tfjs-core';

async function loadTfjs(): Promise<TfjsModuleLike> {
  let module: Record<string, unknown>;
  try {
    // Non-literal specifier: an optional peer dependency that bundlers must not try to resolve.
    const specifier = TFJS_PACKAGE;
    module = (await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier)) as Record<string, unknown>;
  } catch (cause) {
    throw new BackendUnavailableError(
      'tfjs',
      `@tensorflow/tfjs-core could not be loaded (${(cause as Error)?.message ?? String(cause)}); install it with a tfjs backend, or pass your tfjs module as { tf }`,
      { cause },
    );
  }
  return ((typeof module.matMul === 'function' ? module : module.default) ?? module) as unknown as TfjsModuleLike;
}

/**
 * Creates the `tfjs` backend: GEMM-shaped work goes to whatever tfjs backend the user has registered
 * (`tensorflow` from `@tensorflow/tfjs-node`, `webgpu` or `webgl` in a browser, `wasm`, `cpu`), through `tf.matMul`.
 * tfjs computes in float32 (float16 on some WebGL devices), and every call copies its operands into tfjs tensors
 * and the result back, so this backend pays off only where the registered tfjs backend is much faster than the
 * `wasm` one (a GPU, or tfjs-node's TensorFlow).
 *
 * - `sgemm`: `tf.matMul(A, B, transA, transB)`; `alpha`/`beta` applied in JavaScript.
 * - `dgemm`: tfjs has no float64. By default the `js` backend's float64 kernel runs it (exact); with
 *   `dgemm: 'float32'`, operands are rounded to float32 and run on tfjs (see {@link TfjsBackendOptions}).
 * - `gram`: `tf.matMul(X, X, true, false)` over chunks of `gramChunkRows` rows (float32 within a chunk), each added
 *   to the float64 `H`.
 * - `fwht`: tfjs has no Walsh-Hadamard op; radix-4 butterflies in JavaScript ({@link fwhtRadix4}).
 *
 * Nothing here imports `@tensorflow/tfjs-node`; pass it as `tf` if you have it.
 *
 * @param options - `tf` (default: dynamic `import('@tensorflow/tfjs-core')`), `dgemm` (default `'js'`),
 *   `gramChunkRows` (default 4096), `threads` (informational only: tfjs backends manage their own threads; default 1).
 * @returns A {@link Backend} with `name: 'tfjs'`.
 * @throws {@link BackendUnavailableError} when tfjs cannot be loaded or has no backend registered.
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-node';
 * const backend = await createTfjsBackend({ tf });
 * await backend.sgemm({ m, n, k, a, b, c });
 * await backend.dispose();
 * ```
 */
export async function createTfjsBackend(options: TfjsBackendOptions = {}): Promise<Backend> {
  const tf: TfjsModuleLike = options.tf ?? (await loadTfjs());
  if (typeof tf?.matMul !== 'function' || typeof tf.tensor2d !== 'function' || typeof tf.ready !== 'function') {
    throw new BackendUnavailableError('tfjs', 'the given tf object is not a tfjs module (it lacks matMul, tensor2d or ready)');
  }
  try {
    await tf.ready();
    if (!tf.getBackend()) throw new Error('no backend is active');
  } catch (cause) {
    throw new BackendUnavailableError(
      'tfjs',
      `tfjs has no usable backend (${(cause as Error)?.message ?? String(cause)}); register one, e.g. import '@tensorflow/tfjs-backend-cpu' or use @tensorflow/tfjs-node`,
      { cause },
    );
  }
  const dgemmMode = options.dgemm ?? 'js';
  const chunkRows = Math.max(1, Math.floor(options.gramChunkRows ?? 4096));
  const threads = Math.max(1, Math.floor(options.threads ?? 1));
  const js = createJsBackend();
  let disposed = false;
  const live = (op: string): void => {
    if (disposed) throw new Error(`tfjs backend: ${op} called after dispose()`);
  };

  /** Runs `op(A) op(B)` on tfjs in float32 and returns the `m x n` product. */
  async function product(m: number, n: number, k: number, a: Float32Array, b: Float32Array, transA: boolean, transB: boolean): Promise<ArrayLike<number>> {
    const ta = tf.tensor2d(a, transA ? [k, m] : [m, k], 'float32');
    let tb: TfjsTensorLike | undefined;
    let ty: TfjsTensorLike | undefined;
    try {
      tb = tf.tensor2d(b, transB ? [n, k] : [k, n], 'float32');
      const result: TfjsTensorLike = tf.matMul(ta, tb, transA, transB);
      ty = result;
      return (await result.data()) as ArrayLike<number>;
    } finally {
      ta.dispose();
      tb?.dispose();
      ty?.dispose();
    }
  }

  async function gemm32(args: GemmArguments<Float32Array> | GemmArguments<Float64Array>): Promise<void> {
    const { m, n, k, c } = args;
    const alpha = args.alpha ?? 1;
    const beta = args.beta ?? 0;
    const mn = m * n;
    if (mn === 0) return;
    if (k === 0 || alpha === 0) {
      gemmEpilogue(c, new Float32Array(mn), 0, beta);
      return;
    }
    const toF32 = (x: Float32Array | Float64Array, len: number): Float32Array =>
      x instanceof Float32Array ? (x.length === len ? x : x.subarray(0, len)) : Float32Array.from(x.subarray(0, len));
    const p = await product(m, n, k, toF32(args.a, m * k), toF32(args.b, k * n), args.transA ?? false, args.transB ?? false);
    gemmEpilogue(c, p, alpha, beta);
  }

  async function gram(args: GramArguments): Promise<void> {
    const { rows, columns: n, x, h } = args;
    const alpha = args.alpha ?? 1;
    scaleGram(h, n, args.beta ?? 1);
    if (n === 0 || rows === 0 || alpha === 0) return;
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const rowsHere = Math.min(chunkRows, rows - r0);
      const chunk = x.subarray(r0 * n, (r0 + rowsHere) * n);
      const y = await product(n, n, rowsHere, chunk, chunk, true, false);
      addUpperBlock(h, n, y, 0, n, 0, alpha);
    }
    mirrorUpper(h, n);
  }

  return {
    name: 'tfjs',
    threads,
    async sgemm(args) {
      live('sgemm');
      checkGemmArguments('sgemm', args);
      await gemm32(args);
    },
    async dgemm(args) {
      live('dgemm');
      checkGemmArguments('dgemm', args);
      if (dgemmMode === 'float32') await gemm32(args);
      else await js.dgemm(args);
    },
    async gram(args) {
      live('gram');
      checkGramArguments(args);
      await gram(args);
    },
    async fwht(args) {
      live('fwht');
      checkFwhtArguments(args);
      fwhtRadix4(args.rows, args.n, args.data, args.normalize ?? true);
    },
    async attention(args) {
      live('attention');
      checkAttentionArguments(args);
      await attentionWithSgemm(async (g) => {
        checkGemmArguments('sgemm', g);
        await gemm32(g);
      }, args);
    },
    async gatedActivation(args) {
      live('gatedActivation');
      checkGatedActivationArguments(args);
      await gatedActivationReference(args);
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      await js.dispose();
    },
  };
}
