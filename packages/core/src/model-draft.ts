import type { ModelEdit } from './model-edit.js';
import type { BlockView, InputGroup, LinearView, ModelView, NormView } from './model-view.js';
import { copyMatrix, heldMatrixAccess, sameMatrix } from './held-matrix.js';
import { hasLanguageModelHead, type LanguageModelHead } from './language-model-head.js';
import type { Matrix } from './tensor.js';

/** One writable field of a view (a linear's weight, a norm's bias, the embedding), read and written by name. */
interface Slot {
  /** `model.layers.0.self_attn.q_proj.weight`, `embedding`, ... */
  readonly tensor: string;
  /** The module the field belongs to (`model.layers.0.self_attn.q_proj`), for edits. */
  readonly target: string;
  readonly field: 'weight' | 'bias' | 'inputTransform' | 'norm-weight' | 'norm-bias' | 'embedding';
  read(): unknown;
  write(value: unknown): void;
}

function isModelView(view: ModelView | BlockView): view is ModelView {
  return 'hiddenSize' in view && 'blocks' in view;
}

function linearSlots(l: LinearView): Slot[] {
  return [
    { tensor: `${l.name}.weight`, target: l.name, field: 'weight', read: () => l.weight, write: (v) => void (l.weight = v as Matrix) },
    { tensor: `${l.name}.bias`, target: l.name, field: 'bias', read: () => l.bias, write: (v) => void (l.bias = v as Float32Array | undefined) },
    { tensor: `${l.name}.inputTransform`, target: l.name, field: 'inputTransform', read: () => l.inputTransform, write: (v) => void (l.inputTransform = v as LinearView['inputTransform']) },
  ];
}

function normSlots(n: NormView): Slot[] {
  return [
    { tensor: `${n.name}.weight`, target: n.name, field: 'norm-weight', read: () => n.weight, write: (v) => void (n.weight = v as Float32Array) },
    {
      tensor: `${n.name}.bias`,
      target: n.name,
      field: 'norm-bias',
      read: () => n.bias,
      write: (v) => {
        if (v === undefined) delete n.bias;
        else n.bias = v as Float32Array;
      },
    },
  ];
}

function blockSlots(block: BlockView): Slot[] {
  return [...[...block.linears, ...(block.auxiliaryLinears ?? [])].flatMap(linearSlots), ...block.norms.flatMap(normSlots)];
}

/** Every writable field of a model (blocks, and the embedding, final norm and head of a language model) or of one block, in a fixed order. */
function slotsOf(view: ModelView | BlockView): Slot[] {
  if (!isModelView(view)) return blockSlots(view);
  // A model without a language-model head (an encoder) has blocks only: drafts and fingerprints leave the rest out.
  if (!hasLanguageModelHead(view)) return view.blocks.flatMap(blockSlots);
  return [
    { tensor: 'embedding', target: 'embedding', field: 'embedding', read: () => view.embedding, write: (v: unknown) => void (view.embedding = v as Matrix) },
    ...view.blocks.flatMap(blockSlots),
    ...normSlots(view.finalNorm),
    ...linearSlots(view.lmHead),
  ];
}

function draftLinear(l: LinearView): LinearView {
  return { name: l.name, kind: l.kind, weight: l.weight, bias: l.bias, inputTransform: l.inputTransform };
}

function draftNorm(n: NormView): NormView {
  return {
    name: n.name,
    type: n.type,
    weight: n.weight,
    ...(n.bias ? { bias: n.bias } : {}),
    ...(n.gainOffset !== undefined ? { gainOffset: n.gainOffset } : {}),
  };
}

