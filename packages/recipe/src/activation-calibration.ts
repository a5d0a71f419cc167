import {
  activationQuantizer,
  calibrateInputActivationScales,
  calibrateKvCacheScales,
  composeInputTransforms,
  InvalidArgumentError,
  validateActivationScheme,
  validateKvCacheScheme,
  type ActivationScheme,
  type BlockView,
  type HiddenStatesHandle,
  type KvCacheScheme,
  type LinearView,
  type QuantizableModel,
} from '@bitsmith/core';
import type { CacheActivationScheme, RecipeKvCacheScheme } from './recipe-types.js';

/**
 * Installs input-activation quantizers on a block's selected linear layers, after the block's weights are final and
 * before its output is propagated (so the next block calibrates on what the quantized model computes). Dynamic
 * schemes need no calibration; static schemes calibrate each layer's scales through core's calibration driver
 * (`calibrateInputActivationScales`: one pass of the block on its calibration input, an `ActivationObserver` per layer
 * on exactly what the layer's weight multiplies, after any other run-time input transform, such as an online
 * Hadamard, which the quantizer then follows).
 *
 * @returns The names of the layers that got a quantizer.
 * @example
 * ```ts
 * await installInputActivationQuantizers(model, block, blockInput, { format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true }, block.linears);
 * ```
 */
export async function installInputActivationQuantizers(
  model: QuantizableModel,
  block: BlockView,
  blockInput: HiddenStatesHandle,
  scheme: ActivationScheme,
  layers: readonly LinearView[],
): Promise<string[]> {
  validateActivationScheme(scheme);
  if (layers.length === 0) return [];
  if (scheme.dynamic) {
    for (const view of layers) view.inputTransform = composeInputTransforms(view.inputTransform, activationQuantizer(scheme));
    return layers.map((l) => l.name);
  }
  const { scales } = await calibrateInputActivationScales(model, block, blockInput, scheme, layers.map((view) => ({ name: view.name, inFeatures: view.weight.shape[1] })));
  for (const view of layers) view.inputTransform = composeInputTransforms(view.inputTransform, activationQuantizer(scheme, scales.get(view.name)));
  return layers.map((l) => l.name);
}

/** Resolves a recipe's per-head granularity to groups of the block's head dimension. */
export function resolveKvCacheScheme(scheme: RecipeKvCacheScheme, headDim: number): KvCacheScheme {
  const resolve = (s: CacheActivationScheme | undefined): ActivationScheme | undefined =>
    s && (s.granularity.type === 'head' ? { ...s, granularity: { type: 'group', size: headDim } } : (s as ActivationScheme));
  const keys = resolve(scheme.keys);
  const values = resolve(scheme.values);
  const resolved: KvCacheScheme = {
    ...(keys ? { keys } : {}),
    ...(values ? { values } : {}),
    ...(scheme.hadamard !== undefined ? { hadamard: scheme.hadamard } : {}),
    ...(scheme.preRopeKeys !== undefined ? { preRopeKeys: scheme.preRopeKeys } : {}),
  };
  validateKvCacheScheme(resolved, headDim);
  return resolved;
}

/**
 * Installs KV-cache quantization on a block (after its weights and input-activation quantizers are final, before
 * propagation). Static key or value scales are calibrated through core's calibration driver (`calibrateKvCacheScales`:
 * one pass of the block with watching transforms in the cache's place, on exactly what the cache would hold: after
 * RoPE, or before it with `preRopeKeys`, and after the Hadamard when one is asked for).
 *
 * @throws InvalidArgumentError when the block has no attention cache or the scheme does not fit its geometry.
 * @example
 * ```ts
 * await installKvCacheQuantizers(model, block, blockInput, { keys: int4PerHead, values: int4PerHead, hadamard: true });
 * ```
 */
export async function installKvCacheQuantizers(model: QuantizableModel, block: BlockView, blockInput: HiddenStatesHandle, scheme: RecipeKvCacheScheme): Promise<void> {
  const geometry = block.attention;
  if (!geometry || !('kvCache' in block)) throw new InvalidArgumentError('kvCache', `block ${block.name} has no attention key/value cache that bitsmith can quantize`);
  const resolved = resolveKvCacheScheme(scheme, geometry.headDim);
  const options = { ...(resolved.hadamard ? { hadamard: true } : {}), ...(resolved.preRopeKeys ? { preRopeKeys: true } : {}) };
  const scales = await calibrateKvCacheScales(model, block, blockInput, resolved);
  const keys = resolved.keys && activationQuantizer(resolved.keys, scales.keys);
  const values = resolved.values && activationQuantizer(resolved.values, scales.values);
  block.kvCache = { ...options, ...(keys ? { keys } : {}), ...(values ? { values } : {}) };
}
