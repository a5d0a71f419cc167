import { decodeStored, dequantizeRows, packBits, unpackBits, InvalidArgumentError, resolveBlockMapping, type BlockHessians, type BlockOutputErrors, type RunBlockOptions, type StoredForm, type QuantizedTensor, type ArchitectureMapping, type BlockView, type DifferentiableModel, type QuantizableLanguageModel, type LinearInputCallback, type Matrix } from '@bitsmith/core';
import type { WebgpuBackend, WebgpuMatrix } from '@bitsmith/linalg';
import { checkArithmetic, llamaBlockGradients, type BlockGradientsMemory } from './llama-block-gradients.js';
import type { HiddenStates, LlamaBlock, LlamaGraph } from './llama-graph.js';
import { holdLinearWeight, isLazyLinearLayer, isWeightResident, releaseLinearWeight } from './lazy-weight.js';
import type { LinearLayer } from './linear-layer.js';
import { releaseWebgpuBlockUploads, residentBlockHessians, runBlockOnWebgpu, webgpuBlockUnsupported, type WebgpuBlockUploads } from './webgpu-block-run.js';
import { tokenBatches } from './token-batches.js';

export { tokenBatches };

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

/** Options of {@link llamaQuantizableModel}. */
export interface LlamaQuantizableModelOptions {
  /**
   * Most tokens `runBlock` runs through a block at once: the calibration sequences are taken in consecutive batches of
   * whole sequences up to this many tokens (at least one sequence each), so the block's intermediate activations
   * (q/k/v, attention, the MLP's gate/up products) exist for one batch at a time; the observer sees each batch's
   * inputs in turn and the outputs are gathered into one array. Default 2048.
   */
  batchTokens?: number;
  /**
   * The arithmetic of the training passes that learned steps (AutoRound, learnable weight clipping, OmniQuant) run
   * through `blockGradients` (see `BlockPassOptions.arithmetic`): `'native'` (default) uses the backend's native
   * attention and float32 SiLU, as PyTorch trains; `'reference'` gives the same bits on every backend and release,
   * at about 10% more time per AutoRound iteration on `ort`. A step may ask for one itself (`blockGradients`'
   * `options.arithmetic`; the learned rotation asks for the reference). Calibration, propagation and evaluation are
   * not affected.
   */
  trainingArithmetic?: 'native' | 'reference';
}

async function runBlockInBatches(graph: LlamaGraph, index: number, hidden: HiddenStates, budget: number, observe?: LinearInputCallback, discardOutput = false): Promise<HiddenStates> {
  // The reference kernels (see RunOptions.reference): calibration statistics and the blocks' outputs that feed the
  // next block do not depend on a backend's native attention.
  const options = observe ? { observer: ({ name, input }: { name: string; input: Matrix }) => observe(name, input), reference: true, observeOnly: discardOutput } : { reference: true };
  const batches = tokenBatches(hidden.lengths, budget);
  if (batches.length <= 1) return graph.runBlock(index, hidden, options);
  const [tokens, width] = hidden.states.shape;
  // A statistics pass whose output nobody reads (RunBlockOptions.discardOutput) gathers nothing: no tokens x hidden array.
  const out = discardOutput ? undefined : new Float32Array(tokens * width);
  let row = 0;
  for (const lengths of batches) {
    const n = lengths.reduce((a, b) => a + b, 0);
    const states = hidden.states.data.subarray(row * width, (row + n) * width);
    const result = await graph.runBlock(index, { states: { dtype: 'float32', shape: [n, width], data: states }, lengths }, options);
    if (out) out.set(result.states.data, row * width);
    row += n;
  }
  if (!out) return { states: { dtype: 'float32', shape: [0, width], data: new Float32Array(0) }, lengths: [] };
  return { states: { dtype: 'float32', shape: [tokens, width], data: out }, lengths: hidden.lengths };
}

/**
 * Block `index` with its linears' inputs on the GPU (the graph's backend is webgpu and the block is plain Llama form):
 * without an observer all of it runs on the GPU; with one and `observeRows`, the leading sequences holding at least
 * that many tokens run on the graph's own forward (observed) and the rest on the GPU; with an observer and no
 * `observeRows`, all of it runs on the graph's own forward.
 */
