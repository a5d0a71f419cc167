import { InvalidArgumentError, UnsupportedFormatError, type QuantizedTensor } from '@bitsmith/core';
import { loadOnnxProto, MICROSOFT_DOMAIN, OnnxDataType, OnnxGraphBuilder } from './onnx-graph-builder.js';
import { onnxRopeInverseFrequencies, type OnnxLinearLayer, type OnnxLlamaGraph, type OnnxRmsNorm } from './onnx-llama-graph.js';
import { packMatMulNBits, type MatMulNBitsTensorInfo } from './onnx-matmul-nbits.js';

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

/**
 * Builds the ONNX model of a Llama-family decoder (Llama, Qwen2, Mistral) as bytes: input `input_ids` int64
 * `[batch, sequence]`, output `logits` float32 `[batch, sequence, vocab]`, every sequence starting at position 0
 * (no KV cache). Plain default-domain ops (opset 17) that onnxruntime's CPU provider runs: `Gather` embedding, RMSNorm
 * as `Mul`/`ReduceMean`/`Add`/`Sqrt`/`Reciprocal`/`Mul`, rotate-half RoPE with cos/sin tables gathered by position,
 * grouped-query attention through broadcasting `MatMul` with a causal (and sliding-window) mask from `Range`/`Less`,
 * `Where`, `Softmax`, SwiGLU MLP, residuals, final norm and LM head. Each linear layer named in `quantized` becomes a
 * `com.microsoft` `MatMulNBits` node (see `packMatMulNBits`); the others are float `MatMul` with the transposed
 * weight. Quantization details needed to read the tensors back bit-exactly are recorded under
 * {@link MATMUL_NBITS_METADATA_KEY}.
 *
 * @param graph A `LlamaGraph` from `@bitsmith/models` (or anything of its shape).
 * @param quantized Quantized tensors by linear layer name (`model.layers.0.self_attn.q_proj`, `lm_head`); may be empty.
 * @param options `accuracyLevel` (0), `maxPositions` (`min(maxPositionEmbeddings, 32768)`).
 * @throws UnsupportedFormatError for a tensor MatMulNBits cannot hold, or a layer with a run-time input transform.
 * @example
 * ```ts
 * const bytes = await buildLlamaOnnx(graph, new Map());
 * ```
 */
