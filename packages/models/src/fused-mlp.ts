import { heldMatrixAccess } from '@bitsmith/core';
import type { Backend } from '@bitsmith/linalg';
import type { LinearLayer } from './linear-layer.js';

/**
 * The gated MLP `down(act(gate(x)) * up(x))` of plain float layers as the backend's one-call `gatedMlp` (weights kept
 * prepared as `constantB` keeps one; same bits as the three products and the native activation), for a forward with
 * constant weights. Returns the output, or `undefined` when the fused call does not apply and the caller runs the
 * layers one by one: a backend without `gatedMlp` or one that declines, a layer with an input transform or a bias, a
 * weight held outside float32 and streamed, or a weight whose shape is not the layer's (the one-by-one path reports
 * that as an error).
 *
 * @example
 * ```ts
 * const out = (await fusedGatedMlp(backend, mlp, normed, tokens, 'silu', buffer)) ?? (await mlpLayerByLayer());
 * ```
 */
export async function fusedGatedMlp(
  backend: Backend,
  mlp: { gateProj: LinearLayer; upProj: LinearLayer; downProj: LinearLayer },
  x: Float32Array,
  rows: number,
  activation: 'silu' | 'gelu-tanh',
  out?: Float32Array,
): Promise<Float32Array | undefined> {
  if (!backend.gatedMlp || rows === 0) return undefined;
  const { gateProj, upProj, downProj } = mlp;
  const hidden = gateProj.inFeatures;
  const intermediate = gateProj.outFeatures;
  const plain = (layer: LinearLayer, outFeatures: number, inFeatures: number): Float32Array | undefined => {
    if (layer.inputTransform || layer.bias || layer.outFeatures !== outFeatures || layer.inFeatures !== inFeatures) return undefined;
    const { weight } = layer;
    const held = heldMatrixAccess(weight);
    if (held && held.streamed && !held.resident) return undefined;
    if (weight.shape[0] !== outFeatures || weight.shape[1] !== inFeatures || weight.data.length !== outFeatures * inFeatures) return undefined;
    return weight.data;
  };
  const gate = plain(gateProj, intermediate, hidden);
  const up = plain(upProj, intermediate, hidden);
  const down = plain(downProj, hidden, intermediate);
  if (!gate || !up || !down) return undefined;
  const y = out && out.length >= rows * hidden ? out.subarray(0, rows * hidden) : new Float32Array(rows * hidden);
  return (await backend.gatedMlp({ x, rows, hidden, intermediate, gate, up, down, activation, out: y })) ? y : undefined;
}