async function runBlockGpuFirst(graph: LlamaGraph, index: number, hidden: HiddenStates, budget: number, observe: LinearInputCallback | undefined, options: RunBlockOptions | undefined): Promise<HiddenStates> {
  if (!observe) return (await runBlockOnWebgpu(graph, index, hidden)).output!;
  const rows = options?.observeRows;
  if (rows === undefined) return runBlockInBatches(graph, index, hidden, budget, observe);
  let sequences = 0;
  let head = 0;
  while (sequences < hidden.lengths.length && head < rows) head += hidden.lengths[sequences++]!;
  const [tokens, width] = hidden.states.shape;
  const part = (from: number, to: number, lengths: readonly number[]): HiddenStates => ({
    states: { dtype: 'float32', shape: [to - from, width], data: hidden.states.data.subarray(from * width, to * width) },
    lengths,
  });
  const first = await runBlockInBatches(graph, index, part(0, head, hidden.lengths.slice(0, sequences)), budget, observe);
  if (head === tokens) return first;
  const rest = (await runBlockOnWebgpu(graph, index, part(head, tokens, hidden.lengths.slice(sequences)))).output!;
  const out = new Float32Array(tokens * width);
  out.set(first.states.data.subarray(0, head * width));
  out.set(rest.states.data, head * width);
  return { states: { dtype: 'float32', shape: [tokens, width], data: out }, lengths: hidden.lengths };
}

