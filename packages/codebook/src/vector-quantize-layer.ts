import { AbortError, InvalidArgumentError, ShapeMismatchError, dequantizeVq, vqBitsPerWeight, type Matrix, type StepWarning, type VqQuantizedTensor, type VqStage } from '@bitsmith/core';
import { defaultBackend, type Backend } from '@bitsmith/linalg';
import { errorFeedbackQuantize } from './error-feedback.js';
import { roundToFloat16 } from './float16.js';
import { weightedKMeans } from './weighted-kmeans.js';

/** Options of {@link vectorQuantizeLayer}. */
export interface VectorQuantizeLayerOptions {
  /** Consecutive input weights per vector (1-8; must divide the row length). */
  dimension: number;
  /** Bits per code (1-16): each codebook holds `2^codebookBits` vectors. */
  codebookBits: number;
  /** Add a second codebook fitted to the residual of the first (residual VQ). Default false. */
  residual?: boolean;
  /** Bits of the residual codebook. Default `codebookBits`. */
  residualCodebookBits?: number;
  /** Rows sharing one codebook. Default: all rows (one codebook per layer). */
  groupRows?: number;
  /** Divide each row by its RMS (stored as float16) before clustering, so rows of any scale share codebooks. Default true. */
  normalize?: boolean;
  /**
   * Assign vectors chunk by chunk with GPTQ-style error feedback and Hessian-weighted distances (GPTVQ). Needs the
   * Hessian. Default true when a Hessian is given; false assigns each vector to its nearest codeword.
   */
  errorFeedback?: boolean;
  /** k-means++ seed. Default 0. */
  seed?: number;
  /** Lloyd iterations of the codebook fit. Default 30. */
  maxIterations?: number;
  /** Hessian dampening. Default 0.01. */
  dampening?: number;
  /** Columns per lazy batch of the error feedback. Default 128. */
  blockSize?: number;
  backend?: Backend;
  signal?: AbortSignal;
}

/** Result of {@link vectorQuantizeLayer}. */
export interface VectorQuantizeLayerResult {
  readonly quantized: VqQuantizedTensor;
  readonly weight: Matrix;
  readonly bitsPerWeight: number;
  readonly warnings: readonly StepWarning[];
}

/** Index of the codeword minimising `(t - c)^T A (t - c)` = `c^T A c - 2 (A t).c + const`. */
function nearestUnderMetric(book: Float32Array, offset: number, count: number, d: number, cAc: Float64Array, cAcOffset: number, y: Float64Array): number {
  let best = 0;
  let bestCost = Infinity;
  for (let c = 0; c < count; c++) {
    const o = offset + c * d;
    let dot = 0;
    for (let a = 0; a < d; a++) dot += y[a]! * book[o + a]!;
    const cost = cAc[cAcOffset + c]! - 2 * dot;
    if (cost < bestCost) {
      bestCost = cost;
      best = c;
    }
  }
  return best;
}

/**
 * Vector quantization of one layer in the style of GPTVQ (van Baalen et al., arXiv:2402.15319) and VPTQ: each row
 * is cut into vectors of `dimension` consecutive input weights; a codebook of `2^codebookBits` vectors (one per
 * block of `groupRows` rows) is initialised by weighted k-means (each vector weighted by its row scale squared times
 * the mean Hessian diagonal of its columns); then vectors are assigned chunk by chunk of `dimension` columns with
 * Hessian-weighted distances `(x - c)^T A (x - c)` and the GPTQ-style error feedback of `errorFeedbackQuantize`.
 * Residual VQ adds a second codebook fitted to the first stage's residuals. Codebooks and row scales are float16.
 *
 * @param weight - `[rows, columns]` float32. Not modified.
 * @param hessian - `columns x columns` float64 `X^T X`, or undefined (plain weighted k-means and nearest assignment).
 * @param options - See {@link VectorQuantizeLayerOptions}.
 * @example
 * ```ts
 * const { weight: wq, bitsPerWeight } = await vectorQuantizeLayer(w, h, { dimension: 2, codebookBits: 5 });
 * ```
 */