function draftBlockWith(block: BlockView, linearOf: Map<LinearView, LinearView>, normOf: Map<NormView, NormView>): BlockView {
  const mapLinear = (l: LinearView): LinearView => {
    let d = linearOf.get(l);
    if (!d) linearOf.set(l, (d = draftLinear(l)));
    return d;
  };
  const mapNorm = (n: NormView): NormView => {
    let d = normOf.get(n);
    if (!d) normOf.set(n, (d = draftNorm(n)));
    return d;
  };
  const inputGroups: InputGroup[] = block.inputGroups.map((g) => ({
    linears: g.linears.map(mapLinear),
    producer: g.producer.kind === 'norm' ? { kind: 'norm', norm: mapNorm(g.producer.norm) } : g.producer.kind === 'linear' ? { kind: 'linear', linear: mapLinear(g.producer.linear) } : { kind: 'none' },
  }));
  return {
    index: block.index,
    name: block.name,
    linears: block.linears.map(mapLinear),
    norms: block.norms.map(mapNorm),
    inputGroups,
    ...(block.attention ? { attention: block.attention } : {}),
    ...(block.auxiliaryLinears ? { auxiliaryLinears: block.auxiliaryLinears.map(mapLinear) } : {}),
    ...('kvCache' in block ? { kvCache: block.kvCache } : {}),
  };
}

/**
 * A copy of a block's views that a step may write freely (step contract v2): new view objects holding the same
 * arrays, with input groups pointing at the copies. Writing a field of the draft (`draft.norms[0].weight = w`) leaves
 * the model untouched; {@link modelEditsOf} turns the draft's changes into model edits. Arrays are shared, so a draft
 * must be changed by assigning new arrays, never by writing into the ones it holds (as core's folding helpers do).
 *
 * @example
 * ```ts
 * const draft = draftBlock(context.block);
 * foldInputScales(draft.inputGroups[0], scales);            // writes the draft only
 * const edits = modelEditsOf(context.block, draft, { except: selectedNames });
 * ```
 */
export function draftBlock(block: BlockView): BlockView {
  return draftBlockWith(block, new Map(), new Map());
}

/**
 * A copy of a whole model's views that a model-level step may write freely (see {@link draftBlock}): every block, the
 * final norm, the head and the embedding; `untieEmbeddings()` gives the draft's head its own copy. The draft has no
 * forward pass: a step that must run the model on its new weights uses {@link collectModelEdits}.
 *
 * @example
 * ```ts
 * const draft = draftModel(context.model);
 * await rotateModel(draft, { seed: 0 });
 * return { layers: context.layers, warnings, edits: modelEditsOf(context.model, draft) };
 * ```
 */
export function draftModel<M extends ModelView>(model: M): M extends LanguageModelHead ? ModelView & LanguageModelHead : ModelView;
export function draftModel(model: ModelView): ModelView {
  const linearOf = new Map<LinearView, LinearView>();
  const normOf = new Map<NormView, NormView>();
  const blocks = model.blocks.map((b) => draftBlockWith(b, linearOf, normOf));
  const base: ModelView = {
    architecture: model.architecture,
    ...(model.mapping ? { mapping: model.mapping } : {}),
    hiddenSize: model.hiddenSize,
    blocks,
  };
  // A model without a language-model head (an encoder): the draft has blocks only, too.
  if (!hasLanguageModelHead(model)) return base;
  const lmHead = draftLinear(model.lmHead);
  const finalNorm = draftNorm(model.finalNorm);
  let embedding = model.embedding;
  const draft: ModelView & LanguageModelHead = {
    ...base,
    get embedding(): Matrix {
      return embedding;
    },
    set embedding(value: Matrix) {
      embedding = value;
    },
    finalNorm,
    lmHead,
    get tiedEmbeddings(): boolean {
      return sameMatrix(lmHead.weight, embedding);
    },
    untieEmbeddings(): void {
      if (draft.tiedEmbeddings) lmHead.weight = copyMatrix(lmHead.weight);
    },
  };
  return draft;
}

function editOf(slot: Slot, value: unknown): ModelEdit {
  switch (slot.field) {
    case 'weight':
      return { kind: 'set-weight', target: slot.target, weight: value as Matrix };
    case 'bias':
      return { kind: 'set-bias', target: slot.target, bias: value as Float32Array | undefined };
    case 'inputTransform':
      return { kind: 'set-input-transform', target: slot.target, transform: value as LinearView['inputTransform'] };
    case 'norm-weight':
      return { kind: 'set-norm-weight', target: slot.target, weight: value as Float32Array };
    case 'norm-bias':
      return { kind: 'set-norm-bias', target: slot.target, bias: value as Float32Array | undefined };
    case 'embedding':
      return { kind: 'set-embedding', weight: value as Matrix };
  }
}

