import {
  ActivationObserver,
  activationQuantizer,
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
  type RuntimeInputTransform,
} from '@bitsmith/core';
import type { CacheActivationScheme, RecipeKvCacheScheme } from './recipe-types.js';

/** A run-time transform that only watches: feeds what passes through it to an observer and leaves it unchanged. */
function watching(observer: ActivationObserver): RuntimeInputTransform {
  return {
    name: 'activation-observer',
    apply: (input, rows) => observer.observe(input, rows),
    describe: () => ({ kind: 'activation-observer' }),
  };
}

/**
 * Installs input-activation quantizers on a block's selected linear layers, after the block's weights are final and
 * before its output is propagated (so the next block calibrates on what the quantized model computes). Dynamic
 * schemes need no calibration; static schemes run the block once on its calibration input and calibrate each layer's
 * scales with an {@link ActivationObserver} on exactly what the layer's weight multiplies (after any other run-time
 * input transform, such as an online Hadamard, which the quantizer then follows).
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
  const observers = new Map(layers.map((view) => [view.name, new ActivationObserver(scheme, view.weight.shape[1])]));
  await model.runBlock(block.index, blockInput, (name, input) => {
    observers.get(name)?.observe(input.data as Float32Array, input.shape[0]);
  });
  for (const view of layers) {
    const scales = observers.get(view.name)!.scales();
    view.inputTransform = composeInputTransforms(view.inputTransform, activationQuantizer(scheme, scales));
  }
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
 * propagation). Static key or value scales are calibrated by running the block once with watching transforms in the
 * cache's place, on exactly what the cache would hold (after RoPE, or before it with `preRopeKeys`, and after the
 * Hadamard when one is asked for).
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
  const width = geometry.numKeyValueHeads * geometry.headDim;
  const options = { ...(resolved.hadamard ? { hadamard: true } : {}), ...(resolved.preRopeKeys ? { preRopeKeys: true } : {}) };
  const keysObserver = resolved.keys && !resolved.keys.dynamic ? new ActivationObserver(resolved.keys, width) : undefined;
  const valuesObserver = resolved.values && !resolved.values.dynamic ? new ActivationObserver(resolved.values, width) : undefined;
  if (keysObserver || valuesObserver) {
    block.kvCache = { ...options, ...(keysObserver ? { keys: watching(keysObserver) } : {}), ...(valuesObserver ? { values: watching(valuesObserver) } : {}) };
    await model.runBlock(block.index, blockInput);
  }
  const quantizer = (s: ActivationScheme | undefined, observer: ActivationObserver | undefined) => s && activationQuantizer(s, observer?.scales());
  const keys = quantizer(resolved.keys, keysObserver);
  const values = quantizer(resolved.values, valuesObserver);
  block.kvCache = { ...options, ...(keys ? { keys } : {}), ...(values ? { values } : {}) };
}
