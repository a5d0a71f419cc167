import { InvalidArgumentError } from '@bitsmith/core';

/** The tensor constructor of onnxruntime (`ort.Tensor` of onnxruntime-node, -web or -common). */
export type OrtTensorConstructor<T> = new (type: string, data: unknown, dims: readonly number[]) => T;

/** What {@link onnxDecoderFeeds} needs to know about the exported decoder. */
export interface OnnxDecoderShape {
  /** Decoder blocks (`past_key_values.0` .. `past_key_values.{layers-1}`). */
  readonly layers: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  /** Element type of the cache: `'float32'` (default; fp32/q4 models) or `'float16'` (fp16/q4f16 models). */
  readonly precision?: 'float32' | 'float16';
}

/** Options of {@link onnxDecoderFeeds}. */
export interface OnnxDecoderFeedsOptions<T> {
  /** `present.*` outputs of the previous call (keyed `present.N.key` / `present.N.value`); absent for the first call. */
  readonly present?: Readonly<Record<string, T>>;
  /** Tokens already in the cache (the previous calls' total). Default 0. */
  readonly pastLength?: number;
  /** Positions that get logits, counted from the end (`num_logits_to_keep`); 0 (default) = every position. */
  readonly logitsToKeep?: number;
}

/**
 * The input feeds of a decoder written by `buildLlamaOnnx` for one call: `input_ids` (rows of equal length, no
 * padding), an all-ones `attention_mask` over past and new tokens, `position_ids` continuing from `pastLength`, the
 * cache (the previous call's `present.*`, or empty `[batch, numKeyValueHeads, 0, headDim]` tensors) and
 * `num_logits_to_keep`. Feeding each call's `present.*` back in is how generation and chunked evaluation run with the
 * key/value cache, as transformers.js does.
 *
 * @param Tensor `ort.Tensor` of the onnxruntime package in use.
 * @param rows Token ids, one row per sequence (all the same length).
 * @param shape Blocks, key/value heads, head size and precision of the model.
 * @param options `present`, `pastLength` (0), `logitsToKeep` (0: all).
 * @example
 * ```ts
 * let out = await session.run(onnxDecoderFeeds(ort.Tensor, [prompt], shape, { logitsToKeep: 1 }));
 * out = await session.run(onnxDecoderFeeds(ort.Tensor, [[next]], shape, { present: out, pastLength: prompt.length, logitsToKeep: 1 }));
 * ```
 */
export function onnxDecoderFeeds<T>(Tensor: OrtTensorConstructor<T>, rows: readonly ArrayLike<number>[], shape: OnnxDecoderShape, options: OnnxDecoderFeedsOptions<T> = {}): Record<string, T> {
  const batch = rows.length;
  if (batch === 0) throw new InvalidArgumentError('rows', 'expected at least one row of token ids');
  const s = rows[0]!.length;
  const past = options.pastLength ?? 0;
  const ids = new BigInt64Array(batch * s);
  const positions = new BigInt64Array(batch * s);
  rows.forEach((r, b) => {
    if (r.length !== s) throw new InvalidArgumentError('rows', `row ${b} has ${r.length} tokens, row 0 has ${s}; rows must have equal length`);
    for (let j = 0; j < s; j++) {
      ids[b * s + j] = BigInt(r[j]!);
      positions[b * s + j] = BigInt(past + j);
    }
  });
  const feeds: Record<string, T> = {
    input_ids: new Tensor('int64', ids, [batch, s]),
    attention_mask: new Tensor('int64', new BigInt64Array(batch * (past + s)).fill(1n), [batch, past + s]),
    position_ids: new Tensor('int64', positions, [batch, s]),
    num_logits_to_keep: new Tensor('int64', BigInt64Array.of(BigInt(options.logitsToKeep ?? 0)), []),
  };
  const type = shape.precision === 'float16' ? 'float16' : 'float32';
  for (let i = 0; i < shape.layers; i++) {
    for (const part of ['key', 'value']) {
      const given = options.present?.[`present.${i}.${part}`];
      if (options.present && !given) throw new InvalidArgumentError('present', `has no 'present.${i}.${part}'`);
      const empty = () => new Tensor(type, type === 'float16' ? new Uint16Array(0) : new Float32Array(0), [batch, shape.numKeyValueHeads, 0, shape.headDim]);
      feeds[`past_key_values.${i}.${part}`] = given ?? empty();
    }
  }
  return feeds;
}
