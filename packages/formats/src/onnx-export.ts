import { describeStored, InvalidArgumentError, StoredFormRefusedError, storedShape, UnsupportedFormatError, type QuantizedTensor, type StoredForm } from '@bitsmith/core';
import { loadOnnxProto, MICROSOFT_DOMAIN, OnnxDataType, OnnxGraphBuilder } from './onnx-graph-builder.js';
import { onnxInputTransform } from './onnx-input-transform.js';
import { onnxRopeInverseFrequencies, type OnnxLinearLayer, type OnnxLlamaGraph, type OnnxRmsNorm } from './onnx-llama-graph.js';
import { checkMatMulNBits, packMatMulNBits, type MatMulNBitsTensorInfo } from './onnx-matmul-nbits.js';

/** Metadata key (ModelProto `metadata_props`) under which the exporter records each MatMulNBits layer's granularity, scale encoding and symmetry. */
export const MATMUL_NBITS_METADATA_KEY = 'bitsmith.matmulnbits';

/** Largest protobuf message onnxruntime parses (2 GiB); bigger models would need external data, not written yet. */
const MAX_MODEL_BYTES = 2 ** 31 - 1;

/** Options of {@link buildLlamaOnnx}, {@link exportOnnx} and {@link saveOnnxModel}. */
export interface OnnxExportOptions {
  /**
   * `accuracy_level` attribute of every MatMulNBits node: 0 (default, unset: float32 compute, the dequantized weights
   * exactly) up to 4 (activations quantized to int8 on CPU: faster, less exact).
   */
  accuracyLevel?: 0 | 1 | 2 | 3 | 4;
  /** Positions in the RoPE cos/sin tables (the longest sequence the model accepts). Default `min(maxPositionEmbeddings, 32768)`. */
  maxPositions?: number;
  /**
   * Element type of activations, key/value cache, float weights and MatMulNBits scales: `'float32'` (default;
   * transformers.js `fp32`/`q4`) or `'float16'` (transformers.js `fp16`/`q4f16`, for WebGPU).
   */
  precision?: 'float32' | 'float16';
}

/**
 * Checks that ONNX can carry a layer's stored form, before any work: a `grid` MatMulNBits holds (int2/int4/int8,
 * blocks of 16-256 or per channel, see `checkMatMulNBits`), a `low-rank` branch over such a grid, or `float`.
 *
 * @throws StoredFormRefusedError naming the layer, the kind and why.
 * @example
 * ```ts
 * checkOnnxStored({ kind: 'codebook', tensor }, 'model.layers.0.mlp.up_proj'); // throws: onnx cannot write layer ... stored as codebook
 * ```
 */
export function checkOnnxStored(form: StoredForm, layer: string): void {
  const grid = form.kind === 'grid' ? form.tensor : form.kind === 'low-rank' && form.base.kind === 'grid' ? form.base.tensor : undefined;
  if (form.kind === 'float') return;
  if (!grid) {
    const why: Record<string, string> = {
      lut: 'per-row lookup tables have no MatMulNBits form (use --save fake)',
      codebook: 'vector codebooks have no MatMulNBits form (use --save fake)',
      'sparse-outliers': 'MatMulNBits has no sparse outlier input; the outliers would be dropped (use --save fake)',
      'low-rank': `the low-rank branch is written beside a MatMulNBits grid only; this one sits on ${form.kind === 'low-rank' ? describeStored(form.base) : ''}`,
    };
    throw new StoredFormRefusedError('onnx', { layer }, describeStored(form), why[form.kind] ?? 'no ONNX form');
  }
  try {
    checkMatMulNBits(foldActOrder(grid).tensor, layer);
  } catch (error) {
    if (UnsupportedFormatError.isInstance(error) || InvalidArgumentError.isInstance(error)) throw new StoredFormRefusedError('onnx', { layer }, describeStored(form), error.message);
    throw error;
  }
}

