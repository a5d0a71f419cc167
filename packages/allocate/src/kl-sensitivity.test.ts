import { matrix, MissingCapabilityError, type BlockView, type HiddenStatesHandle, type LinearInputCallback, type LinearView, type Matrix, type QuantizableModel } from '@bitsmith/core';
import { describe, expect, it } from 'vitest';
import { resolveCandidate } from './candidate.js';
import { klSensitivities } from './kl-sensitivity.js';

const HIDDEN = 8;
const VOCAB = 8;

/** One block `h <- h W^T` per linear; tokens embed as one-hot rows; with `head`, logits are `h` itself. */
function model(head: boolean): QuantizableModel {
  const linear = (name: string, seed: number): LinearView => ({
    name,
    kind: 'fc',
    weight: matrix(Float32Array.from({ length: HIDDEN * HIDDEN }, (_, i) => Math.sin(seed * 13 + i) * 1.5), HIDDEN, HIDDEN),
    bias: undefined,
    inputTransform: undefined,
  });
  const blocks: BlockView[] = [0, 1].map((index) => {
    const l = linear(`b${index}.fc`, index + 1);
    return { index, name: `b${index}`, linears: [l], norms: [], inputGroups: [{ linears: [l], producer: { kind: 'none' } }] };
  });
  const base: QuantizableModel = {
    architecture: head ? 'toy-decoder' : 'toy-encoder',
    hiddenSize: HIDDEN,
    blocks,
    async embed(sequences: readonly ArrayLike<number>[]): Promise<HiddenStatesHandle> {
      const tokens = sequences.flatMap((s) => Array.from(s));
      const data = new Float32Array(tokens.length * HIDDEN);
      tokens.forEach((t, r) => (data[r * HIDDEN + t] = 1));
      return matrix(data, tokens.length, HIDDEN);
    },
    async runBlock(index: number, hidden: HiddenStatesHandle, observe?: LinearInputCallback): Promise<HiddenStatesHandle> {
      const x = hidden as Matrix<'float32'>;
      const w = blocks[index]!.linears[0]!.weight.data;
      await observe?.(blocks[index]!.linears[0]!.name, x);
      const rows = x.shape[0];
      const y = new Float32Array(rows * HIDDEN);
      for (let r = 0; r < rows; r++) for (let o = 0; o < HIDDEN; o++) for (let c = 0; c < HIDDEN; c++) y[r * HIDDEN + o]! += x.data[r * HIDDEN + c]! * w[o * HIDDEN + c]!;
      return matrix(y, rows, HIDDEN);
    },
  };
  if (!head) return base;
  const lmHead: LinearView = { name: 'lm_head', kind: 'lm_head', weight: matrix(new Float32Array(VOCAB * HIDDEN), VOCAB, HIDDEN), bias: undefined, inputTransform: undefined };
  return Object.assign(base, {
    embedding: matrix(new Float32Array(VOCAB * HIDDEN), VOCAB, HIDDEN),
    finalNorm: { name: 'norm', type: 'rms' as const, weight: new Float32Array(HIDDEN).fill(1) },
    lmHead,
    tiedEmbeddings: false,
    untieEmbeddings: () => undefined,
    logits: async (hidden: HiddenStatesHandle) => hidden as Matrix,
  });
}

const SEQUENCES = [[0, 1, 2, 3], [4, 5, 6, 7]];
const CANDIDATES = [resolveCandidate({ format: 'int2' }), resolveCandidate({ format: 'int8' })];

describe('klSensitivities', () => {
  it('refuses a model without logits (an encoder) with MissingCapabilityError', async () => {
    await expect(klSensitivities(model(false), SEQUENCES, CANDIDATES)).rejects.toThrow(MissingCapabilityError);
    await expect(klSensitivities(model(false), SEQUENCES, CANDIDATES)).rejects.toThrow(/klSensitivities .* needs the model's logits capability.*toy-encoder has blocks only/);
  });

  it('on a model with a head: KL >= 0, int2 costs more than int8, and the weights are restored', async () => {
    const m = model(true);
    const before = m.blocks.map((b) => b.linears[0]!.weight);
    const kl = await klSensitivities(m, SEQUENCES, CANDIDATES);
    expect([...kl.keys()]).toEqual(['b0.fc', 'b1.fc']);
    for (const [name, [int2, int8]] of kl) {
      expect(int8!, name).toBeGreaterThanOrEqual(-1e-12); // a KL divergence, up to float rounding
      expect(int2!, name).toBeGreaterThan(int8!);
    }
    expect(m.blocks.map((b) => b.linears[0]!.weight)).toEqual(before);
  });
});
