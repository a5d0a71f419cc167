import { ActivationSchemeRefusedError, activationSchemeFromDescription, InvalidArgumentError, type StoredForm, type Tensor } from '@bitsmith/core';
import type { ExportedActivationQuantization, ExportedKvCacheQuantization } from './compressed-tensors-activations.js';
import type { GgufLlamaConfig } from './gguf-llama-export.js';
import type { OnnxLlamaGraph } from './onnx-llama-graph.js';

/** A run-time transform as the graph holds it (core's `RuntimeInputTransform`, structurally). */
export interface QuantizedRunTransform {
  readonly name: string;
  /** A JSON-serialisable description: `kind` (`hadamard`, `activation-quantization`, `sequence`, ...) and its data. */
  describe(): Record<string, unknown>;
}

/** One linear layer of a {@link QuantizedRunGraph} (structurally `@bitsmith/models`' `LinearLayer`). */
export interface QuantizedRunLinear {
  readonly name: string;
  readonly inputTransform?: QuantizedRunTransform | undefined;
}

/** One block of a {@link QuantizedRunGraph}: its linears and its key/value-cache quantization (core's `KvCacheQuantization`). */
export interface QuantizedRunBlock {
  readonly index: number;
  readonly linears: readonly QuantizedRunLinear[];
  readonly kvCache?: { readonly keys?: QuantizedRunTransform; readonly values?: QuantizedRunTransform; readonly hadamard?: boolean; readonly preRopeKeys?: boolean } | undefined;
}

/**
 * The quantized model an exporter reads: structurally `@bitsmith/models`' `LlamaGraph` (pass one as is), after the
 * run: every linear's weight is its final weight (`decodeStored` of its stored form), the steps' model edits (folded
 * norms, rotations, added biases) are in its tensors, and run-time transforms sit on its linears and blocks.
 */
export interface QuantizedRunGraph extends Omit<OnnxLlamaGraph, 'blocks' | 'config'> {
  readonly config: OnnxLlamaGraph['config'] & GgufLlamaConfig;
  readonly blocks: readonly (OnnxLlamaGraph['blocks'][number] & QuantizedRunBlock)[];
  /** Every tensor under its Hugging Face name (`model.layers.0.self_attn.q_proj.weight`), float32. */
  tensors(): Map<string, Tensor<'float32'>>;
  /** Every linear layer of the blocks, in order. */
  linearLayers(): readonly QuantizedRunLinear[];
  /** Whether the LM head still shares the embedding table. */
  readonly tiedEmbeddings: boolean;
}

/** A run-time input transform of one layer, as the run records it (`describe()` of the layer's transform). */
export interface RunTimeTransformRecord {
  readonly layer: string;
  readonly description: Readonly<Record<string, unknown>>;
}

/** The key/value-cache quantization of one block, as the run records it. */
export interface KvCacheRecord {
  readonly block: number;
  /** The attention module's Hugging Face name (`model.layers.3.self_attn`). */
  readonly module: string;
  readonly keys?: Readonly<Record<string, unknown>>;
  readonly values?: Readonly<Record<string, unknown>>;
  readonly hadamard: boolean;
  readonly preRopeKeys: boolean;
}

/** What an exporter reads of a run's report (structurally `@bitsmith/recipe`'s `RecipeReport`). */
export interface QuantizedRunReport {
  /** The recipe's name. */
  readonly recipe: string;
  /** Mean bits per weight over the quantized layers. */
  readonly averageBitsPerWeight: number;
}

/**
 * The result of a quantization run, as every exporter takes it: the quantized model (its graph, with the model edits
 * applied and run-time transforms installed), the final stored form of each quantized layer, the run-time transforms
 * and cache quantizers on it, the model's `config.json` and the run's report. Build it with {@link quantizedRun};
 * write it with an exporter of `RUN_EXPORTERS` (`@bitsmith/formats/node`), each of which says which stored kinds it
 * accepts and refuses the others before any work.
 */
export interface QuantizedRun<Report extends QuantizedRunReport = QuantizedRunReport> {
  /** The quantized model; its weights are the decoded stored forms, float layers as they are. */
  readonly graph: QuantizedRunGraph;
  /** Final stored form of each quantized layer, by layer name (`runRecipe`'s `onStored`). */
  readonly stored: ReadonlyMap<string, StoredForm>;
  /** The run-time input transforms on the graph's linears (online Hadamards, activation quantizers, OS+ shifts), in layer order. */
  readonly transforms: readonly RunTimeTransformRecord[];
  /** The key/value-cache quantization of every block that has one. */
  readonly kvCache: readonly KvCacheRecord[];
  /**
   * The model's `config.json` for the written folder: the source's, with `tie_word_embeddings` cleared where a step
   * untied the head. Exporters add their own entries to a copy.
   */
  readonly config: Readonly<Record<string, unknown>>;
  /** The run's report. */
  readonly report: Report;
  /** The source model folder (tokenizer and generation config are copied from it), when the run has one. */
  readonly source?: string;
}

/** The attention module of a block (`model.layers.3.self_attn`), from its `k_proj`'s name. */
function attentionModule(block: QuantizedRunBlock): string {
  const k = block.linears.find((l) => l.name.endsWith('.k_proj'));
  return k ? k.name.replace(/\.k_proj$/, '') : `block ${block.index}`;
}