function editsBetween(view: ModelView | BlockView, before: readonly unknown[], after: readonly unknown[], wasTied: boolean, isTied: boolean, except: ReadonlySet<string>): ModelEdit[] {
  const slots = slotsOf(view);
  const edits: ModelEdit[] = [];
  if (wasTied && !isTied) edits.push({ kind: 'untie-embeddings' });
  slots.forEach((slot, i) => {
    if (before[i] === after[i]) return;
    if ((slot.field === 'weight' || slot.field === 'bias') && except.has(slot.target)) return;
    edits.push(editOf(slot, after[i]));
  });
  return edits;
}

/**
 * The model edits that turn `original` into `draft` (a {@link draftBlock} or {@link draftModel} of it): one `set-*`
 * edit per field whose value the draft replaced (compared by identity), `untie-embeddings` first when the draft untied
 * them. `except` names linears whose weight and bias the step returns in its layer states instead.
 *
 * @example
 * ```ts
 * const edits = modelEditsOf(block, draft, { except: new Set(context.layers.map((l) => l.name)) });
 * ```
 */
export function modelEditsOf<V extends ModelView | BlockView>(original: V, draft: V, options: { except?: Iterable<string> } = {}): ModelEdit[] {
  const before = slotsOf(original).map((s) => s.read());
  const after = slotsOf(draft).map((s) => s.read());
  const tied = (v: ModelView | BlockView): boolean => isModelView(v) && hasLanguageModelHead(v) && v.tiedEmbeddings;
  return editsBetween(original, before, after, tied(original), tied(draft), new Set(options.except ?? []));
}

/**
 * Runs `work` on the model itself (for model-level steps that must run the model's forward pass on the weights they
 * change, such as a learned rotation), then returns what it changed as model edits and puts every field back as it
 * was, also when `work` throws. Fields must be changed by assigning new arrays (never writing into the old ones), so
 * that restoring the old references restores the model bit for bit.
 *
 * @example
 * ```ts
 * const { result, edits } = await collectModelEdits(context.model, () => learnRotation(context.model, sequences));
 * ```
 */
export async function collectModelEdits<T>(view: ModelView | BlockView, work: () => Promise<T>, options: { except?: Iterable<string> } = {}): Promise<{ result: T; edits: ModelEdit[] }> {
  const slots = slotsOf(view);
  const before = slots.map((s) => s.read());
  const model = isModelView(view) ? view : undefined;
  const wasTied = model !== undefined && hasLanguageModelHead(model) && model.tiedEmbeddings;
  try {
    const result = await work();
    const after = slotsOf(view).map((s) => s.read());
    const isTied = model !== undefined && hasLanguageModelHead(model) && model.tiedEmbeddings;
    return { result, edits: editsBetween(view, before, after, wasTied, isTied, new Set(options.except ?? [])) };
  } finally {
    // The embedding first: a tied head is restored to the very matrix the embedding holds again.
    slots.forEach((slot, i) => slot.write(before[i]));
  }
}

/** What {@link viewFingerprint} records: each field's value (by identity) and a hash of its array's bits. */
export interface ViewFingerprint {
  readonly tensors: readonly string[];
  readonly values: readonly unknown[];
  readonly hashes: readonly number[];
}

const FNV_PRIME = 0x01000193;
const FNV_OFFSET = 0x811c9dc5;

/**
 * Feeds `data`'s 32-bit words into a four-lane FNV-1a state (word `i` into lane `i % 4`, counted from the first word
 * ever fed: every chunk but the last must hold a multiple of four words), so that the multiplications of neighbouring
 * words do not wait on each other.
 */
