import type { onnx as OnnxNamespace } from 'onnx-proto';
import { float32ToFloat16Bits } from './gguf-float16.js';

/** The `onnx` namespace of the `onnx-proto` package (protobufjs classes generated from onnx.proto, ONNX 1.10). */
export type Onnx = typeof OnnxNamespace;

/** ONNX `TensorProto.DataType` codes used by the exporter. */
export const OnnxDataType = { float: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10, double: 11 } as const;

/** ONNX IR version written (IR 8 = ONNX 1.10, read by every onnxruntime since 1.10). */
export const ONNX_IR_VERSION = 8;
/** Default-domain opset the exported graphs use. */
export const ONNX_OPSET = 17;
/** Domain of onnxruntime's contrib operators (`MatMulNBits`). */
export const MICROSOFT_DOMAIN = 'com.microsoft';

let cached: Promise<Onnx> | undefined;

/**
 * Loads the `onnx` namespace of `onnx-proto` once (a CommonJS package: imported dynamically so that both its
 * `default` and named shapes work).
 *
 * @example
 * ```ts
 * const onnx = await loadOnnxProto();
 * const model = onnx.ModelProto.decode(bytes);
 * ```
 */
export function loadOnnxProto(): Promise<Onnx> {
  cached ??= import('onnx-proto').then((module) => {
    const m = module as unknown as { onnx?: Onnx; default?: { onnx?: Onnx } };
    const onnx = m.onnx ?? m.default?.onnx;
    if (!onnx?.ModelProto) throw new Error('onnx-proto does not export the onnx namespace');
    return onnx;
  });
  return cached;
}

/** Data an initializer can be built from. */
export type InitializerData = Float32Array | Float64Array | Uint8Array | Uint16Array | Int32Array | BigInt64Array;

type AttributeValue = number | number[] | { float: number } | { floats: number[] } | { tensor: OnnxNamespace.ITensorProto };

function bytesOf(data: InitializerData): Uint8Array {
  // onnx raw_data is little-endian; so are the machines Node runs on (checked below).
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/**
 * Accumulates the nodes, initializers, inputs and outputs of one ONNX graph and encodes the model with `onnx-proto`.
 * Output names are generated (`name_0`, `name_1`, ...) unless given.
 *
 * @example
 * ```ts
 * const g = new OnnxGraphBuilder(onnx);
 * const y = g.node('Relu', ['x']);
 * const bytes = g.encode({ inputs: [g.valueInfo('x', OnnxDataType.float, ['n'])], outputs: [g.valueInfo(y, OnnxDataType.float, ['n'])] });
 * ```
 */
export class OnnxGraphBuilder {
  readonly onnx: Onnx;
  readonly nodes: OnnxNamespace.INodeProto[] = [];
  readonly initializers: OnnxNamespace.ITensorProto[] = [];
  private counter = 0;

  constructor(onnx: Onnx) {
    if (!LITTLE_ENDIAN) throw new Error('ONNX export needs a little-endian machine');
    this.onnx = onnx;
  }

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  /** Adds an initializer (raw little-endian data) and returns its name. */
  initializer(name: string, dataType: number, dims: readonly number[], data: InitializerData): string {
    this.initializers.push(this.onnx.TensorProto.create({ name, dataType, dims: [...dims], rawData: bytesOf(data) }));
    return name;
  }

  /** A float32 initializer. */
  float(name: string, dims: readonly number[], data: Float32Array): string {
    return this.initializer(name, OnnxDataType.float, dims, data);
  }

  /** A float16 initializer from float32 values (rounded to nearest even; `Infinity` past 65504). */
  float16(name: string, dims: readonly number[], data: Float32Array): string {
    const bits = new Uint16Array(data.length);
    for (let i = 0; i < data.length; i++) bits[i] = float32ToFloat16Bits(data[i]!);
    return this.initializer(name, OnnxDataType.float16, dims, bits);
  }

  /** A float initializer of the given element type (float32 or float16). */
  floatOf(dataType: number, name: string, dims: readonly number[], data: Float32Array): string {
    return dataType === OnnxDataType.float16 ? this.float16(name, dims, data) : this.float(name, dims, data);
  }

  /** An int64 initializer from numbers. */
  int64(name: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.initializer(name, OnnxDataType.int64, dims, BigInt64Array.from(values, (v) => BigInt(v)));
  }

  /** An attribute proto from a plain value: integer, integer list, `{ float }`, `{ floats }` or `{ tensor }`. */
  attribute(name: string, value: AttributeValue): OnnxNamespace.IAttributeProto {
    const T = this.onnx.AttributeProto.AttributeType;
    if (typeof value === 'number') return { name, type: T.INT, i: value };
    if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
    if ('float' in value) return { name, type: T.FLOAT, f: value.float };
    if ('floats' in value) return { name, type: T.FLOATS, floats: value.floats };
    return { name, type: T.TENSOR, t: value.tensor };
  }

  /**
   * Adds a node and returns its first output's name. `outputs` is a count of generated names or explicit names.
   */
  node(
    opType: string,
    inputs: readonly string[],
    options: { outputs?: number | readonly string[]; attributes?: Record<string, AttributeValue>; domain?: string; name?: string } = {},
  ): string {
    const outputs = this.nodeOutputs(opType, inputs, options);
    return outputs[0]!;
  }

  /** Like {@link node} but returns every output name. */
  nodeOutputs(
    opType: string,
    inputs: readonly string[],
    options: { outputs?: number | readonly string[]; attributes?: Record<string, AttributeValue>; domain?: string; name?: string } = {},
  ): string[] {
    const outs = options.outputs;
    const names = typeof outs === 'object' ? [...outs] : Array.from({ length: outs ?? 1 }, () => this.fresh(opType.toLowerCase()));
    const attribute = Object.entries(options.attributes ?? {}).map(([k, v]) => this.attribute(k, v));
    this.nodes.push(
      this.onnx.NodeProto.create({
        opType,
        input: [...inputs],
        output: names,
        name: options.name ?? this.fresh(`${opType}_node`),
        ...(attribute.length ? { attribute } : {}),
        ...(options.domain ? { domain: options.domain } : {}),
      }),
    );
    return names;
  }

  /** A graph input/output description with fixed or symbolic dimensions. */
  valueInfo(name: string, elemType: number, dims: readonly (number | string)[]): OnnxNamespace.IValueInfoProto {
    return this.onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
    });
  }

  /** Encodes the model (opsets: default domain {@link ONNX_OPSET}, `com.microsoft` 1). */
  encode(spec: {
    name: string;
    inputs: OnnxNamespace.IValueInfoProto[];
    outputs: OnnxNamespace.IValueInfoProto[];
    metadata?: Record<string, string>;
    docString?: string;
  }): Uint8Array {
    const onnx = this.onnx;
    const model = onnx.ModelProto.create({
      irVersion: ONNX_IR_VERSION,
      producerName: 'bitsmith',
      opsetImport: [
        { domain: '', version: ONNX_OPSET },
        { domain: MICROSOFT_DOMAIN, version: 1 },
      ],
      metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
      ...(spec.docString ? { docString: spec.docString } : {}),
      graph: { name: spec.name, node: this.nodes, initializer: this.initializers, input: spec.inputs, output: spec.outputs },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