/**
 * The run-time transforms on a graph's linears and the cache quantization of its blocks, as a {@link QuantizedRun}
 * records them (`describe()` of each).
 *
 * @example
 * ```ts
 * const { transforms, kvCache } = runTimeRecords(graph); // transforms[0]: { layer: 'model.layers.0.self_attn.q_proj', description: { kind: 'hadamard', ... } }
 * ```
 */
export function runTimeRecords(graph: Pick<QuantizedRunGraph, 'linearLayers' | 'blocks'>): { transforms: RunTimeTransformRecord[]; kvCache: KvCacheRecord[] } {
  const transforms = graph
    .linearLayers()
    .filter((l) => l.inputTransform)
    .map((l) => ({ layer: l.name, description: l.inputTransform!.describe() }));
  const kvCache: KvCacheRecord[] = graph.blocks
    .filter((b) => b.kvCache)
    .map((b) => ({
      block: b.index,
      module: attentionModule(b),
      ...(b.kvCache!.keys ? { keys: b.kvCache!.keys.describe() } : {}),
      ...(b.kvCache!.values ? { values: b.kvCache!.values.describe() } : {}),
      hadamard: b.kvCache!.hadamard ?? false,
      preRopeKeys: b.kvCache!.preRopeKeys ?? false,
    }));
  return { transforms, kvCache };
}

/**
 * Builds the {@link QuantizedRun} of a finished run, in one place: reads the run-time transforms and cache quantizers
 * off the graph, and fixes `tie_word_embeddings` in a copy of the config when a step untied the head.
 *
 * @throws InvalidArgumentError when `stored` names a layer the graph does not have.
 * @example
 * ```ts
 * const stored = new Map<string, StoredForm>();
 * const report = await runRecipe(llamaQuantizableModel(graph), recipe, sequences, { onStored: (n, s) => stored.set(n, s) });
 * const run = quantizedRun({ graph, stored, config, report, source: 'models/tinystories-656k' });
 * await RUN_EXPORTERS.gptq.save('out/gptq', run);
 * ```
 */
export function quantizedRun<Report extends QuantizedRunReport>(input: {
  readonly graph: QuantizedRunGraph;
  readonly stored: ReadonlyMap<string, StoredForm>;
  readonly config: Readonly<Record<string, unknown>>;
  readonly report: Report;
  readonly source?: string;
}): QuantizedRun<Report> {
  const { graph, stored, report, source } = input;
  const linears = graph.linearLayers();
  const names = new Set(linears.map((l) => l.name));
  names.add(graph.lmHead.name);
  for (const layer of stored.keys()) if (!names.has(layer)) throw new InvalidArgumentError('stored', `names layer '${layer}', which the model does not have`);
  const { transforms, kvCache } = runTimeRecords(graph);
  const config = { ...input.config };
  if (config.tie_word_embeddings && !graph.tiedEmbeddings) config.tie_word_embeddings = false;
  return { graph, stored, transforms, kvCache, config, report, ...(source !== undefined ? { source } : {}) };
}

/**
 * What a run quantizes at run time, in the form the compressed-tensors checkpoint takes: the input scheme (and static
 * scales) of every layer with an activation quantizer, and the key/value-cache quantization of every attention module.
 *
 * @throws ActivationSchemeRefusedError naming `exporter` when a layer has another run-time transform (an online
 *   Hadamard, an OS+ shift), or a block's cache uses a Hadamard, pre-RoPE keys, or quantizes only keys or values.
 * @example
 * ```ts
 * const { inputActivations, kvCache } = runActivationQuantization(run);
 * ```
 */
export function runActivationQuantization(
  run: Pick<QuantizedRun, 'transforms' | 'kvCache'>,
  exporter = 'compressed-tensors',
): { inputActivations: Map<string, ExportedActivationQuantization>; kvCache: Map<string, ExportedKvCacheQuantization> } {
  const inputActivations = new Map<string, ExportedActivationQuantization>();
  for (const { layer, description } of run.transforms) {
    if (description.kind !== 'activation-quantization') {
      throw new ActivationSchemeRefusedError(exporter, 'onlineTransforms', `layer ${layer} applies a run-time input transform (${transformName(description)}) that the format cannot carry; use a recipe whose rotations fuse into the weights, or --save fake`);
    }
    inputActivations.set(layer, activationSchemeFromDescription(description));
  }
  const kvCache = new Map<string, ExportedKvCacheQuantization>();
  for (const cache of run.kvCache) {
    if (cache.hadamard || cache.preRopeKeys) {
      throw new ActivationSchemeRefusedError(exporter, 'kvCache', `block ${cache.block} rotates its cache by a Hadamard or quantizes keys before RoPE; vLLM's FP8 cache does neither`);
    }
    if (!cache.keys || !cache.values) throw new ActivationSchemeRefusedError(exporter, 'kvCache', `block ${cache.block} quantizes only ${cache.keys ? 'keys' : 'values'}; kv_cache_scheme quantizes both`);
    kvCache.set(cache.module, { keys: activationSchemeFromDescription(cache.keys), values: activationSchemeFromDescription(cache.values) });
  }
  return { inputActivations, kvCache };
}

/** A transform's name for messages: `hadamard`, or the kinds of a sequence (`channel-shift+activation-quantization`). */
function transformName(description: Readonly<Record<string, unknown>>): string {
  const list = description.transforms;
  if (Array.isArray(list)) return list.map((t) => String((t as { kind?: unknown }).kind)).join('+');
  return String(description.kind);
}
