import { describe, expect, it } from 'vitest';
import { ModelEditError } from './errors.js';
import { applyModelEdits, applyStepResult, type ModelEdit } from './model-edit.js';
import { changedTensor, collectModelEdits, draftBlock, draftModel, modelEditsOf, viewFingerprint } from './model-draft.js';
import { hasLanguageModelHead, type LanguageModelHead } from './language-model-head.js';
import type { BlockView, LinearView, ModelView, NormView } from './model-view.js';
import type { Matrix } from './tensor.js';

const matrix = (rows: number, columns: number, f: (i: number) => number): Matrix => ({ dtype: 'float32', shape: [rows, columns], data: Float32Array.from({ length: rows * columns }, (_, i) => f(i)) });
const linear = (name: string, rows: number, columns: number, seed: number): LinearView => ({ name, kind: name.slice(name.lastIndexOf('.') + 1), weight: matrix(rows, columns, (i) => Math.sin(seed + i)), bias: undefined, inputTransform: undefined });

/** A two-group block: norm → (q, k), q → o (a linear producer). */
function block(gainOffset = 0): BlockView {
  const norm: NormView = { name: 'b.norm', type: 'layer', weight: Float32Array.of(1, 2, 3, 4), bias: Float32Array.of(0.5, -1, 2, 4), ...(gainOffset ? { gainOffset } : {}) };
  const q = linear('b.q', 4, 4, 1);
  const k = linear('b.k', 4, 4, 2);
  const o = linear('b.o', 3, 4, 3);
  return { index: 0, name: 'b', linears: [q, k, o], norms: [norm], inputGroups: [{ linears: [q, k], producer: { kind: 'norm', norm } }, { linears: [o], producer: { kind: 'linear', linear: q } }] };
}

function model(): ModelView & LanguageModelHead {
  const embedding = matrix(5, 4, (i) => i / 7);
  const lmHead: LinearView = { name: 'lm_head', kind: 'lm_head', weight: embedding, bias: undefined, inputTransform: undefined };
  const m: ModelView & LanguageModelHead = {
    architecture: 'toy',
    hiddenSize: 4,
    embedding,
    blocks: [block()],
    finalNorm: { name: 'final', type: 'rms', weight: Float32Array.of(1, 1, 2, 2) },
    lmHead,
    get tiedEmbeddings() {
      return lmHead.weight === m.embedding;
    },
    untieEmbeddings() {
      if (m.tiedEmbeddings) lmHead.weight = { ...lmHead.weight, data: lmHead.weight.data.slice() };
    },
  };
  return m;
}

const thrown = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
};

