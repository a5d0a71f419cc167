import { ActivationObserver, type ActivationScales, type ActivationScheme } from './activation-quantization.js';
import type { CalibratableBlock } from './calibration-driver.js';
import { InvalidArgumentError } from './errors.js';
import type { KvCacheScheme } from './kv-cache-quantization.js';
import type { BlockView, HiddenStatesHandle, QuantizableModel, RuntimeInputTransform } from './model-view.js';

/**
 * The calibration driver's pass for static input-activation scales: runs the block once on its calibration input
 * (`model.runBlock`, batched as the model feeds it) and calibrates one {@link ActivationObserver} per layer on exactly
 * what the layer's weight multiplies (after any run-time input transform the layer already has).
 *
 * @param layers - The layers to calibrate, with their input width.
 * @returns Each layer's scales, by name, and the block's output of that pass.
 * @throws InvalidArgumentError for a dynamic scheme (it computes its scales at run time).
 * @example
 * ```ts
 * const { scales } = await calibrateInputActivationScales(model, block, blockInput, { format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false }, [{ name: 'fc', inFeatures: 64 }]);
 * ```
 */
export async function calibrateInputActivationScales(
  model: Pick<QuantizableModel, 'runBlock'>,
  block: CalibratableBlock,
  input: HiddenStatesHandle,
  scheme: ActivationScheme,
  layers: readonly { readonly name: string; readonly inFeatures: number }[],
): Promise<{ scales: Map<string, ActivationScales>; output: HiddenStatesHandle }> {
  if (scheme.dynamic) throw new InvalidArgumentError('scheme.dynamic', 'a dynamic scheme computes its scales at run time; expected a static scheme (dynamic: false)');
  const observers = new Map(layers.map((l) => [l.name, new ActivationObserver(scheme, l.inFeatures)]));
  const output = await model.runBlock(block.index, input, (name, x) => {
    observers.get(name)?.observe(x.data as Float32Array, x.shape[0]);
  });
  return { scales: new Map([...observers].map(([name, observer]) => [name, observer.scales()])), output };
}

/** A run-time transform that only watches: feeds what passes through it to an observer and leaves it unchanged. */
function watching(observer: ActivationObserver): RuntimeInputTransform {
  return {
    name: 'activation-observer',
    apply: (x, rows) => observer.observe(x, rows),
    describe: () => ({ kind: 'activation-observer' }),
  };
}

/**
 * The calibration driver's pass for static key/value-cache scales: runs the block once with watching transforms in
 * its cache's place, so each observer sees exactly what the cache would hold (after RoPE, or before it with
 * `preRopeKeys`, and after the Hadamard when `hadamard` is set), then puts the block's cache quantization back as it
 * was. Dynamic (or absent) keys or values get no scales and cost no pass.
 *
 * @param scheme - A resolved scheme (per-head granularity already turned into groups of the head dimension).
 * @throws InvalidArgumentError when the block has no attention key/value cache.
 * @example
 * ```ts
 * const { keys, values } = await calibrateKvCacheScales(model, block, blockInput, { keys: fp8PerTensor, values: fp8PerTensor });
 * ```
 */
export async function calibrateKvCacheScales(
  model: Pick<QuantizableModel, 'runBlock'>,
  block: BlockView,
  input: HiddenStatesHandle,
  scheme: KvCacheScheme,
): Promise<{ keys?: ActivationScales; values?: ActivationScales }> {
  const geometry = block.attention;
  if (!geometry || !('kvCache' in block)) throw new InvalidArgumentError('kvCache', `block ${block.name} has no attention key/value cache that bitsmith can quantize`);
  const width = geometry.numKeyValueHeads * geometry.headDim;
  const keysObserver = scheme.keys && !scheme.keys.dynamic ? new ActivationObserver(scheme.keys, width) : undefined;
  const valuesObserver = scheme.values && !scheme.values.dynamic ? new ActivationObserver(scheme.values, width) : undefined;
  if (!keysObserver && !valuesObserver) return {};
  const before = block.kvCache;
  const options = { ...(scheme.hadamard ? { hadamard: true } : {}), ...(scheme.preRopeKeys ? { preRopeKeys: true } : {}) };
  block.kvCache = { ...options, ...(keysObserver ? { keys: watching(keysObserver) } : {}), ...(valuesObserver ? { values: watching(valuesObserver) } : {}) };
  try {
    await model.runBlock(block.index, input);
  } finally {
    block.kvCache = before;
  }
  return { ...(keysObserver ? { keys: keysObserver.scales() } : {}), ...(valuesObserver ? { values: valuesObserver.scales() } : {}) };
}