/** What {@link exportOnnx} and {@link saveOnnxModel} wrote. */
export interface OnnxExportResult {
  /** The model file. */
  readonly path: string;
  readonly bytes: number;
  /** Names of the layers written as MatMulNBits nodes. */
  readonly matMulNBits: readonly string[];
  /** Names of the linear layers written as float MatMul nodes. */
  readonly floatLinears: readonly string[];
}

function transpose(data: Float32Array, rows: number, columns: number): Float32Array {
  const out = new Float32Array(rows * columns);
  for (let r = 0; r < rows; r++) {
    const o = r * columns;
    for (let c = 0; c < columns; c++) out[c * rows + r] = data[o + c]!;
  }
  return out;
}

/** Model types whose computation is the Llama one the exporter writes. */
const ONNX_MODEL_TYPES: readonly string[] = ['llama', 'mistral', 'qwen2', 'phi3'];

/** The most negative float32 and float16: masked attention scores (finite, so a fully masked padding row gives no NaN). */
const LOWEST: Record<number, number> = { [OnnxDataType.float]: -3.4028234663852886e38, [OnnxDataType.float16]: -65504 };

/** A layer's stored form as the exporter takes it: a core `StoredForm`, or a bare grid tensor (a `QuantizedTensor`). */
export type OnnxStoredLayer = StoredForm | QuantizedTensor;

function asStored(form: OnnxStoredLayer): StoredForm {
  return 'kind' in form ? form : { kind: 'grid', tensor: form };
}

/**
 * The codes of a grid tensor with an act-order permutation, reordered so that its groups are contiguous (column `p`
 * of the result is column `permutation[p]` of the original; scales and zero points unchanged), and the permutation
 * the layer's input must be gathered with. Channel granularity needs no reorder (one group per row): the permutation
 * is dropped.
 *
 * @example
 * ```ts
 * const { tensor, columnOrder } = foldActOrder(q); // x[..., columnOrder] · dequantize(tensor)^T = x · dequantize(q)^T
 * ```
 */
export function foldActOrder(q: QuantizedTensor): { tensor: QuantizedTensor; columnOrder: Int32Array | undefined } {
  const { permutation, ...rest } = q;
  if (!permutation) return { tensor: q, columnOrder: undefined };
  const [rows, columns] = q.shape;
  if (permutation.length !== columns) throw new InvalidArgumentError('permutation', `has ${permutation.length} entries; the tensor has ${columns} columns`);
  if (q.granularity.type !== 'group') return { tensor: rest, columnOrder: undefined };
  const codes = new (q.codes.constructor as Uint8ArrayConstructor)(q.codes.length);
  for (let r = 0; r < rows; r++) {
    const o = r * columns;
    for (let p = 0; p < columns; p++) codes[o + p] = q.codes[o + permutation[p]!]!;
  }
  return { tensor: { ...rest, codes }, columnOrder: permutation };
}

