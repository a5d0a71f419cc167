import { AbortError } from './errors.js';
import { resolveLayerScheme, type LayerScheme, type WeightScheme } from './layer-scheme.js';
import type { LayerState, StepContext } from './quantizer.js';

/** What {@link forEachLayer} hands the per-layer work besides the layer. */
export interface LayerWork {
  /** Position of the layer in `context.layers`. */
  readonly index: number;
  /**
   * The layer's resolved scheme: `context.scheme(layer)` from the runner, else (a step run by hand) the `scheme` option
   * of {@link forEachLayer} resolved with the layer's assignment. Undefined when neither is there.
   */
  readonly scheme: LayerScheme | undefined;
}

/**
 * The per-layer loop of a layer-wise step: for each of `context.layers` in order, checks `context.signal` (throwing
 * core's `AbortError`), runs `work` with the layer's resolved scheme, and reports `context.progress(done, total,
 * layer)`. Returns the new states in the order given, as `StepResult.layers` wants them.
 *
 * @param options - `scheme`: the step's own weight scheme, resolved per layer when the runner gives no `context.scheme`.
 * @example
 * ```ts
 * const layers = await forEachLayer(context, (layer, { scheme }) => {
 *   const q = quantize(layer.weight, schemeOptions(scheme!));
 *   return { ...layer, weight: dequantize(q), stored: { kind: 'grid', tensor: q } };
 * }, { scheme: { format: 'int4' } });
 * ```
 */
export async function forEachLayer(
  context: StepContext,
  work: (layer: LayerState, detail: LayerWork) => LayerState | Promise<LayerState>,
  options: { scheme?: WeightScheme } = {},
): Promise<LayerState[]> {
  const layers: LayerState[] = [];
  const total = context.layers.length;
  for (const [index, layer] of context.layers.entries()) {
    if (context.signal?.aborted) throw new AbortError();
    const given = context.scheme?.(layer.name);
    const scheme = given ?? (options.scheme ? resolveLayerScheme(options.scheme, layer.assignment) : undefined);
    layers.push(await work(layer, { index, scheme }));
    context.progress?.(index + 1, total, layer.name);
  }
  return layers;
}
