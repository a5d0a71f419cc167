import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createOrtBackend, type Backend, type GatedMlpArguments } from '@bitsmith/linalg';
import { fusedGatedMlp } from './fused-mlp.js';
import { loadLlamaGraph } from './load-llama-node.js';
import { SHARED_DIR, SKIP_SHARED } from './shared-data.test-support.js';

const LLAMA_DOCS_DIR = join(SHARED_DIR, 'models', 'llama-docs-29m');

let ort: Backend | undefined;
try {
  // Constant-weight sessions from one row on, so that a short forward takes the fused path.
  ort = await createOrtBackend({ threads: 2, constantWeightMinRows: 1 });
} catch {
  ort = undefined;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

describe.skipIf(SKIP_SHARED || !ort)('the forward with the fused gated MLP (ort backend, llama-docs-29m)', () => {
  it('gives the logits of the layer-by-layer MLP bit for bit, and follows an MLP weight edited in place', async () => {
    // The same backend without gatedMlp: every MLP runs as three constant-weight products and the native activation.
    const calls: number[] = [];
    const counting: Backend = { ...ort!, gatedMlp: async (a: GatedMlpArguments) => (calls.push(a.rows), ort!.gatedMlp!(a)) };
    const layered: Backend = { ...ort!, gatedMlp: undefined };
    const fused = await loadLlamaGraph(LLAMA_DOCS_DIR, { backend: counting });
    const plain = await loadLlamaGraph(LLAMA_DOCS_DIR, { backend: layered });
    const seqs = Array.from({ length: 3 }, (_, s) => Array.from({ length: 70 }, (_, i) => (i * 13 + s * 101) % fused.config.vocabSize));
    const agree = async (): Promise<boolean> => sameBits((await fused.forward(seqs)).data, (await plain.forward(seqs)).data);
    expect(await agree()).toBe(true);
    expect(calls.length).toBe(fused.blocks.length);
    expect(calls.every((rows) => rows === 210)).toBe(true);
    // An edit of one graph's weight in place, mirrored in the other: the fused session must notice it.
    fused.blocks[2]!.mlp!.gateProj.weight.data[7]! += 0.25;
    plain.blocks[2]!.mlp!.gateProj.weight.data[7]! += 0.25;
    expect(await agree()).toBe(true);
  });

  it('declines layers with a bias or an input transform (the caller then runs them one by one)', async () => {
    const graph = await loadLlamaGraph(LLAMA_DOCS_DIR, { backend: ort! });
    const mlp = graph.blocks[0]!.mlp!;
    const x = new Float32Array(16 * graph.config.hiddenSize);
    expect(await fusedGatedMlp(ort!, mlp, x, 16, 'silu')).toBeInstanceOf(Float32Array);
    expect(await fusedGatedMlp(ort!, { ...mlp, upProj: { ...mlp.upProj, bias: new Float32Array(mlp.upProj.outFeatures) } }, x, 16, 'silu')).toBeUndefined();
    expect(await fusedGatedMlp(ort!, { ...mlp, downProj: { ...mlp.downProj, inputTransform: { describe: () => ({ kind: 'identity' }), apply: async () => {} } as never } }, x, 16, 'silu')).toBeUndefined();
    expect(await fusedGatedMlp({ ...ort!, gatedMlp: undefined }, mlp, x, 16, 'silu')).toBeUndefined();
  });
});
