/**
 * Where the (sequence, key/value head) pairs of a run of equal-length sequences live, for attention that packs the
 * pairs' rows into contiguous blocks and runs one batched GEMM per chunk of query rows (the forward
 * `attentionWithBatchedSgemm` and the models package's backward `causalAttentionBackwardGemm`).
 *
 * Pair `p` of the run is sequence `floor(p / numKvHeads)` of the run (its first token row `start + that * n`) and
 * key/value head `p % numKvHeads`. In slot `e` of a packed batch, the pair's query heads are stacked head by head
 * (`[group, rows, d]`, rows `r0 .. r0 + rows - 1` of each head), its keys and values are rows `k0 ..` at a stride of
 * `width` rows per slot.
 */
export interface AttentionPairLayout {
  /** First token row of the run's first sequence. */
  readonly start: number;
  /** Tokens per sequence of the run. */
  readonly n: number;
  /** Key/value heads. */
  readonly numKvHeads: number;
  /** Query heads per key/value head. */
  readonly group: number;
  /** Head dimension. */
  readonly d: number;
  /** Floats per token row of the query-shaped matrices (`numHeads * d`). */
  readonly qRow: number;
  /** Floats per token row of the key/value-shaped matrices (`numKvHeads * d`). */
  readonly kvRow: number;
}

/**
 * The first token row and the key/value head of pair `pair` of a run.
 *
 * @example
 * ```ts
 * const { first, g } = attentionPairAt(layout, 5); // with numKvHeads 4: the run's second sequence, key/value head 1
 * ```
 */
export function attentionPairAt(layout: AttentionPairLayout, pair: number): { first: number; g: number } {
  return { first: layout.start + Math.floor(pair / layout.numKvHeads) * layout.n, g: pair % layout.numKvHeads };
}

/**
 * Copies rows `r0 .. r0 + rows - 1` of the `group` query heads of pair `pair` from a `[tokens, qRow]` matrix into slot
 * `e` of a packed `[batch, group * rows, d]` block (element loops: a `subarray` per 64-float row costs more than the
 * copy).
 *
 * @example
 * ```ts
 * packQueryRows(layout, p0 + e, e, r0, rows, q, queries);
 * ```
 */
export function packQueryRows(layout: AttentionPairLayout, pair: number, e: number, r0: number, rows: number, source: Float32Array, packed: Float32Array): void {
  copyQueryRows(layout, pair, e, r0, rows, source, packed, true);
}

/**
 * The inverse of {@link packQueryRows}: writes slot `e` of a packed `[batch, group * rows, d]` block back into rows
 * `r0 .. r0 + rows - 1` of pair `pair`'s query heads in a `[tokens, qRow]` matrix.
 *
 * @example
 * ```ts
 * unpackQueryRows(layout, p0 + e, e, r0, rows, dQueries, dq);
 * ```
 */
export function unpackQueryRows(layout: AttentionPairLayout, pair: number, e: number, r0: number, rows: number, packed: Float32Array, target: Float32Array): void {
  copyQueryRows(layout, pair, e, r0, rows, target, packed, false);
}

/** Rows `r0 .. r0 + rows - 1` of pair `pair`'s query heads between a `[tokens, qRow]` matrix and packed slot `e`. */
function copyQueryRows(layout: AttentionPairLayout, pair: number, e: number, r0: number, rows: number, matrix: Float32Array, packed: Float32Array, toPacked: boolean): void {
  const { group, d, qRow } = layout;
  const { first, g } = attentionPairAt(layout, pair);
  for (let a = 0; a < group; a++) {
    const h = g * group + a;
    for (let i = 0; i < rows; i++) {
      const o = (first + r0 + i) * qRow + h * d;
      const at = ((e * group + a) * rows + i) * d;
      if (toPacked) for (let t = 0; t < d; t++) packed[at + t] = matrix[o + t]!;
      else for (let t = 0; t < d; t++) matrix[o + t] = packed[at + t]!;
    }
  }
}

/**
 * Copies key and value rows `from .. to - 1` of pair `pair` from `[tokens, kvRow]` matrices into slot `e` of packed
 * `[batch, width, d]` blocks, row `j` at `(e * width + j - k0) * d`.
 *
 * @example
 * ```ts
 * packKeyValueRows(layout, p0 + e, e, k0, r1, k0, width, k, v, keys, values); // rows k0 .. r1 - 1
 * ```
 */
export function packKeyValueRows(
  layout: AttentionPairLayout,
  pair: number,
  e: number,
  from: number,
  to: number,
  k0: number,
  width: number,
  k: Float32Array,
  v: Float32Array,
  keys: Float32Array,
  values: Float32Array,
): void {
  const { d, kvRow } = layout;
  const { first, g } = attentionPairAt(layout, pair);
  for (let j = from; j < to; j++) {
    const o = (first + j) * kvRow + g * d;
    const at = (e * width + j - k0) * d;
    for (let t = 0; t < d; t++) {
      keys[at + t] = k[o + t]!;
      values[at + t] = v[o + t]!;
    }
  }
}

