import type { BlockView, DifferentiableModel, InputGroup, LinearInputCallback, Matrix } from '@bitsmith/core';
import { llamaBlockGradients } from './llama-block-gradients.js';
import type { HiddenStates, LlamaBlock, LlamaGraph } from './llama-graph.js';

function blockView(graph: LlamaGraph, block: LlamaBlock): BlockView {
  const { qProj, kProj, vProj, oProj } = block.selfAttention;
  const { gateProj, upProj, downProj } = block.mlp;
  const c = graph.config;
  const inputGroups: InputGroup[] = [
    { linears: [qProj, kProj, vProj], producer: { kind: 'norm', norm: block.inputLayernorm } },
    // o_proj's input channels are v_proj's output channels mixed over positions; a per-channel scale folds into
    // v_proj only when every query head has its own key/value head (no grouping).
    { linears: [oProj], producer: c.numAttentionHeads === c.numKeyValueHeads ? { kind: 'linear', linear: vProj } : { kind: 'none' } },
    { linears: [gateProj, upProj], producer: { kind: 'norm', norm: block.postAttentionLayernorm } },
    { linears: [downProj], producer: { kind: 'linear', linear: upProj } },
  ];
  return {
    index: block.index,
    name: block.name,
    linears: block.linears,
    norms: [block.inputLayernorm, block.postAttentionLayernorm],
    inputGroups,
    attention: { numHeads: c.numAttentionHeads, numKeyValueHeads: c.numKeyValueHeads, headDim: c.headDim },
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
 * go to the graph), input groups for scale folding (q/k/v after input_layernorm, o_proj after v_proj when there is no
 * grouped-query sharing, gate/up after post_attention_layernorm, down_proj after up_proj), and block-by-block
 * execution with hidden states as opaque handles, and each block as a differentiable function of its weights
 * (`blockGradients`, for learned quantization).
 *
 * @example
 * ```ts
 * const model = llamaQuantizableModel(await loadLlamaGraph(dir));
 * let h = await model.embed(sequences);
 * for (const b of model.blocks) h = await model.runBlock(b.index, h, (name, x) => observe(name, x));
 * ```
 */
export function llamaQuantizableModel(graph: LlamaGraph): DifferentiableModel {
  const blocks = graph.blocks.map((b) => blockView(graph, b));
  return {
    architecture: graph.config.modelType,
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