/** Whether `decodeStored(form)` holds exactly the bits of `weight`; a plain grid is decoded in chunks of rows. */
function decodesToSameBits(form: StoredForm, weight: Float32Array): boolean {
  const b = new Uint32Array(weight.buffer, weight.byteOffset, weight.length);
  const g = form.kind === 'grid' ? form.tensor : undefined;
  if (g && !g.permutation && (g.granularity.type === 'group' || g.granularity.type === 'channel') && g.shape[1] > 0) {
    const [rows, columns] = g.shape;
    if (rows * columns !== weight.length) return false;
    const step = Math.max(1, Math.floor(2 ** 20 / columns));
    const chunk = new Float32Array(Math.min(rows, step) * columns);
    const a = new Uint32Array(chunk.buffer);
    for (let r = 0; r < rows; r += step) {
      const r1 = Math.min(rows, r + step);
      dequantizeRows(g, r, r1, chunk);
      const base = r * columns;
      for (let i = 0; i < (r1 - r) * columns; i++) if (a[i] !== b[base + i]) return false;
    }
    return true;
  }
  const decoded = decodeStored(form).data as Float32Array;
  const a = new Uint32Array(decoded.buffer, decoded.byteOffset, decoded.length);
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The largest of byte codes (a small monomorphic function, so that the engine optimizes its loop). */
function largestByte(codes: Uint8Array): number {
  let largest = 0;
  for (let i = 0; i < codes.length; i++) if (codes[i]! > largest) largest = codes[i]!;
  return largest;
}

/** The largest of 16-bit codes (as {@link largestByte}). */
function largestWord(codes: Uint16Array): number {
  let largest = 0;
  for (let i = 0; i < codes.length; i++) if (codes[i]! > largest) largest = codes[i]!;
  return largest;
}

/**
 * A stored form as the source of a finished layer's weight, holding a plain grid's codes packed densely at the width
 * their largest code needs (int4 codes in half a byte each instead of one), unpacked into the same array type when
 * the weight is read again: `decodeStored` then gives the very same bits. Other forms are held as they are.
 */
function packedSource(form: StoredForm): () => Float32Array {
  if (form.kind !== 'grid') return decodingSource(form);
  const { codes, ...rest } = form.tensor;
  const largest = codes instanceof Uint8Array ? largestByte(codes) : largestWord(codes);
  const bits = Math.max(1, Math.ceil(Math.log2(largest + 1)));
  if (bits >= 8 * codes.BYTES_PER_ELEMENT) return decodingSource(form);
  return unpackingSource(packBits(codes, bits), bits, codes.length, codes instanceof Uint16Array, rest);
}

/**
 * The source that decodes `form` when read. Its own function so that the closure captures nothing but `form`: a
 * closure created inside {@link packedSource} would share that function's context, and with it keep the unpacked
 * codes (one byte per int4 weight) alive for the rest of the run.
 */
function decodingSource(form: StoredForm): () => Float32Array {
  return () => decodeStored(form).data as Float32Array;
}

/** The source that unpacks `packed` and decodes it with the grid's other fields `rest` (see {@link decodingSource}). */
function unpackingSource(packed: Uint8Array, bits: number, length: number, wide: boolean, rest: Omit<QuantizedTensor, 'codes'>): () => Float32Array {
  return () => {
    const unpacked = unpackBits(packed, bits, length);
    const again = wide && !(unpacked instanceof Uint16Array) ? Uint16Array.from(unpacked) : unpacked;
    return decodeStored({ kind: 'grid', tensor: { ...rest, codes: again } as QuantizedTensor }).data as Float32Array;
  };
}

/**
 * Drops the float32 weights of a finished block whose layers are held lazily (`loadLlamaGraph`'s `keepStoredDtype`):
 * a quantized layer is then produced from its stored form when read again (only when that decodes to exactly the
 * same bits; a grid's codes held packed, see {@link packedSource}), an untouched one from the checkpoint's bytes (on
 * disk, or in memory); a layer changed without a stored form stays as it is. What a finished block keeps is thus
 * its stored forms, packed, and no float32 weight.
 */
function releaseBlockWeights(block: LlamaBlock, stored: ReadonlyMap<string, StoredForm>): void {
  for (const layer of [...block.linears, ...block.auxiliaryLinears] as LinearLayer[]) {
    if (!isLazyLinearLayer(layer) || !isWeightResident(layer)) continue;
    const form = stored.get(layer.name);
    if (!form) {
      releaseLinearWeight(layer);
      continue;
    }
    if (decodesToSameBits(form, layer.weight.data)) holdLinearWeight(layer, packedSource(form));
  }
}

/**
 * Presents a {@link LlamaGraph} as core's `QuantizableModel`, with the language-model head capability (core's
 * `QuantizableLanguageModel`: embedding, final norm, LM head, `logits`), for the recipe runner: live views of its layers (writes
 * go to the graph), the architecture's mapping table (see `architectureMapping`) and the input groups resolved from
 * it (for Llama: q/k/v after input_layernorm, o_proj after v_proj when there is no grouped-query sharing, gate/up
 * after post_attention_layernorm, down_proj after up_proj), and block-by-block execution with hidden states as
 * opaque handles, and each block as a differentiable function of its weights
 * (`blockGradients`, for learned quantization; Llama-computation blocks only). On a webgpu backend, plain Llama-form
 * blocks also give `blockHessians` and `blockOutputErrors` (computed on the GPU, see {@link runBlockOnWebgpu}). `runBlock` takes the calibration
 * sequences in batches of at most `batchTokens` tokens (default 2048), so a block's intermediate activations are held
 * for one batch at a time.
 *
 * @example
 * ```ts
 * const model = llamaQuantizableModel(await loadLlamaGraph(dir));
 * let h = await model.embed(sequences);
 * for (const b of model.blocks) h = await model.runBlock(b.index, h, (name, x) => observe(name, x));
 * ```
 */
export function llamaQuantizableModel(graph: LlamaGraph, options: LlamaQuantizableModelOptions = {}): DifferentiableModel & QuantizableLanguageModel {
  const budget = options.batchTokens ?? 2048;
  const trainingArithmetic = checkArithmetic('trainingArithmetic', options.trainingArithmetic) ?? 'native';
  // The memory of the last released block capability, for the next block's (not kept after the model's last block).
  let spareTrainingMemory: BlockGradientsMemory | undefined;
  if (!Number.isInteger(budget) || budget < 1) throw new InvalidArgumentError('batchTokens', `must be a positive integer; got ${budget}`);
  const mapping = graph.mapping;
  const blocks = graph.blocks.map((b) => blockView(graph, b, mapping));
  // On a webgpu backend, plain Llama-form blocks run on the GPU (their calibration Hessians too); other backends and
  // other blocks take the graph's own forward, as before.
  const onGpu = (index: number): boolean => graph.backend.name === 'webgpu' && webgpuBlockUnsupported(graph, graph.blocks[index]!) === undefined;
  // Hessians handed to a step on the GPU (blockHessians with resident: true): released when the step is surely done
  // (the block's output errors, the next Hessians, the block's release).
  let heldHessians: WebgpuMatrix[] = [];
  const releaseHeldHessians = (): void => {
    for (const m of heldHessians) (graph.backend as WebgpuBackend).release(m);
    heldHessians = [];
  };
  // What the Hessian pass uploaded (the block's input chunks, its float weights), kept for the propagation pass of the
  // same block: the input is not uploaded again, and a float weight still held by its layer's quantize step's
  // reference (the very same matrix) becomes the output error's difference on the GPU without being decoded again.
  let uploads: WebgpuBlockUploads | undefined;
  const releaseUploads = (except?: ReadonlySet<WebgpuMatrix>): void => {
    if (uploads) releaseWebgpuBlockUploads(graph.backend as WebgpuBackend, uploads, except);
    uploads = undefined;
  };
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
    runBlock: (index, hidden, observe?: LinearInputCallback, runOptions?: RunBlockOptions) =>
      onGpu(index) ? runBlockGpuFirst(graph, index, hidden as HiddenStates, budget, observe, runOptions) : runBlockInBatches(graph, index, hidden as HiddenStates, budget, observe, runOptions?.discardOutput === true),
    ...(graph.backend.name === 'webgpu'
      ? {
          blockHessians: async (index: number, hidden: unknown, layers: ReadonlySet<string>, options?: { readonly resident?: boolean }): Promise<BlockHessians | undefined> => {
            releaseHeldHessians();
            if (!onGpu(index)) {
              releaseUploads();
              return undefined;
            }
            const resident = options?.resident === true;
            const previous = uploads;
            uploads = undefined;
            let run;
            try {
              run = await runBlockOnWebgpu(graph, index, hidden as HiddenStates, { hessians: layers, output: false, residentHessians: resident, keepUploads: true, ...(previous ? { reuse: previous } : {}) });
            } finally {
              // Chunks the new run reused are its own now; the rest of the previous uploads go.
              uploads = previous;
              releaseUploads(new Set(run?.uploads?.chunks ?? []));
            }
            uploads = run.uploads;
            if (!resident) return run.hessians;
            heldHessians = [...new Set(run.residentHessians!.values())];
            return residentBlockHessians(graph.backend as WebgpuBackend, run.residentHessians!, run.hessians!.tokens);
          },
          blockOutputErrors: async (index: number, hidden: unknown, references: ReadonlyMap<string, Matrix>, rows: number): Promise<BlockOutputErrors | undefined> => {
            releaseHeldHessians();
            if (!onGpu(index)) {
              releaseUploads();
              return undefined;
            }
            const kept = uploads && uploads.index === index && uploads.hidden === hidden ? uploads : undefined;
            const taken = new Set<WebgpuMatrix>();
            const weights = new Map<string, Float32Array | WebgpuMatrix>();
            for (const [name, m] of references) {
              const resident = kept?.weights.get(name);
              if (resident && resident.source === m) {
                weights.set(name, resident.matrix);
                taken.add(resident.matrix);
              } else weights.set(name, m.data as Float32Array);
            }
            let result;
            try {
              result = await runBlockOnWebgpu(graph, index, hidden as HiddenStates, { outputErrors: { references: weights, rows }, ...(kept ? { reuse: kept } : {}) });
            } finally {
              releaseUploads(taken);
            }
            const { output, errors, inputChannels } = result;
            return { output: output!, errors: errors!, inputChannels: inputChannels! };
          },
        }
      : {}),
    logits: (hidden) => graph.head(hidden as HiddenStates),
    blockGradients: (index, hidden, asked) => {
      const memory = spareTrainingMemory;
      spareTrainingMemory = undefined;
      return llamaBlockGradients(graph, index, hidden as HiddenStates, {
        arithmetic: asked?.arithmetic ?? trainingArithmetic,
        ...(memory ? { memory } : {}),
        onRelease: (m) => {
          if (index < graph.blocks.length - 1) spareTrainingMemory = m;
        },
      });
    },
    releaseBlock: (index, stored) => {
      releaseHeldHessians();
      releaseUploads();
      releaseBlockWeights(graph.blocks[index]!, stored);
    },
  };
}