/**
 * Builds the ONNX model of a Llama-family decoder (Llama, Qwen2, Mistral) in the layout transformers.js and
 * onnxruntime-genai-style callers run: inputs `input_ids` int64 `[batch_size, sequence_length]`, `attention_mask`
 * int64 `[batch_size, total_sequence_length]`, `position_ids` int64 `[batch_size, sequence_length]`,
 * `past_key_values.N.key` / `.value` `[batch_size, numKeyValueHeads, past_sequence_length, headDim]` and
 * `num_logits_to_keep` (int64 scalar; 0 = every position); outputs `logits` float32 `[batch_size, kept, vocab]` and
 * `present.N.key` / `.value` (the past with this call's keys and values appended). Plain default-domain ops (opset 17)
 * that onnxruntime's CPU, WebAssembly and WebGPU providers run: `Gather` embedding, RMSNorm as
 * `Mul`/`ReduceMean`/`Add`/`Sqrt`/`Div` (in float32 also for float16 models), rotate-half RoPE with cos/sin tables
 * gathered by `position_ids`, grouped-query attention through broadcasting `MatMul` over the concatenated cache with
 * a causal (and sliding-window) mask by cache index combined with `attention_mask` (masked scores get the lowest
 * finite value, so padding rows stay finite), SwiGLU MLP, residuals, final norm and LM head.
 *
 * Linear layers are written from their stored forms (`stored`, by layer name): a `grid` becomes a `com.microsoft`
 * `MatMulNBits` node carrying the calibrated codes, scales and zero points as they are (see `packMatMulNBits`; an
 * act-order permutation is folded by gathering the layer's input columns in that order, see {@link foldActOrder});
 * a `low-rank` form over a grid adds its branch as two `MatMul`s (`x B^T A^T`, arXiv:2310.08659 style); a layer
 * without a stored form (or `float`) is a float `MatMul` with its current weight. Online Hadamards (a layer's
 * `inputTransform`) become `MatMul`s by their Kronecker factors (see `onnxInputTransform`). Other stored kinds are
 * refused with `StoredFormRefusedError` before anything is built. Quantization details needed to read the tensors
 * back bit-exactly are recorded under {@link MATMUL_NBITS_METADATA_KEY}.
 *
 * With `precision: 'float16'` (transformers.js' `q4f16`/`fp16`), activations, the key/value cache, float weights and
 * MatMulNBits scales are float16; norms, attention scores and softmax are computed in float32 and `logits` stay
 * float32.
 *
 * @param graph A `LlamaGraph` from `@bitsmith/models` (or anything of its shape).
 * @param stored Stored forms (or grid tensors) by linear layer name (`model.layers.0.self_attn.q_proj`, `lm_head`); may be empty.
 * @param options `accuracyLevel` (0), `maxPositions` (`min(maxPositionEmbeddings, 32768)`), `precision` (`'float32'`).
 * @throws StoredFormRefusedError for a stored kind MatMulNBits cannot carry; UnsupportedFormatError for a run-time
 *   transform with no ONNX form or an architecture the exporter does not write.
 * @example
 * ```ts
 * const { bytes } = await buildLlamaOnnx(graph, storedByLayer);
 * ```
 */