describe('applyModelEdits', () => {
  it('scale-norm divides the gain (with its offset) and the bias, exactly as the fold equations say', () => {
    for (const offset of [0, 1]) {
      const b = block(offset);
      const s = Float32Array.of(2, 4, 0.5, 1);
      const norm = b.norms[0]!;
      const w0 = norm.weight.slice();
      applyModelEdits(b, [{ kind: 'scale-norm', target: 'b.norm', divisor: s }], 'test');
      for (let j = 0; j < 4; j++) {
        expect(norm.weight[j]).toBe(Math.fround((offset + w0[j]!) / s[j]! - offset));
        expect(norm.bias![j]).toBe(Math.fround([0.5, -1, 2, 4][j]! / s[j]!));
      }
    }
  });

  it('sets weights, biases, input transforms and norm weights, each once; applying a scale twice is not applying it once', () => {
    const b = block();
    const w = matrix(4, 4, () => 7);
    const transform = { name: 'shift', apply: () => undefined, describe: () => ({}) };
    const edits: ModelEdit[] = [
      { kind: 'set-weight', target: 'b.k', weight: w },
      { kind: 'set-bias', target: 'b.o', bias: Float32Array.of(1, 2, 3) },
      { kind: 'set-input-transform', target: 'b.o', transform },
      { kind: 'set-norm-weight', target: 'b.norm', weight: Float32Array.of(9, 9, 9, 9) },
    ];
    applyModelEdits(b, edits, 'test');
    expect(b.linears[1]!.weight).toBe(w);
    expect(Array.from(b.linears[2]!.bias!)).toEqual([1, 2, 3]);
    expect(b.linears[2]!.inputTransform).toBe(transform);
    expect(Array.from(b.norms[0]!.weight)).toEqual([9, 9, 9, 9]);
    const once = block();
    const twice = block();
    const scale: ModelEdit = { kind: 'scale-norm', target: 'b.norm', divisor: Float32Array.of(2, 2, 2, 2) };
    applyModelEdits(once, [scale], 'test');
    applyModelEdits(twice, [scale, scale], 'test');
    expect(Array.from(twice.norms[0]!.weight)).not.toEqual(Array.from(once.norms[0]!.weight));
  });

  it('refuses unknown targets, wrong shapes and bad divisors with ModelEditError naming the step and tensor; checkOnly changes nothing', () => {
    const b = block();
    const e1 = thrown(() => applyModelEdits(b, [{ kind: 'set-weight', target: 'b.nope', weight: matrix(4, 4, () => 0) }], 'mine'));
    expect(ModelEditError.isInstance(e1)).toBe(true);
    expect(e1).toMatchObject({ step: 'mine', tensor: 'b.nope.weight' });
    const e2 = thrown(() => applyModelEdits(b, [{ kind: 'set-weight', target: 'b.o', weight: matrix(4, 4, () => 0) }], 'mine'));
    expect((e2 as Error).message).toMatch(/step 'mine', tensor 'b\.o\.weight': has shape \[4, 4\]; expected \[3, 4\]/);
    const e3 = thrown(() => applyModelEdits(b, [{ kind: 'scale-norm', target: 'b.norm', divisor: Float32Array.of(1, 0, 1, 1) }], 'mine'));
    expect((e3 as Error).message).toMatch(/divisor 1 is 0/);
    const e4 = thrown(() => applyModelEdits(b, [{ kind: 'set-embedding', weight: matrix(5, 4, () => 0) }], 'mine'));
    expect((e4 as Error).message).toMatch(/model-level steps only/);
    const before = viewFingerprint(b);
    applyModelEdits(b, [{ kind: 'scale-norm', target: 'b.norm', divisor: Float32Array.of(2, 2, 2, 2) }], 'mine', { checkOnly: true });
    expect(changedTensor(before, viewFingerprint(b))).toBeUndefined();
  });
});

