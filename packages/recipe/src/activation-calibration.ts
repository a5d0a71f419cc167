import {
  ActivationObserver,
  activationQuantizer,
  composeInputTransforms,
  validateActivationScheme,
  type ActivationScheme,
  type BlockView,
  type HiddenStatesHandle,
  type LinearView,
  type QuantizableModel,
} from '@bitsmith/core';

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
