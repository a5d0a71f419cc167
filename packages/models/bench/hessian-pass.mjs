// One block of the calibration pass with the runner's Hessians, shared by forward-llama-docs.mjs and calibration-ab.mjs:
// the block's linear layers, q/k/v and gate/up declared as one shared input each (as the runner's sharedInputGroups),
// a StatisticsCollector of Hessians behind the recipe runner's finite-input check, and the block run on the reference
// kernels with it observing every linear input.

/**
 * Runs block `block` of `graph` on `h` with a Hessian collector; returns the block's output and the collector.
 * `StatisticsCollector` (from @bitsmith/core) and `recipe` (@bitsmith/recipe, for `finiteInputs`) are passed in, so
 * that an A/B bench can take them from the checkout it measures.
 */
export async function blockWithHessians({ graph, block, h, backend, StatisticsCollector, recipe }) {
  const prefix = `model.layers.${block.index}.`;
  const names = new Set(graph.linearLayers().filter((l) => l.name.startsWith(prefix)).map((l) => l.name));
  const sharedInputs = [['q_proj', 'k_proj', 'v_proj'].map((p) => `${prefix}self_attn.${p}`), ['gate_proj', 'up_proj'].map((p) => `${prefix}mlp.${p}`)];
  const collector = new StatisticsCollector([{ kind: 'hessian' }], names, backend, { sharedInputs });
  const observe = recipe.finiteInputs(block.index, collector.observe);
  const output = await graph.runBlock(block.index, h, { observer: (e) => observe(e.name, e.input), reference: true });
  return { output, collector, names };
}