export async function buildLlamaOnnx(graph: OnnxLlamaGraph, quantized: ReadonlyMap<string, QuantizedTensor>, options: OnnxExportOptions = {}): Promise<{ bytes: Uint8Array; matMulNBits: string[]; floatLinears: string[] }> {
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
  const known = new Set<string>([graph.lmHead.name]);
  for (const b of graph.blocks) {
    if (!b.mlp) throw new UnsupportedFormatError('ONNX export needs a dense MLP in every block (mixtures of experts are not supported yet)');
    for (const l of [...Object.values(b.selfAttention), ...Object.values(b.mlp)]) known.add(l.name);
  }
  for (const name of quantized.keys()) if (!known.has(name)) throw new InvalidArgumentError('quantized', `no linear layer named '${name}' in the graph`);

  const matMulNBits: string[] = [];
  const floatLinears: string[] = [];
  const metadata: Record<string, MatMulNBitsTensorInfo> = {};
  const accuracyLevel = options.accuracyLevel ?? 0;

  const linear = (layer: OnnxLinearLayer, input: string): string => {
    if (layer.inputTransform) {
      throw new UnsupportedFormatError(`${layer.name}: layers with a run-time input transform (online Hadamard) cannot be exported to ONNX yet`);
    }
    const q = quantized.get(layer.name);
    let out: string;
    if (q) {
      if (q.shape[0] !== layer.outFeatures || q.shape[1] !== layer.inFeatures) {
        throw new InvalidArgumentError('quantized', `'${layer.name}' has shape [${q.shape.join(', ')}], the layer [${layer.outFeatures}, ${layer.inFeatures}]`);
      }
      const w = packMatMulNBits(q, layer.name);
      const inputs = [
        input,
        g.initializer(`${layer.name}.weight_B`, OnnxDataType.uint8, [w.n, w.kBlocks, (w.blockSize * w.bits) / 8], w.b),
        g.float(`${layer.name}.weight_scales`, [w.n * w.kBlocks], w.scales),
      ];
      if (w.zeroPoints) inputs.push(g.initializer(`${layer.name}.weight_zero_points`, OnnxDataType.uint8, [w.zeroPoints.length], w.zeroPoints));
      out = g.node('MatMulNBits', inputs, {
        domain: MICROSOFT_DOMAIN,
        name: layer.name,
        attributes: { K: w.k, N: w.n, bits: w.bits, block_size: w.blockSize, ...(accuracyLevel ? { accuracy_level: accuracyLevel } : {}) },
      });
      const symmetric = q.format.type === 'int' && q.format.symmetric;
      metadata[layer.name] = { granularity: q.granularity, scaleEncoding: q.scaleEncoding, symmetric };
      matMulNBits.push(layer.name);
    } else {
      const wt = g.float(`${layer.name}.weight_t`, [layer.inFeatures, layer.outFeatures], transpose(layer.weight.data, layer.outFeatures, layer.inFeatures));
      out = g.node('MatMul', [input, wt], { name: layer.name });
      floatLinears.push(layer.name);
    }
    if (layer.bias) out = g.node('Add', [out, g.float(`${layer.name}.bias`, [layer.outFeatures], layer.bias)]);
    return out;
  };

  // Shared constants.
  const one = g.float('const.one', [], Float32Array.of(1));
  const rmsNorm = (x: string, norm: OnnxRmsNorm): string => {
    // y = x * (1 / sqrt(mean(x^2) + eps)) * weight (Llama RMSNorm, arXiv:1910.07467).
    const meanSquare = g.node('ReduceMean', [g.node('Mul', [x, x])], { attributes: { axes: [-1], keepdims: 1 } });
    const denominator = g.node('Sqrt', [g.node('Add', [meanSquare, g.float(`${norm.name}.eps`, [], Float32Array.of(norm.eps))])]);
    const normed = g.node('Mul', [x, g.node('Div', [one, denominator])]);
    return g.node('Mul', [normed, g.float(`${norm.name}.weight`, [norm.weight.length], norm.weight)]);
  };

  // Embedding and positions 0 .. S-1.
  const embed = g.float('model.embed_tokens.weight', [vocab, hidden], graph.embedTokens.data);
  let x = g.node('Gather', [embed, 'input_ids'], { attributes: { axis: 0 } });
  const seqLength = g.node('Gather', [g.node('Shape', ['input_ids']), g.int64('const.one_i64', [1], [])], { attributes: { axis: 0 } });
  const positions = g.node('Range', [g.int64('const.zero_i64', [0], []), seqLength, g.int64('const.step_i64', [1], [])]);

  // RoPE tables [P, hd/2], gathered by position and doubled to [S, hd] (rotate-half layout).
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
  const table = (name: string, data: Float32Array): string => {
    const rows = g.node('Gather', [g.float(name, [maxPositions, half], data), positions], { attributes: { axis: 0 } });
    return g.node('Concat', [rows, rows], { attributes: { axis: -1 } });
  };
  const cos = table('rope.cos', cosTable);
  const sin = table('rope.sin', sinTable);
  const rope = (t: string): string => {
    // t * cos + rotate_half(t) * sin, rotate_half([a, b]) = [-b, a].
    const [a, b] = g.nodeOutputs('Split', [t], { outputs: 2, attributes: { axis: -1 } });
    const rotated = g.node('Concat', [g.node('Neg', [b!]), a!], { attributes: { axis: -1 } });
    return g.node('Add', [g.node('Mul', [t, cos]), g.node('Mul', [rotated, sin])]);
  };

  // Causal mask [S, S]: key j is hidden from query i when j > i (or j <= i - window with a sliding window).
  const rowsIndex = g.node('Unsqueeze', [positions, g.int64('const.axes_1', [1])]);
  const columnsIndex = g.node('Unsqueeze', [positions, g.int64('const.axes_0', [0])]);
  let mask = g.node('Less', [rowsIndex, columnsIndex]);
  if (c.slidingWindow !== undefined) {
    const shifted = g.node('Add', [columnsIndex, g.int64('const.window_minus_one', [c.slidingWindow - 1], [])]);
    mask = g.node('Or', [mask, g.node('Less', [shifted, rowsIndex])]);
  }
  const negativeInfinity = g.float('const.negative_infinity', [], Float32Array.of(-Infinity));
  const scoreScale = g.float('const.score_scale', [], Float32Array.of(1 / Math.sqrt(hd)));
  const headsShape = (heads: number) => g.int64(g.fresh('const.shape'), [0, 0, heads, hd]);
  const qShape = headsShape(nh);
  const kvShape = headsShape(nkv);
  const groupedShape = g.int64('const.grouped_shape', [0, nkv, group, -1, hd]);
  const mergedShape = g.int64('const.merged_shape', [0, nh, -1, hd]);
  const flatShape = g.int64('const.flat_shape', [0, 0, nh * hd]);
  const axes2 = g.int64('const.axes_2', [2]);
  const toHeads = (t: string, shape: string) => g.node('Transpose', [g.node('Reshape', [t, shape])], { attributes: { perm: [0, 2, 1, 3] } });

  for (const block of graph.blocks) {
    const { qProj, kProj, vProj, oProj } = block.selfAttention;
    const n = rmsNorm(x, block.inputLayernorm);
    const q = rope(toHeads(linear(qProj, n), qShape)); // [B, nh, S, hd]
    const k = rope(toHeads(linear(kProj, n), kvShape)); // [B, nkv, S, hd]
    const v = toHeads(linear(vProj, n), kvShape);
    // Grouped-query attention: query head h = kvh * group + j reads key/value head kvh (arXiv:2305.13245).
    const qGrouped = g.node('Reshape', [q, groupedShape]); // [B, nkv, group, S, hd]
    const kT = g.node('Transpose', [g.node('Unsqueeze', [k, axes2])], { attributes: { perm: [0, 1, 2, 4, 3] } }); // [B, nkv, 1, hd, S]
    const scores = g.node('Mul', [g.node('MatMul', [qGrouped, kT]), scoreScale]); // [B, nkv, group, S, S]
    const probabilities = g.node('Softmax', [g.node('Where', [mask, negativeInfinity, scores])], { attributes: { axis: -1 } });
    const context = g.node('MatMul', [probabilities, g.node('Unsqueeze', [v, axes2])]); // [B, nkv, group, S, hd]
    const merged = g.node('Transpose', [g.node('Reshape', [context, mergedShape])], { attributes: { perm: [0, 2, 1, 3] } }); // [B, S, nh, hd]
    const h = g.node('Add', [x, linear(oProj, g.node('Reshape', [merged, flatShape]))]);

    const { gateProj, upProj, downProj } = block.mlp!;
    const m = rmsNorm(h, block.postAttentionLayernorm);
    const gate = linear(gateProj, m);
    const activated = g.node('Mul', [g.node('Mul', [gate, g.node('Sigmoid', [gate])]), linear(upProj, m)]); // silu(gate) * up
    x = g.node('Add', [h, linear(downProj, activated)]);
  }

  const normed = rmsNorm(x, graph.norm);
  const head = graph.lmHead;
  const tied = head.weight === graph.embedTokens || head.weight.data === graph.embedTokens.data;
  let logits: string;
  if (tied && !quantized.has(head.name) && !head.bias && !head.inputTransform) {
    // Tied embeddings: one stored table, transposed by a node (constant-folded by onnxruntime).
    logits = g.node('MatMul', [normed, g.node('Transpose', [embed], { attributes: { perm: [1, 0] } })], { name: head.name, outputs: ['logits'] });
    floatLinears.push(head.name);
  } else {
    logits = g.node('Identity', [linear(head, normed)], { outputs: ['logits'] });
  }

  const bytes = g.encode({
    name: 'bitsmith_llama',
    inputs: [g.valueInfo('input_ids', OnnxDataType.int64, ['batch', 'sequence'])],
    outputs: [g.valueInfo(logits, OnnxDataType.float, ['batch', 'sequence', vocab])],
    metadata: { [MATMUL_NBITS_METADATA_KEY]: JSON.stringify(metadata) },
    docString: 'Exported by bitsmith: Llama-family decoder, input_ids -> logits (no KV cache).',
  });
  if (bytes.length > MAX_MODEL_BYTES) {
    throw new UnsupportedFormatError(`the ONNX model is ${bytes.length} bytes, over protobuf's 2 GiB limit; external data is not written yet`);
  }
  return { bytes, matMulNBits, floatLinears };
}


/** Options of {@link saveOnnxModel}. */
export interface SaveOnnxOptions extends OnnxExportOptions {
  /** File name inside `outDir`. Default `'model.onnx'` (transformers.js looks for `onnx/model_q4.onnx`: pass that to match). */
  fileName?: string;
}

