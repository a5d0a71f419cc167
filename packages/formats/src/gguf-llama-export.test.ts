import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf as hfGguf } from '@huggingface/gguf';
import { loadLlamaModel } from '@bitsmith/models';
import { afterAll, describe, expect, it } from 'vitest';
import { dequantize, parseFormat, quantize, StoredFormRefusedError, type Matrix, type StoredForm, type Tensor } from '@bitsmith/core';
import { ggufPlainValue } from './gguf-metadata.js';
import { ggufTensorType, permuteForGgmlRope } from './gguf-llama-export.js';
import { readGguf, saveGgufModel } from './gguf-file.js';
import { SKIP_SHARED, TINYSTORIES_DIR } from '../../models/src/shared-data.test-support.js';

describe('permuteForGgmlRope', () => {
  it('moves row half*hd/2 + i of each head to 2i + half (convert_hf_to_gguf permute)', () => {
    const rows = Float32Array.from({ length: 8 }, (_, i) => i); // 2 heads of 4, 1 column
    expect([...permuteForGgmlRope(rows, 2, 4, 1)]).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
  });
});

describe('ggufTensorType', () => {
  it("Q4_K_M: Q6_K for output and for attn_v/ffn_down in llama.cpp's use_more_bits layers (32 layers: 0-3, 6, 9, ..., 27, 28-31)", () => {
    // llama-quant.cpp for n = 32: i < 4 || i >= 28 || (i - 4) % 3 == 2, worked out by hand.
    const more = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
    for (let i = 0; i < 32; i++) {
      const expected = more.includes(i) ? 'Q6_K' : 'Q4_K';
      expect(ggufTensorType(`blk.${i}.attn_v.weight`, 'Q4_K_M', 32)).toBe(expected);
      expect(ggufTensorType(`blk.${i}.ffn_down.weight`, 'Q4_K_M', 32)).toBe(expected);
      expect(ggufTensorType(`blk.${i}.attn_q.weight`, 'Q4_K_M', 32)).toBe('Q4_K');
    }
    // 12 layers, C integer division: 12/8 = 1, 7*12/8 = 10 -> 0, 10, 11 and (i - 1) % 3 == 2 -> 3, 6, 9.
    const more12 = [0, 3, 6, 9, 10, 11];
    for (let i = 0; i < 12; i++) expect(ggufTensorType(`blk.${i}.ffn_down.weight`, 'Q4_K_M', 12)).toBe(more12.includes(i) ? 'Q6_K' : 'Q4_K');
    expect(ggufTensorType('output.weight', 'Q4_K_M', 32)).toBe('Q6_K');
    expect(ggufTensorType('token_embd.weight', 'Q4_K_M', 32)).toBe('Q4_K');
    // tied embeddings (no output.weight): llama-quant.cpp quantizes token_embd as the output
    expect(ggufTensorType('token_embd.weight', 'Q4_K_M', 32, false)).toBe('Q6_K');
    expect(ggufTensorType('output.weight', 'Q8_0', 32)).toBe('Q8_0');
  });
});

describe.skipIf(SKIP_SHARED)('saveGgufModel on tinystories-656k', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bitsmith-gguf-llama-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const bounds = { F32: 0, F16: 1e-3, Q8_0: 0.01, Q4_0: 0.2, Q4_K: 0.12 } as const;

  for (const [type, bound] of Object.entries(bounds) as [keyof typeof bounds, number][]) {
    it(`${type}: metadata, tensor infos (also through @huggingface/gguf) and decoded weights`, async () => {
      const model = await loadLlamaModel(TINYSTORIES_DIR);
      const path = join(dir, `m.${type}.gguf`);
      const result = await saveGgufModel(path, model.graph, TINYSTORIES_DIR, { type });
      const file = await readGguf(path);
      const md = (k: string): unknown => ggufPlainValue(file.metadata.get(k)!);
      expect(md('general.architecture')).toBe('llama');
      expect(md('llama.block_count')).toBe(2);
      expect(md('llama.embedding_length')).toBe(128);
      expect(md('llama.feed_forward_length')).toBe(384);
      expect(md('llama.attention.head_count')).toBe(8);
      expect(md('llama.attention.head_count_kv')).toBe(4);
      expect(md('llama.rope.dimension_count')).toBe(16);
      expect(md('llama.vocab_size')).toBe(2048);
      expect(md('tokenizer.ggml.model')).toBe('llama');
      expect((md('tokenizer.ggml.tokens') as string[])[1]).toBe('<|start_story|>');
      expect(md('tokenizer.ggml.bos_token_id')).toBe(1);
      expect(md('tokenizer.ggml.eos_token_id')).toBe(2);
      expect(md('tokenizer.ggml.add_bos_token')).toBe(true);
      const names = file.tensors.map((t) => t.name);
      expect(names).toContain('token_embd.weight');
      expect(names).toContain('blk.1.ffn_down.weight');
      expect(names).toContain('output_norm.weight');
      expect(names).not.toContain('output.weight'); // tied embeddings
      expect(file.tensors.find((t) => t.name === 'blk.0.attn_k.weight')).toMatchObject({ dims: [128, 64], shape: [64, 128] });
      expect(file.tensors.find((t) => t.name === 'blk.0.attn_norm.weight')?.type).toBe('F32');
      // Q4_K rows of 128/384 do not divide into 256: llama.cpp's fallback Q5_0
      if (type === 'Q4_K') expect(new Set(result.tensors.filter((t) => t.shape.length === 2).map((t) => t.type))).toEqual(new Set(['Q5_0']));

      const hf = await hfGguf(path, { allowLocalFile: true });
      const hfMd = hf.metadata as unknown as Record<string, unknown>;
      expect(hfMd['llama.context_length']).toBe(512);
      expect(hfMd['tokenizer.ggml.model']).toBe('llama');
      expect(hf.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype])).toEqual(file.tensors.map((t) => [t.name, [...t.dims], t.typeId]));

      const weights = model.graph.tensors();
      const check = (hfName: string, ggufName: string, permute?: number): void => {
        const w = weights.get(hfName)!;
        let ref = w.data;
        if (permute) ref = permuteForGgmlRope(ref, permute, 16, w.shape[1]!);
        const got = file.tensorValues(ggufName);
        let e = 0;
        let s = 0;
        for (let i = 0; i < ref.length; i++) {
          e += (got[i]! - ref[i]!) ** 2;
          s += ref[i]! ** 2;
        }
        expect(Math.sqrt(e / s)).toBeLessThanOrEqual(bound);
      };
      check('model.embed_tokens.weight', 'token_embd.weight');
      check('model.layers.0.self_attn.q_proj.weight', 'blk.0.attn_q.weight', 8);
      check('model.layers.1.self_attn.k_proj.weight', 'blk.1.attn_k.weight', 4);
      check('model.layers.1.mlp.down_proj.weight', 'blk.1.ffn_down.weight');
      check('model.norm.weight', 'output_norm.weight');
    });
  }
});

