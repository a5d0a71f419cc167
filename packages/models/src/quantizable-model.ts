import { resolveBlockMapping, type ArchitectureMapping, type BlockView, type DifferentiableModel, type LinearInputCallback, type Matrix } from '@bitsmith/core';
import { llamaBlockGradients } from './llama-block-gradients.js';
import type { HiddenStates, LlamaBlock, LlamaGraph } from './llama-graph.js';

function blockView(graph: LlamaGraph, block: LlamaBlock, mapping: ArchitectureMapping): BlockView {
  const c = graph.config;
  const attention = { numHeads: c.numAttentionHeads, numKeyValueHeads: c.numKeyValueHeads, headDim: c.headDim };
  const { inputGroups } = resolveBlockMapping(mapping, { ...block, attention });
  return {
    index: block.index,
    name: block.name,
    linears: block.linears,
    norms: block.norms,
    auxiliaryLinears: block.auxiliaryLinears,
    inputGroups,
    attention,
    get kvCache() {
      return block.kvCache;
    },
    set kvCache(value) {
      block.kvCache = value;
    },
  };
}

/**
 * Presents a {@link LlamaGraph} as core's `QuantizableModel` for the recipe runner: live views of its layers (writes
 * go to the graph), the architecture's mapping table (see `architectureMapping`) and the input groups resolved from
 * it (for Llama: q/k/v after input_layernorm, o_proj after v_proj when there is no grouped-query sharing, gate/up
 * after post_attention_layernorm, down_proj after up_proj), and block-by-block execution with hidden states as
 * opaque handles, and each block as a differentiable function of its weights
 * (`blockGradients`, for learned quantization; Llama-computation blocks only).
 *
 * @example
 * ```ts
 * const model = llamaQuantizableModel(await loadLlamaGraph(dir));
 * let h = await model.embed(sequences);
 * for (const b of model.blocks) h = await model.runBlock(b.index, h, (name, x) => observe(name, x));
 * ```
 */
export function llamaQuantizableModel(graph: LlamaGraph): DifferentiableModel {
  const mapping = graph.mapping;
  const blocks = graph.blocks.map((b) => blockView(graph, b, mapping));
  return {
    architecture: graph.config.modelType,
    mapping,
    hiddenSize: graph.config.hiddenSize,
    get embedding(): Matrix {
      return graph.embedTokens;
    },
    set embedding(value: Matrix) {
      graph.embedTokens = value;
    },
    blocks,
    finalNorm: graph.norm,
    lmHead: graph.lmHead,
    get tiedEmbeddings(): boolean {
      return graph.tiedEmbeddings;
    },
    untieEmbeddings: () => graph.untieEmbeddings(),
    embed: async (sequences) => graph.embed(sequences),
    runBlock: (index, hidden, observe?: LinearInputCallback) =>
      graph.runBlock(index, hidden as HiddenStates, observe ? { observer: ({ name, input }) => observe(name, input) } : {}),
    logits: (hidden) => graph.head(hidden as HiddenStates),
    blockGradients: (index, hidden) => llamaBlockGradients(graph, index, hidden as HiddenStates),
  };
}