export async function vectorQuantizeLayer(weight: Matrix, hessian: Float64Array | undefined, options: VectorQuantizeLayerOptions): Promise<VectorQuantizeLayerResult> {
  const [rows, columns] = weight.shape;
  const d = options.dimension;
  if (!Number.isInteger(d) || d < 1 || d > 8) throw new InvalidArgumentError('dimension', `got ${d}; expected an integer from 1 to 8`);
  if (columns % d !== 0) throw new InvalidArgumentError('dimension', `${d} does not divide the row length ${columns}`);
  const bitsList = [options.codebookBits, ...(options.residual ? [options.residualCodebookBits ?? options.codebookBits] : [])];
  for (const b of bitsList) if (!Number.isInteger(b) || b < 1 || b > 16) throw new InvalidArgumentError('codebookBits', `got ${b}; expected an integer from 1 to 16`);
  const groupRows = options.groupRows ?? rows;
  if (!Number.isInteger(groupRows) || groupRows < 1) throw new InvalidArgumentError('groupRows', `got ${groupRows}; expected a positive integer`);
  if (hessian && hessian.length !== columns * columns) throw new ShapeMismatchError('hessian', [columns, columns], [hessian.length], 'flattened length');
  const errorFeedback = options.errorFeedback ?? hessian !== undefined;
  if (errorFeedback && !hessian) throw new InvalidArgumentError('errorFeedback', 'needs a Hessian');
  const normalize = options.normalize ?? true;
  const perRow = columns / d;
  const groups = Math.ceil(rows / groupRows);
  const data = weight.data;

  // Row scales (RMS, float16) and normalised vectors.
  const scales = new Float32Array(rows).fill(1);
  if (normalize) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < columns; c++) s += data[r * columns + c]! ** 2;
      scales[r] = Math.sqrt(s / columns);
    }
    roundToFloat16(scales);
    for (let r = 0; r < rows; r++) if (!(scales[r]! > 0)) scales[r] = 1;
  }
  const normalized = new Float32Array(rows * columns);
  for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) normalized[r * columns + c] = data[r * columns + c]! / scales[r]!;
  const columnWeight = new Float64Array(perRow).fill(1);
  if (hessian) {
    for (let v = 0; v < perRow; v++) {
      let s = 0;
      for (let a = 0; a < d; a++) s += hessian[(v * d + a) * columns + v * d + a]!;
      columnWeight[v] = s / d;
    }
  }

  // Codebooks by weighted k-means, per group of rows and per stage (the residual stage on the first one's residuals).
  const stages = bitsList.map((b): { bits: number; count: number; codes: Uint16Array; books: Float32Array } => ({
    bits: b,
    count: 2 ** b,
    codes: new Uint16Array(rows * perRow),
    books: new Float32Array(groups * 2 ** b * d),
  }));
  for (let g = 0; g < groups; g++) {
    if (options.signal?.aborted) throw new AbortError();
    const r0 = g * groupRows;
    const r1 = Math.min(rows, r0 + groupRows);
    const target = normalized.slice(r0 * columns, r1 * columns);
    const m = (r1 - r0) * perRow;
    const weights = new Float64Array(m);
    for (let r = r0; r < r1; r++) for (let v = 0; v < perRow; v++) weights[(r - r0) * perRow + v] = scales[r]! ** 2 * columnWeight[v]!;
    let positive = false;
    for (const w of weights) if (w > 0) positive = true;
    for (const [si, stage] of stages.entries()) {
      const k = Math.min(stage.count, m);
      const fit = await weightedKMeans(target, d, {
        clusters: k,
        ...(positive ? { weights } : {}),
        seed: (options.seed ?? 0) + 7919 * g + 104729 * si,
        maxIterations: options.maxIterations ?? 30,
        ...(options.backend ? { backend: options.backend } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const book = stage.books.subarray(g * stage.count * d, (g + 1) * stage.count * d);
      book.set(fit.centroids);
      for (let c = k; c < stage.count; c++) book.set(fit.centroids.subarray((k - 1) * d, k * d), c * d);
      roundToFloat16(book);
      // Residual for the next stage (nearest codeword, Euclidean).
      for (let i = 0; i < m; i++) {
        let best = 0;
        let bestD = Infinity;
        for (let c = 0; c < stage.count; c++) {
          let s = 0;
          for (let a = 0; a < d; a++) s += (target[i * d + a]! - book[c * d + a]!) ** 2;
          if (s < bestD) {
            bestD = s;
            best = c;
          }
        }
        for (let a = 0; a < d; a++) target[i * d + a] -= book[best * d + a]!;
      }
    }
  }

  // Assignment of one chunk (columns start..start+d) of every row under a metric; writes codes and values.
  const y = new Float64Array(d);
  const t = new Float64Array(d);
  const sum = new Float32Array(d);
  const cAc = stages.map((s) => new Float64Array(groups * s.count));
  const computeCAc = (metric: Float64Array): void => {
    for (const [si, s] of stages.entries()) {
      const out = cAc[si]!;
      for (let i = 0; i < groups * s.count; i++) {
        const o = i * d;
        let total = 0;
        for (let a = 0; a < d; a++) {
          let row = 0;
          for (let b = 0; b < d; b++) row += metric[a * d + b]! * s.books[o + b]!;
          total += s.books[o + a]! * row;
        }
        out[i] = total;
      }
    }
  };
  const assignChunk = (start: number, x: Float32Array, metric: Float64Array, out: Float32Array): void => {
    computeCAc(metric);
    const v = start / d;
    for (let r = 0; r < rows; r++) {
      const g = Math.floor(r / groupRows);
      const s = scales[r]!;
      for (let a = 0; a < d; a++) t[a] = x[r * d + a]! / s;
      sum.fill(0);
      for (const [si, stage] of stages.entries()) {
        for (let a = 0; a < d; a++) {
          let acc = 0;
          for (let b = 0; b < d; b++) acc += metric[a * d + b]! * t[b]!;
          y[a] = acc;
        }
        const offset = g * stage.count * d;
        const code = nearestUnderMetric(stage.books, offset, stage.count, d, cAc[si]!, g * stage.count, y);
        stage.codes[r * perRow + v] = code;
        for (let a = 0; a < d; a++) {
          const c = stage.books[offset + code * d + a]!;
          sum[a] += c;
          t[a] -= c;
        }
      }
      for (let a = 0; a < d; a++) out[r * d + a] = sum[a]! * s;
    }
  };
  const warnings: StepWarning[] = [];
  if (errorFeedback) {
    const fed = await errorFeedbackQuantize(weight, hessian!, {
      dimension: d,
      quantizeChunk: assignChunk,
      backend: options.backend ?? (await defaultBackend()),
      step: 'vq',
      ...(options.dampening !== undefined ? { dampening: options.dampening } : {}),
      ...(options.blockSize !== undefined ? { blockSize: options.blockSize } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    warnings.push(...fed.warnings);
  } else {
    const identity = new Float64Array(d * d);
    for (let a = 0; a < d; a++) identity[a * d + a] = 1;
    const x = new Float32Array(rows * d);
    const out = new Float32Array(rows * d);
    for (let start = 0; start < columns; start += d) {
      for (let r = 0; r < rows; r++) for (let a = 0; a < d; a++) x[r * d + a] = data[r * columns + start + a]!;
      assignChunk(start, x, identity, out);
    }
  }
  const quantized: VqQuantizedTensor = {
    shape: [rows, columns],
    dimension: d,
    groupRows,
    stages: stages.map((s): VqStage => ({ codebookBits: s.bits, codes: s.codes, codebooks: s.books })),
    ...(normalize ? { rowScales: scales } : {}),
  };
  return { quantized, weight: dequantizeVq(quantized), bitsPerWeight: vqBitsPerWeight(quantized), warnings };
}