export async function buildLlamaOnnx(graph: OnnxLlamaGraph, stored: ReadonlyMap<string, OnnxStoredLayer>, options: OnnxExportOptions = {}): Promise<{ bytes: Uint8Array; matMulNBits: string[]; floatLinears: string[] }> {
  const onnx = await loadOnnxProto();
  const g = new OnnxGraphBuilder(onnx);
  const c = graph.config;
  const modelType = c.modelType ?? 'llama';
  if (!ONNX_MODEL_TYPES.includes(modelType)) {
    throw new UnsupportedFormatError(`ONNX export writes the Llama computation (${ONNX_MODEL_TYPES.join(', ')}); a ${modelType} model computes differently and is not supported yet`);
  }
  const { hiddenSize: hidden, numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: hd } = c;
  const vocab = graph.embedTokens.shape[0];
  const group = nh / nkv;
  if (!Number.isInteger(group)) throw new InvalidArgumentError('config', `numAttentionHeads (${nh}) must be a multiple of numKeyValueHeads (${nkv})`);
  const layers = new Map<string, OnnxLinearLayer>([[graph.lmHead.name, graph.lmHead]]);
  for (const b of graph.blocks) {
    if (!b.mlp) throw new UnsupportedFormatError('ONNX export needs a dense MLP in every block (mixtures of experts are not supported yet)');
    for (const l of [...Object.values(b.selfAttention), ...Object.values(b.mlp)]) layers.set(l.name, l);
  }
  // Every stored form is checked before any node is built.
  const forms = new Map<string, StoredForm>();
  for (const [name, value] of stored) {
    const layer = layers.get(name);
    if (!layer) throw new InvalidArgumentError('stored', `no linear layer named '${name}' in the graph`);
    const form = asStored(value);
    const [rows, columns] = storedShape(form);
    if (rows !== layer.outFeatures || columns !== layer.inFeatures) {
      throw new InvalidArgumentError('stored', `'${name}' has shape [${rows}, ${columns}], the layer [${layer.outFeatures}, ${layer.inFeatures}]`);
    }
    checkOnnxStored(form, name);
    forms.set(name, form);
  }

  const dataType = options.precision === 'float16' ? OnnxDataType.float16 : OnnxDataType.float;
  const f16 = dataType === OnnxDataType.float16;
  const matMulNBits: string[] = [];
  const floatLinears: string[] = [];
  const metadata: Record<string, MatMulNBitsTensorInfo & { columnOrder?: string }> = {};
  const accuracyLevel = options.accuracyLevel ?? 0;
  const weightOf = (name: string, dims: readonly number[], data: Float32Array) => g.floatOf(dataType, name, dims, data);
  const toFloat32 = (x: string) => (f16 ? g.node('Cast', [x], { attributes: { to: OnnxDataType.float } }) : x);
  const toActivation = (x: string) => (f16 ? g.node('Cast', [x], { attributes: { to: OnnxDataType.float16 } }) : x);

  // Transformed and gathered inputs are shared by the layers that read the same value the same way (q/k/v, gate/up).
  const transformed = new Map<string, string>();
  const gathered: { input: string; order: Int32Array; output: string; indices: string }[] = [];
  const gatherColumns = (input: string, order: Int32Array, name: string): { output: string; indices: string } => {
    const hit = gathered.find((e) => e.input === input && e.order.length === order.length && e.order.every((v, i) => v === order[i]));
    if (hit) return hit;
    const indices = g.initializer(`${name}.act_order`, OnnxDataType.int64, [order.length], BigInt64Array.from(order, (v) => BigInt(v)));
    const entry = { input, order, indices, output: g.node('Gather', [input, indices], { attributes: { axis: -1 } }) };
    gathered.push(entry);
    return entry;
  };

  const matMulNBitsNode = (q: QuantizedTensor, name: string, input: string): string => {
    const { tensor, columnOrder } = foldActOrder(q);
    const gather = columnOrder ? gatherColumns(input, columnOrder, name) : undefined;
    const x = gather ? gather.output : input;
    const w = packMatMulNBits(tensor, name);
    const inputs = [
      x,
      g.initializer(`${name}.weight_B`, OnnxDataType.uint8, [w.n, w.kBlocks, (w.blockSize * w.bits) / 8], w.b),
      weightOf(`${name}.weight_scales`, [w.n * w.kBlocks], w.scales),
    ];
    if (w.zeroPoints) inputs.push(g.initializer(`${name}.weight_zero_points`, OnnxDataType.uint8, [w.zeroPoints.length], w.zeroPoints));
    const out = g.node('MatMulNBits', inputs, {
      domain: MICROSOFT_DOMAIN,
      name,
      attributes: { K: w.k, N: w.n, bits: w.bits, block_size: w.blockSize, ...(accuracyLevel ? { accuracy_level: accuracyLevel } : {}) },
    });
    const symmetric = q.format.type === 'int' && q.format.symmetric;
    metadata[name] = { granularity: q.granularity, scaleEncoding: q.scaleEncoding, symmetric, ...(gather ? { columnOrder: gather.indices } : {}) };
    matMulNBits.push(name);
    return out;
  };

  const linear = (layer: OnnxLinearLayer, input: string): string => {
    if (layer.inputTransform) {
      const description = layer.inputTransform.describe();
      const key = `${input}\u0000${JSON.stringify(description)}`;
      let x = transformed.get(key);
      if (!x) {
        x = onnxInputTransform(g, input, description, layer.name, dataType);
        transformed.set(key, x);
      }
      input = x;
    }
    const form = forms.get(layer.name);
    let out: string;
    if (form?.kind === 'grid') {
      out = matMulNBitsNode(form.tensor, layer.name, input);
    } else if (form?.kind === 'low-rank' && form.base.kind === 'grid') {
      const base = matMulNBitsNode(form.base.tensor, layer.name, input);
      // x (A B)^T = (x B^T) A^T: rank-r branch beside the grid.
      const rank = form.a.shape[1];
      const bT = weightOf(`${layer.name}.lowrank_b_t`, [layer.inFeatures, rank], transpose(form.b.data as Float32Array, rank, layer.inFeatures));
      const aT = weightOf(`${layer.name}.lowrank_a_t`, [rank, layer.outFeatures], transpose(form.a.data as Float32Array, layer.outFeatures, rank));
      const branch = g.node('MatMul', [g.node('MatMul', [input, bT], { name: `${layer.name}.lowrank_b` }), aT], { name: `${layer.name}.lowrank_a` });
      out = g.node('Add', [base, branch]);
    } else {
      const wt = weightOf(`${layer.name}.weight_t`, [layer.inFeatures, layer.outFeatures], transpose(layer.weight.data, layer.outFeatures, layer.inFeatures));
      out = g.node('MatMul', [input, wt], { name: layer.name });
      floatLinears.push(layer.name);
    }
    if (layer.bias) out = g.node('Add', [out, weightOf(`${layer.name}.bias`, [layer.outFeatures], layer.bias)]);
    return out;
  };

  // Shared constants.
  const one = g.float('const.one', [], Float32Array.of(1));
  const rmsNorm = (x: string, norm: OnnxRmsNorm): string => {
    // y = x * (1 / sqrt(mean(x^2) + eps)) * weight (Llama RMSNorm, arXiv:1910.07467), in float32.
    const x32 = toFloat32(x);
    const meanSquare = g.node('ReduceMean', [g.node('Mul', [x32, x32])], { attributes: { axes: [-1], keepdims: 1 } });
    const denominator = g.node('Sqrt', [g.node('Add', [meanSquare, g.float(`${norm.name}.eps`, [], Float32Array.of(norm.eps))])]);
    const normed = g.node('Mul', [x32, g.node('Div', [one, denominator])]);
    return toActivation(g.node('Mul', [normed, g.float(`${norm.name}.weight`, [norm.weight.length], norm.weight)]));
  };
  const int64Axes = (name: string, values: number[]) => g.int64(name, values);

  // Embedding.
  const embed = weightOf('model.embed_tokens.weight', [vocab, hidden], graph.embedTokens.data);
  let x = g.node('Gather', [embed, 'input_ids'], { attributes: { axis: 0 } });

  // RoPE tables [P, hd/2], gathered by position_ids to [B, S, hd/2], doubled to [B, 1, S, hd] (rotate-half layout).
  const maxPositions = options.maxPositions ?? Math.min(c.maxPositionEmbeddings, 32768);
  const half = hd / 2;
  const inv = onnxRopeInverseFrequencies(hd, c.ropeTheta, c.ropeScaling);
  const cosTable = new Float32Array(maxPositions * half);
  const sinTable = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      cosTable[p * half + i] = Math.cos(p * inv[i]!);
      sinTable[p * half + i] = Math.sin(p * inv[i]!);
    }
  }
  const axes1 = int64Axes('const.axes_1', [1]);
  const table = (name: string, data: Float32Array): string => {
    const rows = g.node('Gather', [weightOf(name, [maxPositions, half], data), 'position_ids'], { attributes: { axis: 0 } });
    return g.node('Unsqueeze', [g.node('Concat', [rows, rows], { attributes: { axis: -1 } }), axes1]);
  };
  const cos = table('rope.cos', cosTable);
  const sin = table('rope.sin', sinTable);
  const rope = (t: string): string => {
    // t * cos + rotate_half(t) * sin, rotate_half([a, b]) = [-b, a] (RoFormer, arXiv:2104.09864).
    const [a, b] = g.nodeOutputs('Split', [t], { outputs: 2, attributes: { axis: -1 } });
    const rotated = g.node('Concat', [g.node('Neg', [b!]), a!], { attributes: { axis: -1 } });
    return g.node('Add', [g.node('Mul', [t, cos]), g.node('Mul', [rotated, sin])]);
  };

  // Mask [B, 1, 1, S, T] (true = hidden): key j is hidden from query i (at cache index P + i, P = T - S) when
  // j > P + i, when j <= P + i - window (sliding window), or when attention_mask[b, j] is 0.
  const zero64 = g.int64('const.zero_i64', [0], []);
  const one64 = g.int64('const.one_i64', [1], []);
  const shapeAt = (value: string, axis: number) => g.node('Gather', [g.node('Shape', [value]), g.int64(g.fresh('const.axis'), [axis], [])], { attributes: { axis: 0 } });
  const queryLength = shapeAt('input_ids', 1);
  const totalLength = shapeAt('attention_mask', 1);
  const keyIndex = g.node('Range', [zero64, totalLength, one64]); // [T]
  const queryIndex = g.node('Range', [g.node('Sub', [totalLength, queryLength]), totalLength, one64]); // [S]
  const rowsIndex = g.node('Unsqueeze', [queryIndex, axes1]); // [S, 1]
  const columnsIndex = g.node('Unsqueeze', [keyIndex, int64Axes('const.axes_0', [0])]); // [1, T]
  let causal = g.node('Less', [rowsIndex, columnsIndex]);
  if (c.slidingWindow !== undefined) {
    const shifted = g.node('Add', [columnsIndex, g.int64('const.window_minus_one', [c.slidingWindow - 1], [])]);
    causal = g.node('Or', [causal, g.node('Less', [shifted, rowsIndex])]);
  }
  const padding = g.node('Unsqueeze', [g.node('Equal', ['attention_mask', zero64]), int64Axes('const.axes_123', [1, 2, 3])]); // [B, 1, 1, 1, T]
  const mask = g.node('Or', [causal, padding]); // [B, 1, 1, S, T]
  const lowest = g.float('const.lowest', [], Float32Array.of(LOWEST[OnnxDataType.float]!));
  const scoreScale = g.float('const.score_scale', [], Float32Array.of(1 / Math.sqrt(hd)));
  const headsShape = (heads: number) => g.int64(g.fresh('const.shape'), [0, 0, heads, hd]);
  const qShape = headsShape(nh);
  const kvShape = headsShape(nkv);
  const groupedShape = g.int64('const.grouped_shape', [0, nkv, group, -1, hd]);
  const mergedShape = g.int64('const.merged_shape', [0, nh, -1, hd]);
  const flatShape = g.int64('const.flat_shape', [0, 0, nh * hd]);
  const axes2 = int64Axes('const.axes_2', [2]);
  const toHeads = (t: string, shape: string) => g.node('Transpose', [g.node('Reshape', [t, shape])], { attributes: { perm: [0, 2, 1, 3] } });

  const inputs = [
    g.valueInfo('input_ids', OnnxDataType.int64, ['batch_size', 'sequence_length']),
    g.valueInfo('attention_mask', OnnxDataType.int64, ['batch_size', 'total_sequence_length']),
    g.valueInfo('position_ids', OnnxDataType.int64, ['batch_size', 'sequence_length']),
  ];
  const outputs = [];
  for (const [index, block] of graph.blocks.entries()) {
    const { qProj, kProj, vProj, oProj } = block.selfAttention;
    const pastKey = `past_key_values.${index}.key`;
    const pastValue = `past_key_values.${index}.value`;
    inputs.push(g.valueInfo(pastKey, dataType, ['batch_size', nkv, 'past_sequence_length', hd]), g.valueInfo(pastValue, dataType, ['batch_size', nkv, 'past_sequence_length', hd]));
    const n = rmsNorm(x, block.inputLayernorm);
    const q = rope(toHeads(linear(qProj, n), qShape)); // [B, nh, S, hd]
    const kNew = rope(toHeads(linear(kProj, n), kvShape)); // [B, nkv, S, hd]
    const vNew = toHeads(linear(vProj, n), kvShape);
    const k = g.node('Concat', [pastKey, kNew], { attributes: { axis: 2 }, outputs: [`present.${index}.key`] }); // [B, nkv, T, hd]
    const v = g.node('Concat', [pastValue, vNew], { attributes: { axis: 2 }, outputs: [`present.${index}.value`] });
    outputs.push(g.valueInfo(k, dataType, ['batch_size', nkv, 'total_sequence_length', hd]), g.valueInfo(v, dataType, ['batch_size', nkv, 'total_sequence_length', hd]));
    // Grouped-query attention in float32: query head h = kvh * group + j reads key/value head kvh (arXiv:2305.13245).
    const qGrouped = g.node('Reshape', [toFloat32(q), groupedShape]); // [B, nkv, group, S, hd]
    const kT = g.node('Transpose', [g.node('Unsqueeze', [toFloat32(k), axes2])], { attributes: { perm: [0, 1, 2, 4, 3] } }); // [B, nkv, 1, hd, T]
    const scores = g.node('Mul', [g.node('MatMul', [qGrouped, kT]), scoreScale]); // [B, nkv, group, S, T]
    const probabilities = g.node('Softmax', [g.node('Where', [mask, lowest, scores])], { attributes: { axis: -1 } });
    const context = g.node('MatMul', [probabilities, g.node('Unsqueeze', [toFloat32(v), axes2])]); // [B, nkv, group, S, hd]
    const merged = g.node('Transpose', [g.node('Reshape', [context, mergedShape])], { attributes: { perm: [0, 2, 1, 3] } }); // [B, S, nh, hd]
    const h = g.node('Add', [x, linear(oProj, toActivation(g.node('Reshape', [merged, flatShape])))]);

    const { gateProj, upProj, downProj } = block.mlp!;
    const m = rmsNorm(h, block.postAttentionLayernorm);
    const gate = linear(gateProj, m);
    const activated = g.node('Mul', [g.node('Mul', [gate, g.node('Sigmoid', [gate])]), linear(upProj, m)]); // silu(gate) * up
    x = g.node('Add', [h, linear(downProj, activated)]);
  }

  // Only the last num_logits_to_keep positions reach the head (0 keeps all: Slice from -0 = 0).
  inputs.push(g.valueInfo('num_logits_to_keep', OnnxDataType.int64, []));
  const keepFrom = g.node('Neg', [g.node('Reshape', ['num_logits_to_keep', g.int64('const.shape_1', [1])])]);
  const kept = g.node('Slice', [x, keepFrom, g.int64('const.int64_max', [Number.MAX_SAFE_INTEGER]), axes1]);
  const normed = rmsNorm(kept, graph.norm);
  const head = graph.lmHead;
  const tied = head.weight === graph.embedTokens || head.weight.data === graph.embedTokens.data;
  let logits: string;
  if (tied && !forms.has(head.name) && !head.bias && !head.inputTransform) {
    // Tied embeddings: one stored table, transposed by a node (constant-folded by onnxruntime).
    logits = g.node('MatMul', [normed, g.node('Transpose', [embed], { attributes: { perm: [1, 0] } })], { name: head.name });
    floatLinears.push(head.name);
  } else {
    logits = linear(head, normed);
  }
  logits = g.node(f16 ? 'Cast' : 'Identity', [logits], { outputs: ['logits'], ...(f16 ? { attributes: { to: OnnxDataType.float } } : {}) });
  outputs.unshift(g.valueInfo(logits, OnnxDataType.float, ['batch_size', 'logits_length', vocab]));

  const bytes = g.encode({
    name: 'bitsmith_llama',
    inputs,
    outputs,
    metadata: { [MATMUL_NBITS_METADATA_KEY]: JSON.stringify(metadata) },
    docString: `Exported by bitsmith: Llama-family decoder with key/value cache (${f16 ? 'float16' : 'float32'} activations), input_ids/attention_mask/position_ids/past_key_values -> logits/present.`,
  });
  if (bytes.length > MAX_MODEL_BYTES) {
    throw new UnsupportedFormatError(`the ONNX model is ${bytes.length} bytes, over protobuf's 2 GiB limit; external data is not written yet`);
  }
  return { bytes, matMulNBits, floatLinears };
}


/** Options of {@link saveOnnxModel}. */
export interface SaveOnnxOptions extends OnnxExportOptions {
  /** File name inside `outDir`. Default `'model.onnx'`. */
  fileName?: string;
}

