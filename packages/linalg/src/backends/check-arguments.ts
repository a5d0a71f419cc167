import { InvalidArgumentError, ShapeMismatchError } from '@bitsmith/core';
import type { AttentionArguments, AttentionBackwardArguments, BatchedGemmArguments, FloatArray, GatedActivationArguments, GatedMlpArguments, FwhtArguments, GemmArguments, GramArguments } from '../backend.js';

function checkDimension(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError(name, `expected a non-negative integer, got ${value}`);
}

function checkLength(what: string, array: ArrayLike<number>, rows: number, columns: number): void {
  if (array.length < rows * columns) {
    throw new ShapeMismatchError(what, [rows, columns], [array.length], `the array holds ${array.length} elements, fewer than ${rows * columns}`);
  }
}

/**
 * Validates the arguments of a GEMM call against the {@link Backend} contract (non-negative integer sizes,
 * arrays long enough for their stored shapes) and throws `InvalidArgumentError` / `ShapeMismatchError`.
 * Shared by every backend so that all of them reject the same inputs with the same messages.
 *
 * @example
 * ```ts
 * checkGemmArguments('dgemm', { m: 2, n: 2, k: 2, a, b, c });
 * ```
 */
export function checkGemmArguments<T extends FloatArray>(op: string, args: GemmArguments<T>): void {
  const { m, n, k } = args;
  checkDimension(`${op}.m`, m);
  checkDimension(`${op}.n`, n);
  checkDimension(`${op}.k`, k);
  if (args.transA) checkLength(`${op}.a (transposed)`, args.a, k, m);
  else checkLength(`${op}.a`, args.a, m, k);
  if (args.transB) checkLength(`${op}.b (transposed)`, args.b, n, k);
  else checkLength(`${op}.b`, args.b, k, n);
  checkLength(`${op}.c`, args.c, m, n);
}

/** Validates the arguments of a batched GEMM (see {@link checkGemmArguments}): each operand holds `batch` matrices. */
export function checkBatchedGemmArguments(args: BatchedGemmArguments): void {
  const { batch, m, n, k } = args;
  checkDimension('sgemmBatched.batch', batch);
  checkDimension('sgemmBatched.m', m);
  checkDimension('sgemmBatched.n', n);
  checkDimension('sgemmBatched.k', k);
  checkLength('sgemmBatched.a', args.a, batch, m * k);
  checkLength('sgemmBatched.b', args.b, batch, n * k);
  checkLength('sgemmBatched.c', args.c, batch, m * n);
}

/** Validates the arguments of a Gram call (see {@link checkGemmArguments}). */
export function checkGramArguments(args: GramArguments): void {
  checkDimension('gram.rows', args.rows);
  checkDimension('gram.columns', args.columns);
  checkLength('gram.x', args.x, args.rows, args.columns);
  checkLength('gram.h', args.h, args.columns, args.columns);
}

/** Validates the arguments of an FWHT call: `n` must be a power of two (see {@link checkGemmArguments}). */
export function checkFwhtArguments<T extends FloatArray>(args: FwhtArguments<T>): void {
  checkDimension('fwht.rows', args.rows);
  checkDimension('fwht.n', args.n);
  const n = args.n;
  if (n < 1 || (n & (n - 1)) !== 0) throw new InvalidArgumentError('fwht.n', `expected a power of two, got ${n}`);
  checkLength('fwht.data', args.data, args.rows, n);
}

/**
 * Validates the arguments of an attention call: positive integer head counts and size, `numKvHeads` dividing
 * `numHeads`, non-negative integer lengths, arrays long enough for `sum(lengths)` tokens, a positive finite
 * soft-cap and a sliding window of at least 1 when given (see {@link checkGemmArguments}).
 */