/**
 * The keys and values of a batch of pairs packed by {@link packKeyValueChunk} for the previous chunk (rows `k0 .. end -
 * 1` of each pair at a stride of `width` rows), carried from chunk to chunk of one batch. Start each batch with
 * {@link noPackedKeyValues}.
 */
export interface PackedKeyValues {
  k0: number;
  end: number;
  width: number;
}

/** Nothing packed yet (the start of a batch). */
export function noPackedKeyValues(): PackedKeyValues {
  return { k0: -1, end: 0, width: 0 };
}

/**
 * Packs key and value rows `k0 .. r1 - 1` of pairs `p0 .. p0 + batch - 1` into slots of `width` rows (as
 * {@link packKeyValueRows}). When the previous chunk of the batch packed rows `k0 .. end - 1` (no window cut in between),
 * those move up to the new stride (a native move, last pair first so that nothing is overwritten before it moves) and
 * only the rows after them are gathered. Updates `packed`.
 *
 * @example
 * ```ts
 * const packed = noPackedKeyValues();
 * for (let r0 = 0; r0 < n; r0 += rowsPerChunk) packKeyValueChunk(layout, p0, batch, k0, r1, width, k, v, keys, values, packed);
 * ```
 */
export function packKeyValueChunk(
  layout: AttentionPairLayout,
  p0: number,
  batch: number,
  k0: number,
  r1: number,
  width: number,
  k: Float32Array,
  v: Float32Array,
  keys: Float32Array,
  values: Float32Array,
  packed: PackedKeyValues,
): void {
  const { d } = layout;
  const from = packed.k0 === k0 && packed.end > k0 && packed.end <= r1 ? packed.end : k0;
  if (from > k0) {
    const kept = (packed.end - k0) * d;
    for (let e = batch - 1; e > 0; e--) {
      keys.copyWithin(e * width * d, e * packed.width * d, e * packed.width * d + kept);
      values.copyWithin(e * width * d, e * packed.width * d, e * packed.width * d + kept);
    }
  }
  for (let e = 0; e < batch; e++) packKeyValueRows(layout, p0 + e, e, from, r1, k0, width, k, v, keys, values);
  packed.k0 = k0;
  packed.end = r1;
  packed.width = width;
}

/** A run of equal-length sequences whose (sequence, key/value head) pairs share one chunk layout (see {@link equalLengthRuns}). */
export interface EqualLengthRun {
  /** First token row of the run. */
  readonly start: number;
  /** Tokens per sequence (at least 1). */
  readonly n: number;
  /** The run's first pair within the requested range, numbered from the run's first pair. */
  readonly lo: number;
  /** One past the run's last pair within the requested range. */
  readonly hi: number;
}

/**
 * The runs of consecutive equal-length sequences of `lengths` that hold pairs `from .. to - 1` of a call (pair `s *
 * numKvHeads + g` is sequence `s`, key/value head `g`), in order, leaving out empty sequences and runs with no pair in
 * the range.
 *
 * @example
 * ```ts
 * [...equalLengthRuns([4, 4, 2], 2, 0, 6)]; // [{ start: 0, n: 4, lo: 0, hi: 4 }, { start: 8, n: 2, lo: 0, hi: 2 }]
 * ```
 */
export function* equalLengthRuns(lengths: readonly number[], numKvHeads: number, from: number, to: number): Generator<EqualLengthRun> {
  let start = 0;
  for (let s = 0; s < lengths.length; ) {
    const n = lengths[s]!;
    let count = 1;
    while (s + count < lengths.length && lengths[s + count] === n) count++;
    const lo = Math.max(0, from - s * numKvHeads);
    const hi = Math.min(count * numKvHeads, to - s * numKvHeads);
    if (n > 0 && lo < hi) yield { start, n, lo, hi };
    start += count * n;
    s += count;
  }
}

/** One chunk of query rows of a sequence of `n` tokens: rows `r0 .. r1 - 1` and the keys `k0 .. r1 - 1` they see. */
export interface AttentionChunk {
  /** One past the chunk's last query row. */
  readonly r1: number;
  /** Query rows in the chunk (`r1 - r0`). */
  readonly rows: number;
  /** First key any row of the chunk sees (0 without a sliding window). */
  readonly k0: number;
  /** Keys the chunk's score block spans (`r1 - k0`). */
  readonly width: number;
  /** Rows of a pair's packed query block (`group * rows`). */
  readonly mm: number;
}

/**
 * The geometry of the chunk of query rows that starts at `r0` (at most `rowsPerChunk` rows of `n`), with a causal
 * mask and a sliding window of `window` tokens (`Infinity`: none).
 *
 * @example
 * ```ts
 * const { r1, rows, k0, width, mm } = attentionChunk(128, 128, 512, Infinity, 2); // rows 128..255, keys 0..255
 * ```
 */
export function attentionChunk(r0: number, rowsPerChunk: number, n: number, window: number, group: number): AttentionChunk {
  const r1 = Math.min(n, r0 + rowsPerChunk);
  const rows = r1 - r0;
  const k0 = Math.max(0, r0 - window + 1);
  return { r1, rows, k0, width: r1 - k0, mm: group * rows };
}
