import type { onnx as OnnxNamespace } from 'onnx-proto';

/** The `onnx` namespace of the `onnx-proto` package (protobufjs-generated ONNX classes), loaded lazily by the ort backend. */
export type Onnx = typeof OnnxNamespace;

/** ONNX `TensorProto.DataType` codes of the element types the ort backend uses. */
export const ONNX_FLOAT = 1;
/** ONNX `TensorProto.DataType` code of float64. */
export const ONNX_DOUBLE = 11;

/** ONNX IR version written into every model (IR 8 = ONNX 1.10, understood by every onnxruntime since 1.10). */
const IR_VERSION = 8;
/** Default-domain opset the graphs are written against (Gemm-13 semantics: `C` optional). */
const OPSET = 17;

/** A dimension: a fixed size, or a symbolic name that makes the session accept any size there. */
type Dimension = number | string;

function valueInfo(onnx: Onnx, name: string, elemType: number, dims: readonly Dimension[]): OnnxNamespace.IValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

function intAttribute(onnx: Onnx, name: string, value: number): OnnxNamespace.IAttributeProto {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: value });
}

function floatAttribute(onnx: Onnx, name: string, value: number): OnnxNamespace.IAttributeProto {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f: value });
}

function encodeModel(onnx: Onnx, graph: OnnxNamespace.IGraphProto, opset = OPSET): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'bitsmith',
    opsetImport: [{ domain: '', version: opset }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** What one cached GEMM session computes. */
export interface GemmGraphSpec {
  /** `ONNX_FLOAT` or `ONNX_DOUBLE`. */
  elemType: number;
  transA: boolean;
  transB: boolean;
  /** The Gemm node's `alpha` attribute (an ONNX float attribute: float32 precision). */
  alpha: number;
  /** The Gemm node's `beta` attribute; 0 means the graph has no `C` input. */
  beta: number;
}

/**
 * Builds a one-node ONNX model `Y = alpha * op(A) * op(B) + beta * C` (ONNX `Gemm`) with symbolic
 * dimensions `m`, `n`, `k`, so that one session serves every shape. Inputs `A`, `B` (and `C` when
 * `beta != 0`), output `Y`, all row-major.
 *
 * @example
 * ```ts
 * const bytes = buildGemmModel(onnx, { elemType: ONNX_FLOAT, transA: false, transB: true, alpha: 1, beta: 0 });
 * const session = await ort.InferenceSession.create(bytes);
 * ```
 */
export function buildGemmModel(onnx: Onnx, spec: GemmGraphSpec): Uint8Array {
  const { elemType, transA, transB, alpha, beta } = spec;
  const inputs = [valueInfo(onnx, 'A', elemType, transA ? ['k', 'm'] : ['m', 'k']), valueInfo(onnx, 'B', elemType, transB ? ['n', 'k'] : ['k', 'n'])];
  if (beta !== 0) inputs.push(valueInfo(onnx, 'C', elemType, ['m', 'n']));
  const node = onnx.NodeProto.create({
    opType: 'Gemm',
    input: inputs.map((i) => i.name!),
    output: ['Y'],
    attribute: [
      intAttribute(onnx, 'transA', transA ? 1 : 0),
      intAttribute(onnx, 'transB', transB ? 1 : 0),
      floatAttribute(onnx, 'alpha', alpha),
      floatAttribute(onnx, 'beta', beta),
    ],
  });
  return encodeModel(onnx, { name: 'bitsmith_gemm', node: [node], input: inputs, output: [valueInfo(onnx, 'Y', elemType, ['m', 'n'])] });
}

/**
 * Builds the ONNX model of a gated MLP with its three weights stored in the model as constants (initializers, packed
 * by onnxruntime once): `Y = (act(A Wg^T) * (A Wu^T)) Wd^T`, `A` `[m, hidden]` with `m` symbolic; each product the
 * node of {@link buildConstantWeightGemmModel} and the activation the nodes of {@link buildGatedActivationModel}, so
 * the result is the same as those sessions run one after another.
 *
 * @example
 * ```ts
 * const bytes = buildGatedMlpModel(onnx, { gate, up, down, hidden: 512, intermediate: 1536, activation: 'silu' });
 * ```
 */
export function buildGatedMlpModel(
  onnx: Onnx,
  spec: { gate: Float32Array; up: Float32Array; down: Float32Array; hidden: number; intermediate: number; activation: 'silu' | 'gelu-tanh' },
): Uint8Array {
  const { hidden, intermediate } = spec;
  const raw = (w: Float32Array): Uint8Array => new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
  const initializer = [
    onnx.TensorProto.create({ name: 'Wg', dataType: ONNX_FLOAT, dims: [intermediate, hidden], rawData: raw(spec.gate) }),
    onnx.TensorProto.create({ name: 'Wu', dataType: ONNX_FLOAT, dims: [intermediate, hidden], rawData: raw(spec.up) }),
    onnx.TensorProto.create({ name: 'Wd', dataType: ONNX_FLOAT, dims: [hidden, intermediate], rawData: raw(spec.down) }),
  ];
  const gemm = (a: string, w: string, y: string): OnnxNamespace.INodeProto => onnx.NodeProto.create({ opType: 'Gemm', input: [a, w], output: [y], attribute: [intAttribute(onnx, 'transB', 1)] });
  const nodes: OnnxNamespace.INodeProto[] = [gemm('A', 'Wg', 'G'), gemm('A', 'Wu', 'U')];
  if (spec.activation === 'silu') {
    nodes.push(onnx.NodeProto.create({ opType: 'Sigmoid', input: ['G'], output: ['sigmoid'] }), onnx.NodeProto.create({ opType: 'Mul', input: ['G', 'sigmoid'], output: ['activated'] }));
  } else {
    nodes.push(
      onnx.NodeProto.create({
        opType: 'Gelu',
        input: ['G'],
        output: ['activated'],
        attribute: [onnx.AttributeProto.create({ name: 'approximate', type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode('tanh') })],
      }),
    );
  }
  nodes.push(onnx.NodeProto.create({ opType: 'Mul', input: ['activated', 'U'], output: ['P'] }), gemm('P', 'Wd', 'Y'));
  return encodeModel(
    onnx,
    { name: 'bitsmith_gated_mlp', node: nodes, input: [valueInfo(onnx, 'A', ONNX_FLOAT, ['m', hidden])], output: [valueInfo(onnx, 'Y', ONNX_FLOAT, ['m', hidden])], initializer },
    spec.activation === 'silu' ? OPSET : 20,
  );
}

/**
 * Builds the ONNX model of a batch of float32 GEMMs `Y[e] = alpha * op(A[e]) op(B[e])` (symbolic `b`, `m`, `n`, `k`):
 * `A` `[b, m, k]` (`[b, k, m]` with `transA`), `B` `[b, n, k]` with `transB` or `[b, k, n]`, `Y` `[b, m, n]`; one
 * onnxruntime contrib `FusedMatMul` node (domain `com.microsoft`), which hands `alpha` and the transpositions to
 * MLAS's batched SGEMM, so `alpha` is applied as `Gemm`'s is (one float32 multiplication of the product) and neither
 * operand is copied first.
 *
 * @example
 * ```ts
 * const bytes = buildBatchedGemmModel(onnx, { transB: true, alpha: 0.125 }); // scores of 64-wide heads
 * ```
 */
export function buildBatchedGemmModel(onnx: Onnx, spec: { transA?: boolean; transB: boolean; alpha: number }): Uint8Array {
  const inputs = [valueInfo(onnx, 'A', ONNX_FLOAT, spec.transA ? ['b', 'k', 'm'] : ['b', 'm', 'k']), valueInfo(onnx, 'B', ONNX_FLOAT, spec.transB ? ['b', 'n', 'k'] : ['b', 'k', 'n'])];
  const node = onnx.NodeProto.create({
    opType: 'FusedMatMul',
    domain: 'com.microsoft',
    input: ['A', 'B'],
    output: ['Y'],
    attribute: [floatAttribute(onnx, 'alpha', spec.alpha), intAttribute(onnx, 'transA', spec.transA ? 1 : 0), intAttribute(onnx, 'transB', spec.transB ? 1 : 0)],
  });
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'bitsmith',
    opsetImport: [{ domain: '', version: OPSET }, { domain: 'com.microsoft', version: 1 }],
    graph: { name: 'bitsmith_batched_gemm', node: [node], input: inputs, output: [valueInfo(onnx, 'Y', ONNX_FLOAT, ['b', 'm', 'n'])] },
  });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * Builds the ONNX model of `Y = A op(W)` with the float32 weight `W` stored in the model as a constant (an
 * initializer), so that onnxruntime packs it for MLAS once, when the session is created: input `A` is `m x k` with
 * `m` symbolic, `W` is `n x k` with `transB` (a linear layer's `[out, in]` weight) or `k x n` without.
 *
 * @example
 * ```ts
 * const bytes = buildConstantWeightGemmModel(onnx, weight, 1536, 512, true); // Y = A W^T, W 1536 x 512
 * ```
 */
export function buildConstantWeightGemmModel(onnx: Onnx, weight: Float32Array, n: number, k: number, transB: boolean): Uint8Array {
  const rawData = new Uint8Array(weight.buffer, weight.byteOffset, weight.byteLength);
  const initializer = [onnx.TensorProto.create({ name: 'W', dataType: ONNX_FLOAT, dims: transB ? [n, k] : [k, n], rawData })];
  const node = onnx.NodeProto.create({ opType: 'Gemm', input: ['A', 'W'], output: ['Y'], attribute: [intAttribute(onnx, 'transB', transB ? 1 : 0)] });
  return encodeModel(onnx, {
    name: 'bitsmith_constant_weight_gemm',
    node: [node],
    input: [valueInfo(onnx, 'A', ONNX_FLOAT, ['m', k])],
    output: [valueInfo(onnx, 'Y', ONNX_FLOAT, ['m', n])],
    initializer,
  });
}

/**
 * Column blocks of a Gram graph over `columns` columns: `blocks` `[start, end)` pairs of about equal width. The
 * products of all pairs of blocks `j <= i` cover the lower triangle (diagonal blocks whole) with `(b + 1) / (2b)`
 * of the full product's flops.
 */
export function gramBlocks(columns: number, blocks: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const b = Math.max(1, Math.min(blocks, columns));
  for (let i = 0; i < b; i++) {
    const start = Math.round((i * columns) / b);
    const end = Math.round(((i + 1) * columns) / b);
    if (end > start) out.push([start, end]);
  }
  return out;
}

/**
 * Builds the ONNX model of one float32 Gram chunk over `columns` columns and any number of rows: input `X` (the
 * chunk, row-major `rows x columns`) is split into the column blocks `B{b} = X[:, s_b:e_b]` of {@link gramBlocks}
 * (one ONNX `Split`, each block contiguous in ORT's memory), and for every pair `j <= i` output
 * `Y{i}_{j} = B{i}^T B{j} = X[:, s_i:e_i]^T X[:, s_j:e_j]` is one `Gemm(transA=1)`: the lower block triangle
 * (diagonal blocks whole), `(b + 1) / 2b` of the full product's flops, in one `session.run`, with no transposed
 * copy of `X` (MLAS transposes each narrow `A` block while packing it).
 *
 * @example
 * ```ts
 * const bytes = buildGramModel(onnx, 1024, gramBlocks(1024, 4)); // 10 products of 256 x 256
 * ```
 */
export function buildGramModel(onnx: Onnx, columns: number, blocks: ReadonlyArray<readonly [number, number]>): Uint8Array {
  const widths = blocks.map(([start, end]) => end - start);
  const nodes: OnnxNamespace.INodeProto[] = [
    onnx.NodeProto.create({
      opType: 'Split',
      input: ['X', 'widths'],
      output: widths.map((_, b) => `B${b}`),
      attribute: [intAttribute(onnx, 'axis', 1)],
    }),
  ];
  const outputs: OnnxNamespace.IValueInfoProto[] = [];
  for (let j = 0; j < blocks.length; j++) {
    for (let i = j; i < blocks.length; i++) {
      nodes.push(
        onnx.NodeProto.create({
          opType: 'Gemm',
          input: [`B${i}`, `B${j}`],
          output: [`Y${i}_${j}`],
          attribute: [intAttribute(onnx, 'transA', 1), intAttribute(onnx, 'transB', 0)],
        }),
      );
      outputs.push(valueInfo(onnx, `Y${i}_${j}`, ONNX_FLOAT, [widths[i]!, widths[j]!]));
    }
  }
  const initializer = [onnx.TensorProto.create({ name: 'widths', dataType: onnx.TensorProto.DataType.INT64, dims: [widths.length], int64Data: widths })];
  return encodeModel(onnx, { name: 'bitsmith_gram', node: nodes, input: [valueInfo(onnx, 'X', ONNX_FLOAT, ['rows', columns])], output: outputs, initializer });
}

/** What one cached attention session computes (see {@link buildAttentionModel}). */
export interface AttentionGraphSpec {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Score scale, applied to the queries (a float32 constant). */
  scale: number;
  /** Soft-cap `c tanh(s / c)` of the scaled scores; undefined: none. */
  softcap: number | undefined;
  /** Blocks of query rows, each against only the keys up to its last row (1: the full square). */
  parts: number;
}

/**
 * Builds the ONNX model of causal grouped-query attention over a batch of `b` equal-length sequences (any `b` and
 * `n`): inputs `Q` `[b, n, numHeads * headDim]`, `K` and `V` `[b, n, numKvHeads * headDim]` (token-major, as a
 * model's projections produce them). The query rows are cut into `parts` blocks at the int64 boundaries `E0 < E1 <
 * ... < E{parts-1} = n` (inputs `[1]`, block `p` is rows `E{p-1} .. E{p}`, `E{-1} = 0`); block `p` attends to keys
 * `0 .. E{p}` only, with the additive mask `M{p}` `[E{p} - E{p-1}, E{p}]` (0 where key `j` is visible to query `i`, a
 * large negative number elsewhere: causal, and the sliding window when there is one), so `parts` blocks compute
 * `(parts + 1) / 2 parts` of the full square of scores. Per block, query heads are grouped by the key/value head they
 * read, `[b, kvHeads, group, rows, d]`, and multiplied with the shared keys broadcast over the group (two batched
 * `MatMul`s); scale (on the queries), soft-cap (`Div`, `Tanh`, `Mul`), mask (`Add`) and `Softmax` over the keys run in
 * between; the blocks' outputs are concatenated into `Y` `[b, n, numHeads * headDim]`, all in one `session.run`.
 * With one part, the formulation of `@bitsmith/formats`' ONNX export of the decoder.
 *
 * @example
 * ```ts
 * const bytes = buildAttentionModel(onnx, { numHeads: 8, numKvHeads: 4, headDim: 64, scale: 0.125, softcap: undefined, parts: 2 });
 * ```
 */
export function buildAttentionModel(onnx: Onnx, spec: AttentionGraphSpec): Uint8Array {
  const { numHeads: h, numKvHeads: hkv, headDim: d, scale, softcap, parts } = spec;
  const group = h / hkv;
  const nodes: OnnxNamespace.INodeProto[] = [];
  const node = (opType: string, input: string[], output: string, attribute: OnnxNamespace.IAttributeProto[] = []): string => {
    nodes.push(onnx.NodeProto.create({ opType, input, output: [output], attribute }));
    return output;
  };
  const perm = (values: number[]): OnnxNamespace.IAttributeProto => onnx.AttributeProto.create({ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: values });
  const int64 = (name: string, values: number[]): OnnxNamespace.ITensorProto => onnx.TensorProto.create({ name, dataType: onnx.TensorProto.DataType.INT64, dims: [values.length], int64Data: values });
  const scalar = (name: string, value: number): OnnxNamespace.ITensorProto => onnx.TensorProto.create({ name, dataType: onnx.TensorProto.DataType.FLOAT, dims: [], floatData: [value] });
  const initializer = [
    int64('q_shape', [0, 0, hkv, group, d]),
    int64('kv_shape', [0, 0, hkv, d]),
    int64('y_shape', [0, 0, h * d]),
    int64('axis_1', [1]),
    int64('axis_2', [2]),
    int64('zero', [0]),
    scalar('scale', scale),
  ];
  if (softcap !== undefined) initializer.push(scalar('softcap', softcap));
  const inputs = [valueInfo(onnx, 'Q', ONNX_FLOAT, ['b', 'n', h * d]), valueInfo(onnx, 'K', ONNX_FLOAT, ['b', 'n', hkv * d]), valueInfo(onnx, 'V', ONNX_FLOAT, ['b', 'n', hkv * d])];
  const scaled = node('Mul', [node('Reshape', ['Q', 'q_shape'], 'q5'), 'scale'], 'q_scaled'); // [b, n, kv, group, d]
  const k4 = node('Reshape', ['K', 'kv_shape'], 'k4'); // [b, n, kv, d]
  const v4 = node('Reshape', ['V', 'kv_shape'], 'v4');
  const outputs: string[] = [];
  for (let p = 0; p < parts; p++) {
    const end = `E${p}`;
    const start = p === 0 ? 'zero' : `E${p - 1}`;
    if (parts > 1) inputs.push(valueInfo(onnx, end, onnx.TensorProto.DataType.INT64, [1]));
    inputs.push(valueInfo(onnx, `M${p}`, ONNX_FLOAT, [`rows${p}`, `keys${p}`]));
    const sliced = (t: string, from: string, name: string): string => (parts === 1 ? t : node('Slice', [t, from, end, 'axis_1'], `${name}_${p}`));
    const queries = node('Transpose', [sliced(scaled, start, 'q')], `q_grouped_${p}`, [perm([0, 2, 3, 1, 4])]); // [b, kv, group, rows, d]
    const keys = node('Unsqueeze', [node('Transpose', [sliced(k4, 'zero', 'k')], `k_t_${p}`, [perm([0, 2, 3, 1])]), 'axis_2'], `k_grouped_${p}`); // [b, kv, 1, d, keys]
    const values = node('Unsqueeze', [node('Transpose', [sliced(v4, 'zero', 'v')], `v_t_${p}`, [perm([0, 2, 1, 3])]), 'axis_2'], `v_grouped_${p}`); // [b, kv, 1, keys, d]
    let scores = node('MatMul', [queries, keys], `scores_${p}`); // [b, kv, group, rows, keys]
    if (softcap !== undefined) scores = node('Mul', [node('Tanh', [node('Div', [scores, 'softcap'], `over_cap_${p}`)], `tanh_${p}`), 'softcap'], `capped_${p}`);
    const probabilities = node('Softmax', [node('Add', [scores, `M${p}`], `masked_${p}`)], `probabilities_${p}`, [intAttribute(onnx, 'axis', -1)]);
    const context = node('MatMul', [probabilities, values], `context_${p}`); // [b, kv, group, rows, d]
    outputs.push(node('Transpose', [context], `context_t_${p}`, [perm([0, 3, 1, 2, 4])])); // [b, rows, kv, group, d]
  }
  const merged = parts === 1 ? outputs[0]! : node('Concat', outputs, 'merged', [intAttribute(onnx, 'axis', 1)]);
  node('Reshape', [merged, 'y_shape'], 'Y');
  return encodeModel(onnx, { name: 'bitsmith_attention', node: nodes, input: inputs, output: [valueInfo(onnx, 'Y', ONNX_FLOAT, ['b', 'n', h * d])], initializer });
}

/**
 * Builds the ONNX model of the gated MLP product over any number of elements: inputs `G` and `U` `[length]`, output
 * `Y = act(G) * U` with `act` SiLU (`G * Sigmoid(G)`) or the tanh approximation of GELU (`Gelu` with
 * `approximate = 'tanh'`, opset 20).
 *
 * @example
 * ```ts
 * const bytes = buildGatedActivationModel(onnx, 'silu');
 * ```
 */
export function buildGatedActivationModel(onnx: Onnx, activation: 'silu' | 'gelu-tanh'): Uint8Array {
  const nodes: OnnxNamespace.INodeProto[] =
    activation === 'silu'
      ? [onnx.NodeProto.create({ opType: 'Sigmoid', input: ['G'], output: ['sigmoid'] }), onnx.NodeProto.create({ opType: 'Mul', input: ['G', 'sigmoid'], output: ['activated'] })]
      : [
          onnx.NodeProto.create({
            opType: 'Gelu',
            input: ['G'],
            output: ['activated'],
            attribute: [onnx.AttributeProto.create({ name: 'approximate', type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode('tanh') })],
          }),
        ];
  nodes.push(onnx.NodeProto.create({ opType: 'Mul', input: ['activated', 'U'], output: ['Y'] }));
  const io = (name: string): OnnxNamespace.IValueInfoProto => valueInfo(onnx, name, ONNX_FLOAT, ['length']);
  return encodeModel(onnx, { name: 'bitsmith_gated_activation', node: nodes, input: [io('G'), io('U')], output: [io('Y')] }, activation === 'silu' ? OPSET : 20);
}