export function checkAttentionArguments(args: AttentionArguments): void {
  const { numHeads, numKvHeads, headDim } = args;
  for (const [name, value] of [['numHeads', numHeads], ['numKvHeads', numKvHeads], ['headDim', headDim]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`attention.${name}`, `expected a positive integer, got ${value}`);
  }
  if (numHeads % numKvHeads !== 0) throw new InvalidArgumentError('attention.numKvHeads', `${numKvHeads} does not divide numHeads ${numHeads}`);
  let tokens = 0;
  for (const n of args.lengths) {
    checkDimension('attention.lengths[]', n);
    tokens += n;
  }
  checkLength('attention.q', args.q, tokens, numHeads * headDim);
  checkLength('attention.k', args.k, tokens, numKvHeads * headDim);
  checkLength('attention.v', args.v, tokens, numKvHeads * headDim);
  checkLength('attention.out', args.out, tokens, numHeads * headDim);
  if (args.scale !== undefined && !Number.isFinite(args.scale)) throw new InvalidArgumentError('attention.scale', `expected a finite number, got ${args.scale}`);
  if (args.softcap !== undefined && !(args.softcap > 0 && Number.isFinite(args.softcap))) throw new InvalidArgumentError('attention.softcap', `expected a positive finite number, got ${args.softcap}`);
  if (args.slidingWindow !== undefined && !(args.slidingWindow >= 1)) throw new InvalidArgumentError('attention.slidingWindow', `expected at least 1, got ${args.slidingWindow}`);
}

/**
 * Validates {@link AttentionBackwardArguments} as {@link checkAttentionArguments} validates the forward's (`dOut` and
 * `dq` query-shaped, `dk` and `dv` key/value-shaped).
 *
 * @throws InvalidArgumentError or ShapeMismatchError naming the argument.
 * @example
 * ```ts
 * checkAttentionBackwardArguments({ q, k, v, dOut, dq, dk, dv, lengths: [256], numHeads: 8, numKvHeads: 4, headDim: 64 });
 * ```
 */
export function checkAttentionBackwardArguments(args: AttentionBackwardArguments): void {
  checkAttentionArguments({ ...args, out: args.dq });
  const { numHeads, numKvHeads, headDim } = args;
  const tokens = args.lengths.reduce((a, b) => a + b, 0);
  checkLength('attention.dOut', args.dOut, tokens, numHeads * headDim);
  checkLength('attention.dk', args.dk, tokens, numKvHeads * headDim);
  checkLength('attention.dv', args.dv, tokens, numKvHeads * headDim);
}

/** Validates the arguments of a gated activation: a known activation, arrays at least `length` long. */
export function checkGatedActivationArguments(args: GatedActivationArguments): void {
  if (args.activation !== 'silu' && args.activation !== 'gelu-tanh') throw new InvalidArgumentError('gatedActivation.activation', `expected 'silu' or 'gelu-tanh', got ${String(args.activation)}`);
  const length = args.length ?? args.gate.length;
  checkDimension('gatedActivation.length', length);
  checkLength('gatedActivation.gate', args.gate, length, 1);
  checkLength('gatedActivation.up', args.up, length, 1);
  checkLength('gatedActivation.out', args.out, length, 1);
}

/**
 * Validates {@link GatedMlpArguments}: the activation, non-negative integer sizes, and arrays that hold their
 * matrices (`gate` and `up` exactly `intermediate x hidden`, `down` exactly `hidden x intermediate`).
 *
 * @throws InvalidArgumentError or ShapeMismatchError naming the argument.
 * @example
 * ```ts
 * checkGatedMlpArguments({ x, rows: 4096, hidden: 512, intermediate: 1536, gate, up, down, activation: 'silu', out });
 * ```
 */
export function checkGatedMlpArguments(args: GatedMlpArguments): void {
  if (args.activation !== 'silu' && args.activation !== 'gelu-tanh') throw new InvalidArgumentError('gatedMlp.activation', `expected 'silu' or 'gelu-tanh', got ${String(args.activation)}`);
  checkDimension('gatedMlp.rows', args.rows);
  checkDimension('gatedMlp.hidden', args.hidden);
  checkDimension('gatedMlp.intermediate', args.intermediate);
  const { rows, hidden, intermediate } = args;
  checkLength('gatedMlp.x', args.x, rows, hidden);
  checkLength('gatedMlp.out', args.out, rows, hidden);
  for (const [name, w, r, c] of [['gate', args.gate, intermediate, hidden], ['up', args.up, intermediate, hidden], ['down', args.down, hidden, intermediate]] as const) {
    if (w.length !== r * c) throw new ShapeMismatchError(`gatedMlp.${name}`, [r, c], [w.length], `a [${r}, ${c}] weight of ${r * c} elements`);
  }
}