describe.skipIf(SKIP_SHARED)('saveGgufModel with the recipe\'s stored forms (tinystories-656k)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bitsmith-gguf-stored-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The model with every linear layer replaced by int4 g32 round-to-nearest (fp16 scales), and the stored grids. */
  async function calibrated() {
    const model = await loadLlamaModel(TINYSTORIES_DIR);
    const stored = new Map<string, StoredForm>();
    const tensors = new Map<string, Tensor<'float32'>>(model.graph.tensors());
    for (const block of model.graph.blocks) {
      for (const l of block.linears) {
        const w = tensors.get(`${l.name}.weight`)! as Matrix;
        const q = quantize(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 32 }, scaleEncoding: 'float16' });
        stored.set(l.name, { kind: 'grid', tensor: q });
        tensors.set(`${l.name}.weight`, dequantize(q));
      }
    }
    const source = { config: model.graph.config, blocks: model.graph.blocks, tensors: () => tensors };
    return { source, stored, tensors };
  }

  it('Q4_0 carries every calibrated grid exactly: the file decodes to the calibrated weights bit for bit', async () => {
    const { source, stored, tensors } = await calibrated();
    const path = join(dir, 'm.Q4_0.gguf');
    const result = await saveGgufModel(path, source, TINYSTORIES_DIR, { type: 'Q4_0', stored });
    const file = await readGguf(path);
    const linears = result.tensors.filter((t) => /^blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$/.test(t.name));
    expect(linears.length).toBe(14);
    for (const t of linears) expect(t.path, t.name).toBe('exact');
    expect(result.tensors.find((t) => t.name === 'token_embd.weight')?.path).toBe('quantized');
    const q = tensors.get('model.layers.1.self_attn.q_proj.weight')!;
    expect([...file.tensorValues('blk.1.attn_q.weight')]).toEqual([...permuteForGgmlRope(q.data, 8, 16, 128)]);
    const down = tensors.get('model.layers.0.mlp.down_proj.weight')!;
    expect([...file.tensorValues('blk.0.ffn_down.weight')]).toEqual([...down.data]);
  });

  it('refuses a low-rank layer by name before writing anything', async () => {
    const { source, stored } = await calibrated();
    const [name, form] = [...stored][3]!;
    const a: Matrix = { dtype: 'float32', shape: [form.kind === 'grid' ? form.tensor.shape[0] : 0, 2], data: new Float32Array((form.kind === 'grid' ? form.tensor.shape[0] : 0) * 2) };
    const b: Matrix = { dtype: 'float32', shape: [2, form.kind === 'grid' ? form.tensor.shape[1] : 0], data: new Float32Array((form.kind === 'grid' ? form.tensor.shape[1] : 0) * 2) };
    stored.set(name, { kind: 'low-rank', base: form, a, b, factorBits: 0 });
    const path = join(dir, 'refused.gguf');
    const error = await saveGgufModel(path, source, TINYSTORIES_DIR, { type: 'Q4_0', stored }).catch((e: unknown) => e);
    expect(StoredFormRefusedError.isInstance(error)).toBe(true);
    expect(String((error as Error).message)).toContain(name);
    expect(String((error as Error).message)).toContain('low-rank');
    expect(existsSync(path)).toBe(false);
  });
});
