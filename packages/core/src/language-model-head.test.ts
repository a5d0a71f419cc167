import { describe, expect, it } from 'vitest';
import { MissingCapabilityError, ModelEditError } from './errors.js';
import { hasLanguageModelHead, hasLogits, requireLanguageModelHead, requireLogits } from './language-model-head.js';
import { applyModelEdits } from './model-edit.js';
import { draftModel, modelEditsOf, viewFingerprint } from './model-draft.js';
import type { BlockView, LinearView, ModelView, NormView } from './model-view.js';
import { matrix } from './tensor.js';

const linear = (name: string, rows = 2, columns = 4): LinearView => ({ name, kind: name.split('.').pop()!, weight: matrix(new Float32Array(rows * columns).fill(1), rows, columns), bias: undefined, inputTransform: undefined });
const norm = (name: string): NormView => ({ name, type: 'rms', weight: new Float32Array(4).fill(1) });

function block(): BlockView {
  const a = linear('layers.0.a');
  return { index: 0, name: 'layers.0', linears: [a], norms: [norm('layers.0.norm')], inputGroups: [{ linears: [a], producer: { kind: 'none' } }] };
}

/** Blocks only (an encoder). */
const headless = (): ModelView => ({ architecture: 'encoder', hiddenSize: 4, blocks: [block()] });

/** Blocks and a language-model head with a tied embedding. */
function withHead() {
  const head = linear('lm_head', 6, 4);
  let embedding = head.weight;
  let tied = true;
  return {
    ...headless(),
    architecture: 'decoder',
    get embedding() {
      return embedding;
    },
    set embedding(value) {
      embedding = value;
    },
    finalNorm: norm('norm'),
    lmHead: head,
    get tiedEmbeddings() {
      return tied;
    },
    untieEmbeddings() {
      if (tied) head.weight = matrix((head.weight.data as Float32Array).slice(), 6, 4);
      tied = false;
    },
  };
}

describe('the language-model head capability', () => {
  it('hasLanguageModelHead tells a decoder from an encoder; hasLogits also needs logits()', () => {
    expect(hasLanguageModelHead(headless())).toBe(false);
    expect(hasLanguageModelHead(withHead())).toBe(true);
    // Part of a head is no head.
    const { untieEmbeddings: _u, ...noUntie } = withHead();
    expect(hasLanguageModelHead(noUntie)).toBe(false);
    expect(hasLogits(withHead())).toBe(false);
    expect(hasLogits({ ...withHead(), logits: async () => matrix(new Float32Array(6), 1, 6) })).toBe(true);
  });

  it('requireLanguageModelHead / requireLogits return the model or throw MissingCapabilityError naming the consumer and capability', () => {
    const model = withHead();
    expect(requireLanguageModelHead(model, 'test')).toBe(model);
    const error = (() => {
      try {
        requireLanguageModelHead(headless(), 'a residual rotation');
      } catch (e) {
        return e;
      }
    })();
    expect(MissingCapabilityError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ consumer: 'a residual rotation', capability: 'language-model-head', code: 'missing-capability' });
    expect((error as Error).message).toBe("a residual rotation needs the model's language-model-head capability: expected an embedding, a final norm, an LM head and untieEmbeddings(); encoder has blocks only");
    expect(() => requireLogits(model, 'kl')).toThrow(/kl needs the model's logits capability: .*decoder has a head but no logits\(\)/);
  });

  it('a draft of a headless model has blocks only; its edits never name a head, and head edits are refused by name', () => {
    const model = headless();
    const draft = draftModel(model);
    expect(hasLanguageModelHead(draft)).toBe(false);
    expect(viewFingerprint(model).tensors).toEqual(['layers.0.a.weight', 'layers.0.a.bias', 'layers.0.a.inputTransform', 'layers.0.norm.weight', 'layers.0.norm.bias']);
    draft.blocks[0]!.linears[0]!.weight = matrix(new Float32Array(8).fill(2), 2, 4);
    expect(modelEditsOf(model, draft).map((e) => e.kind)).toEqual(['set-weight']);
    expect(() => applyModelEdits(model, [{ kind: 'set-embedding', weight: matrix(new Float32Array(24), 6, 4) }], 'step')).toThrow(ModelEditError);
    expect(() => applyModelEdits(model, [{ kind: 'untie-embeddings' }], 'step')).toThrow(/encoder has no language-model head capability/);
    expect(() => applyModelEdits(model, [{ kind: 'set-weight', target: 'lm_head', weight: matrix(new Float32Array(24), 6, 4) }], 'step')).toThrow(/no linear named 'lm_head'/);
  });

  it('a draft of a model with a head carries it: untying and rotating the embedding become edits', () => {
    const model = withHead();
    const draft = draftModel(model);
    expect(hasLanguageModelHead(draft)).toBe(true);
    expect(draft.tiedEmbeddings).toBe(true);
    draft.untieEmbeddings();
    draft.embedding = matrix(new Float32Array(24).fill(3), 6, 4);
    expect(modelEditsOf(model, draft).map((e) => e.kind)).toEqual(['untie-embeddings', 'set-embedding', 'set-weight']);
  });
});