describe('drafts, edits and fingerprints', () => {
  it('a draft block takes writes without touching the block; its edits turn the block into the draft', () => {
    const b = block();
    const before = viewFingerprint(b);
    const draft = draftBlock(b);
    expect(draft.inputGroups[0]!.producer).toMatchObject({ kind: 'norm', norm: draft.norms[0] });
    expect(draft.inputGroups[1]!.producer).toMatchObject({ kind: 'linear', linear: draft.linears[0] });
    draft.norms[0]!.weight = Float32Array.of(4, 3, 2, 1);
    draft.linears[0]!.weight = matrix(4, 4, () => 1); // q: a layer the step returns in its state
    draft.linears[2]!.bias = Float32Array.of(1, 1, 1);
    expect(changedTensor(before, viewFingerprint(b))).toBeUndefined();
    const edits = modelEditsOf(b, draft, { except: ['b.q', 'b.o'] });
    expect(edits.map((e) => e.kind)).toEqual(['set-norm-weight']);
    const all = modelEditsOf(b, draft);
    expect(all.map((e) => `${e.kind} ${'target' in e ? e.target : ''}`)).toEqual(['set-weight b.q', 'set-bias b.o', 'set-norm-weight b.norm']);
    applyModelEdits(b, all, 'test');
    expect(b.norms[0]!.weight).toBe(draft.norms[0]!.weight);
    expect(b.linears[0]!.weight).toBe(draft.linears[0]!.weight);
    expect(modelEditsOf(b, draft)).toEqual([]);
  });

  it('a draft model unties its own head; the edits untie first, then set the head', () => {
    const m = model();
    const draft = draftModel(m);
    expect(draft.tiedEmbeddings).toBe(true);
    draft.untieEmbeddings();
    draft.lmHead.weight = matrix(5, 4, () => 2);
    draft.embedding = matrix(5, 4, () => 3);
    expect(m.tiedEmbeddings).toBe(true);
    const edits = modelEditsOf(m, draft);
    expect(edits.map((e) => e.kind)).toEqual(['untie-embeddings', 'set-embedding', 'set-weight']);
    applyModelEdits(m, edits, 'test');
    expect(m.tiedEmbeddings).toBe(false);
    expect(m.lmHead.weight).toBe(draft.lmHead.weight);
    expect(m.embedding).toBe(draft.embedding);
  });

  it('collectModelEdits returns what work changed and restores the model bit for bit, also when work throws', async () => {
    const m = model();
    const before = viewFingerprint(m);
    const { result, edits } = await collectModelEdits(m, async () => {
      m.untieEmbeddings();
      m.embedding = matrix(5, 4, () => 1);
      m.finalNorm.weight = Float32Array.of(1, 1, 1, 1);
      return 42;
    });
    expect(result).toBe(42);
    expect(edits.map((e) => e.kind)).toEqual(['untie-embeddings', 'set-embedding', 'set-norm-weight', 'set-weight']);
    expect(changedTensor(before, viewFingerprint(m))).toBeUndefined();
    expect(m.tiedEmbeddings).toBe(true);
    await expect(
      collectModelEdits(m, async () => {
        m.blocks[0]!.norms[0]!.weight = Float32Array.of(0, 0, 0, 0);
        throw new Error('stop');
      }),
    ).rejects.toThrow('stop');
    expect(changedTensor(before, viewFingerprint(m))).toBeUndefined();
  });

  it('a model without a head (an encoder: blocks only) drafts and fingerprints its blocks', () => {
    const b = block();
    const encoder: ModelView = { architecture: 'encoder', hiddenSize: 4, blocks: [b] };
    const before = viewFingerprint(encoder);
    expect(before.tensors).toContain('b.norm.weight');
    expect(before.tensors).not.toContain('embedding');
    const draft = draftModel(encoder);
    expect(hasLanguageModelHead(draft)).toBe(false);
    draft.blocks[0]!.norms[0]!.weight = Float32Array.of(1, 1, 1, 1);
    expect(modelEditsOf(encoder, draft).map((e) => e.kind)).toEqual(['set-norm-weight']);
    expect(changedTensor(before, viewFingerprint(encoder))).toBeUndefined();
  });

  it('fingerprints see replaced fields and bits written in place', () => {
    const b = block();
    const before = viewFingerprint(b);
    (b.linears[1]!.weight.data as Float32Array)[3] = 99;
    expect(changedTensor(before, viewFingerprint(b))).toEqual({ tensor: 'b.k.weight', how: 'written in place' });
    const c = block();
    const start = viewFingerprint(c);
    c.norms[0]!.bias = Float32Array.of(0, 0, 0, 0);
    expect(changedTensor(start, viewFingerprint(c))).toEqual({ tensor: 'b.norm.bias', how: 'replaced' });
  });

  it('applyStepResult applies edits, then writes the returned layer states', () => {
    const b = block();
    const w = matrix(4, 4, () => 5);
    applyStepResult(b, { layers: [{ name: 'b.q', weight: w, bias: Float32Array.of(1, 2, 3, 4) }], warnings: [], edits: [{ kind: 'set-norm-weight', target: 'b.norm', weight: Float32Array.of(1, 1, 1, 1) }] }, 'test');
    expect(b.linears[0]!.weight).toBe(w);
    expect(Array.from(b.linears[0]!.bias!)).toEqual([1, 2, 3, 4]);
    expect(Array.from(b.norms[0]!.weight)).toEqual([1, 1, 1, 1]);
  });
});