function hashWords(data: Float32Array, state: Uint32Array): void {
  const words = new Uint32Array(data.buffer, data.byteOffset, data.length);
  let a = state[0]!;
  let b = state[1]!;
  let c = state[2]!;
  let d = state[3]!;
  const n = words.length;
  const whole = n - (n & 3);
  let i = 0;
  for (; i < whole; i += 4) {
    a = Math.imul(a ^ words[i]!, FNV_PRIME);
    b = Math.imul(b ^ words[i + 1]!, FNV_PRIME);
    c = Math.imul(c ^ words[i + 2]!, FNV_PRIME);
    d = Math.imul(d ^ words[i + 3]!, FNV_PRIME);
  }
  if (i < n) a = Math.imul(a ^ words[i++]!, FNV_PRIME);
  if (i < n) b = Math.imul(b ^ words[i++]!, FNV_PRIME);
  if (i < n) c = Math.imul(c ^ words[i++]!, FNV_PRIME);
  state[0] = a;
  state[1] = b;
  state[2] = c;
  state[3] = d;
}

const hashState = (): Uint32Array => Uint32Array.of(FNV_OFFSET, FNV_OFFSET ^ 1, FNV_OFFSET ^ 2, FNV_OFFSET ^ 3);

function hashDigest(state: Uint32Array, length: number): number {
  let h = Math.imul(FNV_OFFSET ^ length, FNV_PRIME);
  for (let lane = 0; lane < 4; lane++) h = Math.imul(h ^ state[lane]!, FNV_PRIME);
  return h >>> 0;
}

/** Rows of a held matrix hashed per block of about 1M floats. */
const HASH_BLOCK_FLOATS = 1 << 20;

function hashArray(value: unknown): number {
  // A held matrix not in memory as float32 is hashed without keeping a float32 copy (the same hash): decoded whole and
  // dropped, or a block of rows at a time when it is streamed (an embedding; blocks of a multiple of four floats, so
  // that the lanes of hashWords line up as over the whole array).
  const held = heldMatrixAccess(value);
  const whole = (data: Float32Array): number => {
    const state = hashState();
    hashWords(data, state);
    return hashDigest(state, data.length);
  };
  if (held && !held.resident && !held.streamed) return whole(held.peek());
  if (held && !held.resident) {
    const [rows, columns] = (value as Matrix).shape;
    const step = Math.max(4, Math.floor(HASH_BLOCK_FLOATS / Math.max(1, columns)) & ~3);
    const buffer = new Float32Array(Math.min(rows, step) * columns);
    const state = hashState();
    for (let start = 0; start < rows; start += step) hashWords(held.rows(start, Math.min(rows, start + step), buffer), state);
    return hashDigest(state, rows * columns);
  }
  const data = value && typeof value === 'object' && 'data' in value ? (value as Matrix).data : value;
  if (!(data instanceof Float32Array)) return 0;
  return whole(data);
}

/**
 * A fingerprint of every writable field of a model or block: which array each field holds and a 32-bit FNV-1a hash of
 * its bits. The runner takes one before and after each step and refuses a step that wrote through a view
 * (`ModelEditError`, see {@link changedTensor}).
 *
 * @example
 * ```ts
 * const before = viewFingerprint(block);
 * await step.run(context);
 * const tensor = changedTensor(before, viewFingerprint(block)); // e.g. 'model.layers.0.input_layernorm.weight'
 * ```
 */
export function viewFingerprint(view: ModelView | BlockView): ViewFingerprint {
  const slots = slotsOf(view);
  const values = slots.map((s) => s.read());
  return { tensors: slots.map((s) => s.tensor), values, hashes: values.map(hashArray) };
}

/**
 * The first tensor whose field was replaced or whose bits were written in place between two fingerprints of the same
 * view, with how; undefined when nothing changed.
 *
 * @example
 * ```ts
 * changedTensor(before, viewFingerprint(block)); // { tensor: 'model.layers.0.input_layernorm.weight', how: 'replaced' }
 * ```
 */
export function changedTensor(before: ViewFingerprint, after: ViewFingerprint): { tensor: string; how: 'replaced' | 'written in place' } | undefined {
  for (let i = 0; i < before.tensors.length; i++) {
    if (before.values[i] !== after.values[i]) return { tensor: before.tensors[i]!, how: 'replaced' };
    if (before.hashes[i] !== after.hashes[i]) return { tensor: before.tensors[i]!, how: 'written in place' };
  }
  return undefined;
}
