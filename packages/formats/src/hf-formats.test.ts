import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dequantize, groupIndexOfColumns, quantize, type Granularity, type Matrix, type QuantizedTensor } from '@bitsmith/core';
import { openSafetensors, readTfjsModel } from '@bitsmith/models';
import { packCompressedTensors, unpackCompressedTensors } from './compressed-tensors.js';
import { packGptq, unpackGptq } from './gptq.js';
import { loadCompressedTensors, loadGptq, saveCompressedTensors, saveGptq } from './hf-checkpoint-file.js';
import { packWords, unpackWords } from './packed-words.js';
import { storedValues } from './stored-tensor.js';
import { readTfjsQuantizedWeight, tfjsWeightToQuantizedTensor } from './tfjs-manifest.js';
import { saveTfjsModel } from './tfjs-manifest-file.js';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomMatrix(rows: number, columns: number, seed: number): Matrix {
  const r = rng(seed);
  const data = new Float32Array(rows * columns);
  for (let i = 0; i < data.length; i++) data[i] = (r() - 0.45) * (1 + 3 * r());
  return { dtype: 'float32', shape: [rows, columns], data };
}

function randomPermutation(n: number, seed: number): Int32Array {
  const r = rng(seed);
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** A quantized tensor (optionally act-ordered: codes re-derived on the permuted groups). */
function quantized(rows: number, columns: number, bits: number, symmetric: boolean, granularity: Granularity, seed: number, actOrder = false): QuantizedTensor {
  const w = randomMatrix(rows, columns, seed);
  const q = quantize(w, { format: { type: 'int', bits, symmetric }, granularity });
  if (!actOrder) return q;
  // Any codes and per-group scales are valid data; attach a permutation so groups follow it.
  return { ...q, permutation: randomPermutation(columns, seed + 1) };
}

function words(t: { bytes: Uint8Array }): number[] {
  return Array.from(new Int32Array(t.bytes.slice().buffer));
}

function expectSameQuantized(a: QuantizedTensor, b: QuantizedTensor): void {
  expect(b.shape).toEqual(a.shape);
  expect(b.format).toEqual(a.format);
  expect(b.granularity).toEqual(a.granularity);
  expect(Array.from(b.codes)).toEqual(Array.from(a.codes));
  expect(Array.from(b.scales)).toEqual(Array.from(a.scales));
  expect(b.zeroPoints && Array.from(b.zeroPoints)).toEqual(a.zeroPoints && Array.from(a.zeroPoints));
  if (a.granularity.type === 'group') {
    const size = a.granularity.size;
    expect(Array.from(groupIndexOfColumns(a.shape[1], size, b.permutation))).toEqual(Array.from(groupIndexOfColumns(a.shape[1], size, a.permutation)));
  }
  expect(Array.from(dequantize(b).data)).toEqual(Array.from(dequantize(a).data));
}

describe('word packing (worked examples from the format definitions)', () => {
  it('compressed-tensors docstring: 8-bit [1, 2] -> offset binary [129, 130] -> 33409', () => {
    const q: QuantizedTensor = { shape: [1, 2], format: { type: 'int', bits: 8, symmetric: true }, granularity: { type: 'channel' }, codes: Uint8Array.of(129, 130), scales: Float32Array.of(1), scaleEncoding: 'float16' };
    const { tensors } = packCompressedTensors(q);
    expect(tensors.weight_packed.shape).toEqual([1, 1]);
    expect(words(tensors.weight_packed)).toEqual([33409]);
  });

  it('eight 4-bit values -8..7 step 2 pack into one int32, lowest first', () => {
    // signed q = [-8, -6, -4, -2, 0, 2, 4, 6] -> offset binary codes [0, 2, 4, 6, 8, 10, 12, 14] -> nibbles 0xECA86420
    const codes = Uint8Array.of(0, 2, 4, 6, 8, 10, 12, 14);
    const q: QuantizedTensor = { shape: [1, 8], format: { type: 'int', bits: 4, symmetric: true }, granularity: { type: 'channel' }, codes, scales: Float32Array.of(0.5), scaleEncoding: 'float16' };
    expect(words(packCompressedTensors(q).tensors.weight_packed)).toEqual([0xeca86420 | 0]);
    expect(Array.from(dequantize(unpackCompressedTensors(packCompressedTensors(q).tensors, { num_bits: 4, symmetric: true, strategy: 'channel', group_size: null })).data)).toEqual([-4, -3, -2, -1, 0, 1, 2, 3]);
  });

  it('compressed-tensors 3 bits: 10 codes per word, 2 bits unused; the 11th starts a new word', () => {
    const codes = Uint8Array.from({ length: 11 }, () => 7);
    const out: number[] = [];
    packWords(11, 3, 'aligned', (i) => codes[i]!, (_, v) => out.push(v));
    expect(out).toEqual([0x3fffffff, 7]);
  });

  it('GPTQ 3 bits: 32 codes over three words, element 10 split 2+1 and element 21 split 1+2 (AutoGPTQ pack)', () => {
    const codes = new Uint8Array(32);
    codes[10] = 0b101; // low two bits 01 at word0 bits 30-31, high bit 1 at word1 bit 0
    codes[21] = 0b110; // low bit 0 at word1 bit 31, high bits 11 at word2 bits 0-1
    codes[31] = 0b111; // word2 bits 29-31
    const out: number[] = [];
    packWords(32, 3, 'dense', (i) => codes[i]!, (_, v) => out.push(v));
    expect(out).toEqual([0x40000000, 0x00000001, (0b11 | (0b111 << 29)) | 0]);
    const back = new Uint8Array(32);
    unpackWords(32, 3, 'dense', (w) => out[w]!, (i, v) => (back[i] = v));
    expect(Array.from(back)).toEqual(Array.from(codes));
  });

  it('GPTQ qzeros: symmetric 4 bits store z = 8 as 7 in v1 (0x77777777) and 8 in v2 (0x88888888)', () => {
    const q = quantized(32, 32, 4, true, { type: 'channel' }, 3);
    expect(words(packGptq(q, 'gptq').tensors.qzeros)).toEqual(Array(4).fill(0x77777777));
    expect(words(packGptq(q, 'gptq_v2').tensors.qzeros)).toEqual(Array(4).fill(0x88888888 | 0));
    // qweight: column n holds row n's 32 codes, 8 per word, element k at bits 4k.
    const t = packGptq(q, 'gptq').tensors;
    expect(t.qweight.shape).toEqual([4, 32]);
    const w = words(t.qweight);
    let expected = 0;
    for (let k = 0; k < 8; k++) expected |= q.codes[5 * 32 + k]! << (4 * k);
    expect(w[0 * 32 + 5]).toBe(expected);
    expect(Array.from(storedValues(t.g_idx))).toEqual(Array(32).fill(0));
  });
});

describe('compressed-tensors pack-quantized round trip', () => {
  const cases: [number, number, Granularity][] = [
    [37, 96, { type: 'group', size: 32 }],
    [5, 24, { type: 'group', size: 8 }],
    [19, 13, { type: 'channel' }],
  ];
  for (let bits = 1; bits <= 8; bits++) {
    for (const symmetric of [true, false]) {
      it(`int${bits}${symmetric ? '' : '-asym'}: codes, scales, zero points and g_idx survive`, () => {
        for (const [i, [rows, columns, g]] of cases.entries()) {
          for (const actOrder of g.type === 'group' ? [false, true] : [false]) {
            const q = quantized(rows, columns, bits, symmetric, g, 100 * bits + i, actOrder);
            const { tensors, args } = packCompressedTensors(q);
            const perWord = Math.floor(32 / bits);
            expect(tensors.weight_packed.shape).toEqual([rows, Math.ceil(columns / perWord)]);
            expect(tensors.weight_scale.dtype).toBe('F16');
            expect(tensors.weight_scale.shape).toEqual([rows, g.type === 'group' ? columns / g.size : 1]);
            expect(tensors.weight_shape.dtype).toBe('I64');
            if (symmetric) expect(tensors.weight_zero_point).toBeUndefined();
            else expect(tensors.weight_zero_point!.shape).toEqual([Math.ceil(rows / perWord), g.type === 'group' ? columns / g.size : 1]);
            expect(args.actorder).toBe(actOrder ? 'group' : null);
            expect(tensors.weight_g_idx !== undefined).toBe(actOrder);
            expectSameQuantized(q, unpackCompressedTensors(tensors, args));
          }
        }
      });
    }
  }
});

describe('GPTQ round trip', () => {
  for (const bits of [2, 3, 4, 8]) {
    for (const symmetric of [true, false]) {
      for (const format of ['gptq', 'gptq_v2'] as const) {
        it(`${format} int${bits}${symmetric ? '' : '-asym'}`, () => {
          for (const [i, g] of ([{ type: 'group', size: 32 }, { type: 'group', size: 16 }, { type: 'channel' }] as Granularity[]).entries()) {
            for (const actOrder of g.type === 'group' ? [false, true] : [false]) {
              const q = quantized(64, 96, bits, symmetric, g, 1000 * bits + i, actOrder);
              const { tensors, config } = packGptq(q, format);
              expect(tensors.qweight.shape).toEqual([(96 * bits) / 32, 64]);
              const groups = g.type === 'group' ? 96 / g.size : 1;
              expect(tensors.qzeros.shape).toEqual([groups, (64 * bits) / 32]);
              expect(tensors.scales.shape).toEqual([groups, 64]);
              expect(tensors.g_idx.shape).toEqual([96]);
              expectSameQuantized(q, unpackGptq(tensors, config));
            }
          }
        });
      }
    }
  }

  it('v1 keeps a zero point of 0 through the (z - 1) mod 2^b field and warns', () => {
    const q = quantized(32, 32, 4, false, { type: 'channel' }, 9);
    const zp = q.zeroPoints!.slice();
    zp[3] = 0;
    const q0 = { ...q, zeroPoints: zp };
    const { tensors, config, warnings } = packGptq(q0, 'gptq');
    expect(warnings).toHaveLength(1);
    expect(Array.from(unpackGptq(tensors, config).zeroPoints!)).toEqual(Array.from(zp));
  });

  it('rejects what GPTQ cannot hold', () => {
    expect(() => packGptq(quantized(32, 32, 5, true, { type: 'channel' }, 1))).toThrow(/2, 3, 4, 8/);
    expect(() => packGptq(quantized(20, 32, 4, true, { type: 'channel' }, 1))).toThrow(/divisible by 32/);
  });
});

describe('model folders', () => {
  it('saveCompressedTensors / saveGptq write folders that load back bit-exactly and that models reads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bitsmith-hf-'));
    try {
      const tensors = new Map<string, Matrix | { dtype: 'float32'; shape: number[]; data: Float32Array }>([
        ['model.embed_tokens.weight', randomMatrix(10, 64, 1)],
        ['model.layers.0.self_attn.q_proj.weight', randomMatrix(64, 64, 2)],
        ['model.layers.0.mlp.down_proj.weight', randomMatrix(64, 96, 3)],
        ['model.norm.weight', { dtype: 'float32', shape: [64], data: new Float32Array(64).fill(1) }],
      ]);
      const quantizedLayers = new Map([
        ['model.layers.0.self_attn.q_proj', quantized(64, 64, 4, true, { type: 'group', size: 32 }, 5, true)],
        ['model.layers.0.mlp.down_proj', quantized(64, 96, 4, true, { type: 'group', size: 32 }, 6)],
      ]);
      const config = { model_type: 'llama', hidden_size: 64 };
      const ct = await saveCompressedTensors(join(dir, 'ct'), { tensors, quantized: quantizedLayers, config });
      expect(ct.quantizationConfig).toMatchObject({ quant_method: 'compressed-tensors', format: 'pack-quantized', ignore: ['lm_head'] });
      // Two schemes (act-order and not) -> two groups with exact targets.
      expect(Object.keys(ct.quantizationConfig.config_groups as object)).toHaveLength(2);
      const file = await openSafetensors(join(dir, 'ct', 'model.safetensors'));
      expect(file.entry('model.layers.0.self_attn.q_proj.weight_packed')).toMatchObject({ dtype: 'I32', shape: [64, 8] });
      expect(file.entry('model.layers.0.self_attn.q_proj.weight_g_idx')).toMatchObject({ dtype: 'I32', shape: [64] });
      expect(file.has('model.layers.0.self_attn.q_proj.weight')).toBe(false);
      expect(Array.from((await file.readTensor('model.embed_tokens.weight')).data)).toEqual(Array.from(tensors.get('model.embed_tokens.weight')!.data));
      await file.close();
      const loaded = await loadCompressedTensors(join(dir, 'ct'));
      for (const [name, q] of quantizedLayers) expectSameQuantized(q, loaded.quantized.get(name)!);
      expect([...loaded.tensors.keys()].sort()).toEqual(['model.embed_tokens.weight', 'model.norm.weight']);

      for (const checkpointFormat of ['gptq', 'gptq_v2'] as const) {
        const out = join(dir, checkpointFormat);
        const saved = await saveGptq(out, { tensors, quantized: quantizedLayers, config }, { checkpointFormat });
        expect(saved.quantizationConfig).toMatchObject({ bits: 4, group_size: 32, desc_act: true, sym: true, quant_method: 'gptq', checkpoint_format: checkpointFormat });
        expect(JSON.parse(await readFile(join(out, 'quantize_config.json'), 'utf8'))).toEqual(saved.quantizationConfig);
        const g = await loadGptq(out);
        for (const [name, q] of quantizedLayers) expectSameQuantized(q, g.quantized.get(name)!);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('tfjs weights manifest', () => {
  it('uint8 and uint16 weights decode (through models.readTfjsModel, tfjs formula code*scale+min) to the quantizer output exactly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bitsmith-tfjs-'));
    try {
      const a = randomMatrix(17, 33, 11);
      const b = randomMatrix(3, 7, 12);
      const weights = [
        { name: 'dense/kernel', shape: [33, 17], dtype: 'float32' as const, data: a.data },
        { name: 'ids', shape: [4], dtype: 'int32' as const, data: Int32Array.of(1, 2, 3, -4) },
        { name: 'bias', shape: [21], dtype: 'float32' as const, data: b.data },
      ];
      for (const dtype of ['uint8', 'uint16'] as const) {
        const out = join(dir, dtype);
        const { quantized: qs } = await saveTfjsModel(out, { format: 'graph-model', modelTopology: { node: [] }, weights }, { dtype });
        const model = await readTfjsModel(join(out, 'model.json'));
        const manifest = JSON.parse(await readFile(join(out, 'model.json'), 'utf8'));
        const shard = new Uint8Array(await readFile(join(out, 'group1-shard1of1.bin')));
        expect(Array.from(model.weights[1]!.data)).toEqual([1, 2, 3, -4]);
        let offset = 0;
        for (const [i, entry] of manifest.weightsManifest[0].weights.entries()) {
          const count = entry.shape.reduce((x: number, y: number) => x * y, 1);
          if (!entry.quantization) {
            offset += 4 * count;
            continue;
          }
          const q = qs.get(entry.name)!;
          const back = readTfjsQuantizedWeight(entry, shard.subarray(offset));
          offset += count * (dtype === 'uint8' ? 1 : 2);
          expect(Array.from(back.codes)).toEqual(Array.from(q.codes));
          expect(back.zeroPoint).toBe(q.zeroPoint);
          const decoded = Array.from(model.weights[i]!.data);
          const expected = Array.from(q.codes, (c) => Math.fround((c - q.zeroPoint) * q.scale));
          expect(decoded).toEqual(expected);
          if (dtype === 'uint8') expect(decoded).toEqual(Array.from(dequantize(tfjsWeightToQuantizedTensor(q)).data));
          // Range search never does worse than plain min-max.
          const src = weights.find((w) => w.name === entry.name)!.data as Float32Array;
          const err = decoded.reduce((s, v, j) => s + (v - src[j]!) ** 2, 0);
          expect(err).toBeLessThan(src.reduce((s, v) => s + v * v, 0));
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
