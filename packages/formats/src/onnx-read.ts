import { InvalidArgumentError, UnsupportedFormatError, type QuantizedTensor } from '@bitsmith/core';
import type { onnx as OnnxNamespace } from 'onnx-proto';
import { MATMUL_NBITS_METADATA_KEY } from './onnx-export.js';
import { loadOnnxProto, OnnxDataType } from './onnx-graph-builder.js';
import { unpackMatMulNBits, type MatMulNBitsTensorInfo, type MatMulNBitsWeights } from './onnx-matmul-nbits.js';

function attributeInt(node: OnnxNamespace.INodeProto, name: string): number | undefined {
  const a = node.attribute?.find((x) => x.name === name);
  if (!a || a.i === undefined || a.i === null) return undefined;
  return Number(a.i);
}

/** Reads a file of an ONNX model's external data, by its `location` (relative to the model's folder). */
export type ExternalDataReader = (location: string) => Promise<Uint8Array>;

async function tensorBytes(t: OnnxNamespace.ITensorProto, readExternal: ExternalDataReader | undefined): Promise<Uint8Array> {
  if (t.dataLocation === 1) {
    // External data: location / offset / length entries, relative to the model's folder.
    const entry = (key: string) => t.externalData?.find((e) => e.key === key)?.value ?? undefined;
    const location = entry('location');
    if (!location || readExternal === undefined) throw new UnsupportedFormatError(`tensor '${t.name}' is stored externally and no reader of the model's folder was given`);
    const file = await readExternal(location);
    const offset = Number(entry('offset') ?? 0);
    const length = entry('length') === undefined ? file.length - offset : Number(entry('length'));
    return new Uint8Array(file.subarray(offset, offset + length)); // a copy
  }
  // protobufjs hands out Node Buffers that view the whole decoded message: copy (Buffer#slice would not).
  if (t.rawData && t.rawData.length > 0) return new Uint8Array(t.rawData);
  if (t.dataType === OnnxDataType.float && t.floatData?.length) return new Uint8Array(Float32Array.from(t.floatData).buffer);
  if (t.dataType === OnnxDataType.uint8 && t.int32Data?.length) return Uint8Array.from(t.int32Data);
  return new Uint8Array(0);
}

/**
 * Reads every `com.microsoft` `MatMulNBits` node of a decoded ONNX model into core `QuantizedTensor`s, keyed by node
 * name (for models written by `exportOnnx`, the Hugging Face layer name). Quantization details recorded by the
 * exporter (granularity, scale encoding, symmetry) are restored, so its output round-trips bit-exactly; for other
 * producers they are inferred (see `unpackMatMulNBits`).
 *
 * @param bytes The `.onnx` file's bytes.
 * @param readExternal Reads the files of tensors stored as external data (the `node` entry's version also takes the
 *   model's folder).
 * @throws UnsupportedFormatError for a MatMulNBits node whose tensors are not initializers, or with `g_idx`.
 * @example
 * ```ts
 * const tensors = await decodeMatMulNBits(await readFile('model_q4.onnx'));
 * ```
 */
export async function decodeMatMulNBits(bytes: Uint8Array, readExternal?: ExternalDataReader): Promise<Map<string, QuantizedTensor>> {
  const onnx = await loadOnnxProto();
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  const out = new Map<string, QuantizedTensor>();
  // An empty or foreign protobuf decodes to a ModelProto without a graph: that is no ONNX model, not "no layers".
  if (!graph || (graph.node ?? []).length === 0) throw new InvalidArgumentError('graph', `the ModelProto has ${graph ? 'a graph without nodes' : 'no graph'} (ir_version ${String(model.irVersion ?? 'absent')}); not an ONNX model`);
  const initializers = new Map<string, OnnxNamespace.ITensorProto>();
  for (const t of graph.initializer ?? []) if (t.name) initializers.set(t.name, t);
  const metadataEntry = model.metadataProps?.find((p) => p.key === MATMUL_NBITS_METADATA_KEY)?.value;
  const metadata: Record<string, MatMulNBitsTensorInfo & { columnOrder?: string }> = metadataEntry ? JSON.parse(metadataEntry) : {};
  for (const [index, node] of (graph.node ?? []).entries()) {
    if (node.opType !== 'MatMulNBits') continue;
    const name = node.name || node.input?.[1] || `MatMulNBits_${index}`;
    const inputs = node.input ?? [];
    const k = attributeInt(node, 'K');
    const n = attributeInt(node, 'N');
    const bits = attributeInt(node, 'bits') ?? 4;
    const blockSize = attributeInt(node, 'block_size');
    if (k === undefined || n === undefined || blockSize === undefined) throw new UnsupportedFormatError(`MatMulNBits node '${name}' lacks K, N or block_size`);
    if (inputs[4]) throw new UnsupportedFormatError(`MatMulNBits node '${name}' has g_idx (act-order), which is not read yet`);
    const tensor = (i: number): OnnxNamespace.ITensorProto | undefined => {
      const inputName = inputs[i];
      if (!inputName) return undefined;
      const t = initializers.get(inputName);
      if (!t) throw new UnsupportedFormatError(`MatMulNBits node '${name}': input '${inputName}' is not an initializer`);
      return t;
    };
    const bTensor = tensor(1)!;
    const scalesTensor = tensor(2);
    if (!scalesTensor) throw new UnsupportedFormatError(`MatMulNBits node '${name}' has no scales`);
    if (scalesTensor.dataType !== OnnxDataType.float) throw new UnsupportedFormatError(`MatMulNBits node '${name}': only float32 scales are read (got data type ${scalesTensor.dataType})`);
    const zpTensor = tensor(3);
    if (zpTensor && zpTensor.dataType !== OnnxDataType.uint8) throw new UnsupportedFormatError(`MatMulNBits node '${name}': only packed uint8 zero points are read`);
    const scaleBytes = await tensorBytes(scalesTensor, readExternal);
    const weights: MatMulNBitsWeights = {
      k,
      n,
      bits,
      blockSize,
      kBlocks: Math.ceil(k / blockSize),
      b: await tensorBytes(bTensor, readExternal),
      scales: new Float32Array(scaleBytes.buffer, scaleBytes.byteOffset, scaleBytes.byteLength / 4),
      ...(zpTensor ? { zeroPoints: await tensorBytes(zpTensor, readExternal) } : {}),
    };
    const q = unpackMatMulNBits(weights, metadata[name]);
    const orderName = metadata[name]?.columnOrder;
    if (orderName === undefined) {
      out.set(name, q);
      continue;
    }
    // Act-order folded by the exporter: codes are stored in the gathered column order; restore natural order.
    const orderTensor = initializers.get(orderName);
    if (!orderTensor || orderTensor.dataType !== OnnxDataType.int64) throw new UnsupportedFormatError(`MatMulNBits node '${name}': its column order '${orderName}' is not an int64 initializer`);
    const orderBytes = await tensorBytes(orderTensor, readExternal);
    const order = Int32Array.from(new BigInt64Array(orderBytes.buffer, orderBytes.byteOffset, orderBytes.byteLength / 8), Number);
    if (order.length !== k) throw new UnsupportedFormatError(`MatMulNBits node '${name}': column order has ${order.length} entries, K is ${k}`);
    const codes = new Uint8Array(q.codes.length);
    for (let r = 0; r < n; r++) for (let p = 0; p < k; p++) codes[r * k + order[p]!] = q.codes[r * k + p]!;
    out.set(name, { ...q, codes, permutation: order });
  }
  return out;
}

