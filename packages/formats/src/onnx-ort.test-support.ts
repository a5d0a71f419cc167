import { onnxDecoderFeeds, type OnnxDecoderShape } from './onnx-decoder-feeds.js';

/** Test support: onnxruntime-node (an optional dependency of @bitsmith/linalg), loaded dynamically like linalg's ort backend. */

export interface OrtTensorLike {
  readonly data: unknown;
  readonly dims: readonly number[];
}
export interface OrtSessionLike {
  run(feeds: Record<string, OrtTensorLike>): Promise<Record<string, OrtTensorLike>>;
  release(): Promise<void>;
}
export interface OrtLike {
  InferenceSession: { create(model: Uint8Array | string, options?: Record<string, unknown>): Promise<OrtSessionLike> };
  Tensor: new (type: string, data: unknown, dims: readonly number[]) => OrtTensorLike;
}

/** Loads onnxruntime-node, or undefined when it is not installed. */
export async function loadOrt(): Promise<OrtLike | undefined> {
  try {
    const specifier: string = 'onnxruntime-node';
    const module = (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;
    const ort = (module.InferenceSession ? module : module.default) as OrtLike;
    return typeof ort?.InferenceSession?.create === 'function' ? ort : undefined;
  } catch {
    return undefined;
  }
}

/** Session options used by the checks: 2 threads, full graph optimizations, errors only. */
export const SESSION_OPTIONS = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 } as const;

/** Runs a decoder written by `buildLlamaOnnx` on rows of equal length from position 0 (empty cache) and returns the float32 logits of every position. */
export async function ortLogits(ort: OrtLike, session: OrtSessionLike, rows: readonly ArrayLike<number>[], shape: OnnxDecoderShape): Promise<Float32Array> {
  const out = await session.run(onnxDecoderFeeds(ort.Tensor, rows, shape));
  return out.logits!.data as Float32Array;
}

/** The decoder shape of a `LlamaGraph`-like model (blocks, key/value heads, head size). */
export function decoderShape(graph: { config: { numKeyValueHeads: number; headDim: number }; blocks: readonly unknown[] }, precision?: 'float32' | 'float16'): OnnxDecoderShape {
  return { layers: graph.blocks.length, numKeyValueHeads: graph.config.numKeyValueHeads, headDim: graph.config.headDim, ...(precision ? { precision } : {}) };
}
