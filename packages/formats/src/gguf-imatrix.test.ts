import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf as hfGguf } from '@huggingface/gguf';
import { linearInputSquareSums, loadLlamaModel } from '@bitsmith/models';
import { describe, expect, it } from 'vitest';
import { encodeImatrixDat, encodeImatrixGguf, imatrixFromSquareSums, imatrixImportance, parseImatrix, type Imatrix } from './gguf-imatrix.js';
import { SKIP_SHARED, TINYSTORIES_DIR } from '../../models/src/shared-data.test-support.js';

const imatrix: Imatrix = {
  entries: new Map([
    ['blk.0.attn_q.weight', { sums: Float32Array.of(2, 8), count: 4 }],
    ['blk.0.attn_k.weight', { sums: Float32Array.of(1, 3), count: 4 }],
  ]),
  datasets: ['calib.txt'],
  chunkCount: 2,
  chunkSize: 2,
};

describe('imatrix files in llama.cpp layouts', () => {
  it('legacy .dat: the bytes of tools/imatrix save_imatrix_legacy, worked out by hand', () => {
    // entries sorted by name (attn_k before attn_q); ncall = ceil(4 / 2) = 2; values = sum / count * ncall
    const parts: number[] = [];
    const i32 = (v: number) => parts.push(...new Uint8Array(Int32Array.of(v).buffer));
    const f32 = (v: number) => parts.push(...new Uint8Array(Float32Array.of(v).buffer));
    const str = (s: string) => parts.push(...new TextEncoder().encode(s));
    i32(2);
    i32(19), str('blk.0.attn_k.weight'), i32(2), i32(2), f32(0.5), f32(1.5);
    i32(19), str('blk.0.attn_q.weight'), i32(2), i32(2), f32(1), f32(4);
    i32(2), i32(9), str('calib.txt');
    expect([...encodeImatrixDat(imatrix)]).toEqual(parts);
  });

  it('GGUF: general.type imatrix, datasets, chunk count/size, <name>.in_sum2 [columns, 1] and <name>.counts [1, 1] in F32 (read by @huggingface/gguf)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bitsmith-imatrix-'));
    const path = join(dir, 'imatrix.gguf');
    writeFileSync(path, encodeImatrixGguf(imatrix));
    let file: Awaited<ReturnType<typeof hfGguf>>;
    try {
      file = await hfGguf(path, { allowLocalFile: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const md = file.metadata as unknown as Record<string, unknown>;
    expect(md['general.type']).toBe('imatrix');
    expect(md['imatrix.datasets']).toEqual(['calib.txt']);
    expect(md['imatrix.chunk_count']).toBe(2);
    expect(md['imatrix.chunk_size']).toBe(2);
    expect(file.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype])).toEqual([
      ['blk.0.attn_k.weight.in_sum2', [2, 1], 0],
      ['blk.0.attn_k.weight.counts', [1, 1], 0],
      ['blk.0.attn_q.weight.in_sum2', [2, 1], 0],
      ['blk.0.attn_q.weight.counts', [1, 1], 0],
    ]);
  });

  it('both layouts read back to the same importance (sums / count), as llama-quantize computes it', () => {
    for (const bytes of [encodeImatrixGguf(imatrix), encodeImatrixDat(imatrix)]) {
      const importance = imatrixImportance(parseImatrix(bytes));
      expect([...importance.get('blk.0.attn_q.weight')!]).toEqual([0.5, 2]);
      expect([...importance.get('blk.0.attn_k.weight')!]).toEqual([0.25, 0.75]);
    }
  });

  it('refuses bytes that are neither layout', () => {
    expect(() => parseImatrix(Uint8Array.of(0, 0, 0, 0))).toThrow(/at least one entry/);
    expect(() => parseImatrix(Uint8Array.of(1, 0, 0, 0, 200, 0, 0, 0))).toThrow(/expected a GGUF or legacy/);
  });
});

describe.skipIf(SKIP_SHARED)('imatrix from calibration (tinystories-656k)', () => {
  it("layer 0's q/k/v entries equal sum_t (rmsnorm(embedding) * g)^2 computed by hand, over every token", async () => {
    const { graph } = await loadLlamaModel(TINYSTORIES_DIR);
    const sequences = [Int32Array.of(1, 20, 300, 44, 5), Int32Array.of(1, 7, 8)];
    const sums = await linearInputSquareSums(graph, sequences, { batchSize: 1 });
    const im = imatrixFromSquareSums(sums, { datasets: ['x'], chunkCount: 2, chunkSize: 5 });
    const tensors = graph.tensors();
    const embed = tensors.get('lm_head.weight') ?? tensors.get('model.embed_tokens.weight')!;
    const g = tensors.get('model.layers.0.input_layernorm.weight')!.data;
    const hidden = graph.config.hiddenSize;
    const expected = new Float64Array(hidden);
    for (const seq of sequences) {
      for (const token of seq) {
        const e = embed.data.subarray(token * hidden, (token + 1) * hidden);
        let ms = 0;
        for (const v of e) ms += v * v;
        const inv = 1 / Math.sqrt(ms / hidden + graph.config.rmsNormEps);
        for (let j = 0; j < hidden; j++) expected[j] += (e[j]! * inv * g[j]!) ** 2;
      }
    }
    for (const name of ['blk.0.attn_q.weight', 'blk.0.attn_k.weight', 'blk.0.attn_v.weight']) {
      const entry = im.entries.get(name)!;
      expect(entry.count).toBe(8);
      for (let j = 0; j < hidden; j++) expect(entry.sums[j]).toBeCloseTo(expected[j]!, 3);
    }
    expect(im.entries.has('output.weight')).toBe(false);
    expect(im.entries.get('blk.1.ffn_down.weight')!.sums.length).toBe(graph.config.intermediateSize);
  });
});
