import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  activationQuantizer,
  decodeStored,
  dequantize,
  parseFormat,
  quantize,
  StoredFormRefusedError,
  UnsupportedFormatError,
  type Matrix,
  type QuantizedTensor,
  type StoredForm,
} from '@bitsmith/core';
import { applyHadamard, hadamardInputTransform } from '@bitsmith/rotation';
import { describe, expect, it } from 'vitest';
import { onnxDecoderFeeds } from './onnx-decoder-feeds.js';
import { buildLlamaOnnx, checkOnnxStored } from './onnx-export.js';
import { decoderShape, loadOrt, SESSION_OPTIONS, type OrtTensorLike } from './onnx-ort.test-support.js';
import { readMatMulNBits } from './onnx-file.js';
import { random, syntheticGraph } from './onnx-synthetic.test-support.js';

const ort = await loadOrt();
const ids = [1, 5, 9, 13, 2, 40, 41, 7, 7, 3, 22, 30];

function matrix(rows: number, columns: number, seed: number, scale: number): Matrix {
  return { dtype: 'float32', shape: [rows, columns], data: random(rows * columns, seed, scale) };
}

function maxRelativeDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let max = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    max = Math.max(max, Math.abs(b[i]!));
  }
  return diff / Math.max(1, max);
}

/** Quantizes `w` in groups formed along `order` (GPTQ act-order) and returns the natural-order tensor with its permutation. */
function actOrderTensor(w: Matrix, order: Int32Array, groupSize: number): QuantizedTensor {
  const [rows, columns] = w.shape;
  const permuted = new Float32Array(rows * columns);
  for (let r = 0; r < rows; r++) for (let p = 0; p < columns; p++) permuted[r * columns + p] = w.data[r * columns + order[p]!]!;
  const q = quantize({ dtype: 'float32', shape: [rows, columns], data: permuted }, { format: parseFormat('int4'), granularity: { type: 'group', size: groupSize } });
  const codes = new Uint8Array(q.codes.length);
  for (let r = 0; r < rows; r++) for (let p = 0; p < columns; p++) codes[r * columns + order[p]!] = q.codes[r * columns + p]!;
  return { ...q, codes, permutation: order };
}

describe.skipIf(!ort)('ONNX decoder: key/value cache, padding and the stored forms it carries, in onnxruntime-node', () => {
  it('prefill plus one-token and chunked steps through present -> past give the logits of one full pass and of bitsmith', async () => {
    const graph = await syntheticGraph({ model_type: 'llama', sliding_window: 6 });
    const layer = graph.blocks[0]!.mlp!.upProj;
    const q = quantize(layer.weight, { format: parseFormat('int4'), granularity: { type: 'group', size: 16 } });
    layer.weight = dequantize(q);
    const { bytes } = await buildLlamaOnnx(graph, new Map([[layer.name, q]]));
    const session = await ort!.InferenceSession.create(bytes, SESSION_OPTIONS);
    const shape = decoderShape(graph);
    const vocab = graph.config.vocabSize;
    const collected = new Float32Array(ids.length * vocab);
    let present: Record<string, OrtTensorLike> | undefined;
    let done = 0;
    for (const length of [5, 1, 1, 1, 4]) {
      const chunk = ids.slice(done, done + length);
      const out = await session.run(onnxDecoderFeeds(ort!.Tensor, [chunk], shape, { ...(present ? { present } : {}), pastLength: done }));
      expect(out.logits!.dims).toEqual([1, length, vocab]);
      expect(out['present.0.key']!.dims).toEqual([1, graph.config.numKeyValueHeads, done + length, graph.config.headDim]);
      collected.set(out.logits!.data as Float32Array, done * vocab);
      present = out;
      done += length;
    }
    const lastOnly = await session.run(onnxDecoderFeeds(ort!.Tensor, [ids], shape, { logitsToKeep: 1 }));
    await session.release();
    const ours = (await graph.forward([ids])).data;
    expect(maxRelativeDiff(collected, ours)).toBeLessThan(1e-5);
    expect(lastOnly.logits!.dims).toEqual([1, 1, vocab]);
    expect(maxRelativeDiff(lastOnly.logits!.data as Float32Array, ours.subarray((ids.length - 1) * vocab))).toBeLessThan(1e-5);
  });

  it('a left-padded row (attention_mask 0, transformers.js position ids) gives the unpadded row\'s logits and stays finite', async () => {
    const graph = await syntheticGraph({ model_type: 'llama' });
    const { bytes } = await buildLlamaOnnx(graph, new Map());
    const session = await ort!.InferenceSession.create(bytes, SESSION_OPTIONS);
    const shape = decoderShape(graph);
    const short = ids.slice(0, 7);
    const pad = 3;
    const feeds = onnxDecoderFeeds(ort!.Tensor, [ids.slice(0, 10), [0, 0, 0, ...short]], shape);
    const mask = new BigInt64Array(20).fill(1n);
    const positions = BigInt64Array.from([...Array.from({ length: 10 }, (_, i) => i), 1, 1, 1, ...Array.from({ length: 7 }, (_, i) => i)], BigInt);
    mask.fill(0n, 10, 10 + pad);
    feeds.attention_mask = new ort!.Tensor('int64', mask, [2, 10]);
    feeds.position_ids = new ort!.Tensor('int64', positions, [2, 10]);
    const out = (await session.run(feeds)).logits!.data as Float32Array;
    await session.release();
    expect(out.every(Number.isFinite)).toBe(true);
    const vocab = graph.config.vocabSize;
    const ours = (await graph.forward([short])).data;
    expect(maxRelativeDiff(out.subarray((10 + pad) * vocab), ours)).toBeLessThan(1e-5);
  });

  it('act-order grids (folded by a Gather of the input columns), low-rank branches and online Hadamards match bitsmith; act-order reads back', async () => {
    const graph = await syntheticGraph({ model_type: 'llama' });
    const block = graph.blocks[0]!;
    const stored = new Map<string, StoredForm>();
    // q_proj and k_proj share an input and an act-order permutation (one Gather); v_proj has another.
    const order = Int32Array.from({ length: 64 }, (_, i) => (i * 37 + 5) % 64);
    const other = Int32Array.from({ length: 64 }, (_, i) => 63 - i);
    for (const [layer, perm] of [[block.selfAttention.qProj, order], [block.selfAttention.kProj, order], [block.selfAttention.vProj, other]] as const) {
      const q = actOrderTensor(layer.weight, perm, 16);
      layer.weight = dequantize(q);
      stored.set(layer.name, { kind: 'grid', tensor: q });
    }
    // A low-rank branch (rank 3) over an int4-asym g32 grid on gate_proj.
    const gate = block.mlp!.gateProj;
    const base = quantize(gate.weight, { format: parseFormat('int4-asym'), granularity: { type: 'group', size: 32 } });
    const lowRank: StoredForm = { kind: 'low-rank', base: { kind: 'grid', tensor: base }, a: matrix(gate.outFeatures, 3, 91, 0.1), b: matrix(3, gate.inFeatures, 92, 0.1), factorBits: 0 };
    gate.weight = decodeStored(lowRank);
    stored.set(gate.name, lowRank);
    // Online Hadamards: order 96 = 12 x 8 (Paley base) on down_proj, quantized after rotation; order 64 (Sylvester) on o_proj of block 1.
    for (const layer of [block.mlp!.downProj, graph.blocks[1]!.selfAttention.oProj]) {
      const [rows, n] = layer.weight.shape;
      const data = Float32Array.from(layer.weight.data);
      await applyHadamard(data, rows, n);
      layer.weight = { dtype: 'float32', shape: [rows, n], data };
      layer.inputTransform = hadamardInputTransform(n);
    }
    const down = block.mlp!.downProj;
    const downQ = quantize(down.weight, { format: parseFormat('int4'), granularity: { type: 'group', size: 32 } });
    down.weight = dequantize(downQ);
    stored.set(down.name, { kind: 'grid', tensor: downQ });

    const { bytes, matMulNBits } = await buildLlamaOnnx(graph, stored);
    expect(matMulNBits.sort()).toEqual([...stored.keys()].sort());
    const session = await ort!.InferenceSession.create(bytes, SESSION_OPTIONS);
    const out = await session.run(onnxDecoderFeeds(ort!.Tensor, [ids], decoderShape(graph)));
    await session.release();
    const ours = (await graph.forward([ids])).data;
    expect(maxRelativeDiff(out.logits!.data as Float32Array, ours)).toBeLessThan(1e-5);

    const dir = await mkdtemp(join(tmpdir(), 'bitsmith-onnx-'));
    try {
      await writeFile(join(dir, 'model.onnx'), bytes);
      const back = await readMatMulNBits(join(dir, 'model.onnx'));
      const q = (stored.get(block.selfAttention.vProj.name) as { tensor: QuantizedTensor }).tensor;
      const b = back.get(block.selfAttention.vProj.name)!;
      expect(Array.from(b.codes)).toEqual(Array.from(q.codes));
      expect(Array.from(b.permutation!)).toEqual(Array.from(q.permutation!));
      expect(Array.from(b.scales)).toEqual(Array.from(q.scales));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!ort)('ONNX decoder: activation quantization (W8A8 / W4A4 QDQ) in onnxruntime-node', () => {
  it('static int8 per channel and per tensor (QuantizeLinear/DequantizeLinear), static int4, dynamic int8 per token and per group match bitsmith within 1e-4', async () => {
    const graph = await syntheticGraph({ model_type: 'llama' });
    const stored = new Map<string, StoredForm>();
    const schemes: Array<[RegExp, () => ReturnType<typeof activationQuantizer>]> = [
      [/q_proj$/, () => activationQuantizer({ format: parseFormat('int8'), granularity: { type: 'channel' }, dynamic: false }, { scales: Float32Array.from({ length: 64 }, (_, i) => 0.01 + 0.0003 * i) })],
      [/o_proj$/, () => activationQuantizer({ format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false }, { scales: Float32Array.of(0.004) })],
      [/gate_proj$/, () => activationQuantizer({ format: parseFormat('int4'), granularity: { type: 'tensor' }, dynamic: false }, { scales: Float32Array.of(0.15) })],
      [/up_proj$/, () => activationQuantizer({ format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true })],
      // Dynamic int8 here: dynamic int4 codes of the SwiGLU product flip at rounding ties under float32 noise (silu
      // and products rounded differently), and on this random tiny model one flipped int4 code moves the logits ~5%.
      [/down_proj$/, () => activationQuantizer({ format: parseFormat('int8'), granularity: { type: 'group', size: 16 }, dynamic: true })],
    ];
    // One scheme at a time (on the layers it names, int8 per-channel weights everywhere): with several, one code that
    // flips at a rounding tie upstream changes every later quantizer's input, so exact agreement is per scheme.
    const plain = graph.linearLayers().map((l) => [l, l.weight] as const);
    for (const [pattern, make] of schemes) {
      stored.clear();
      for (const [layer, weight] of plain) {
        const q = quantize(weight, { format: parseFormat('int8'), granularity: { type: 'channel' } });
        layer.weight = dequantize(q);
        stored.set(layer.name, { kind: 'grid', tensor: q });
        layer.inputTransform = pattern.test(layer.name) ? make() : undefined;
      }
      const { bytes } = await buildLlamaOnnx(graph, stored);
      const session = await ort!.InferenceSession.create(bytes, SESSION_OPTIONS);
      const out = await session.run(onnxDecoderFeeds(ort!.Tensor, [ids, [...ids].reverse()], decoderShape(graph)));
      await session.release();
      const onnx = out.logits!.data as Float32Array;
      expect(maxRelativeDiff(onnx, (await graph.forward([ids, [...ids].reverse()])).data), String(pattern)).toBeLessThan(1e-4);
      // The quantizer matters: without it the logits move far more than that.
      for (const [layer] of plain) layer.inputTransform = undefined;
      expect(maxRelativeDiff(onnx, (await graph.forward([ids, [...ids].reverse()])).data), String(pattern)).toBeGreaterThan(1e-3);
    }
  });
});

describe('ONNX decoder: refusals before any work', () => {
  it('refuses lookup tables, codebooks, sparse outliers and low-rank over non-grids by name; minifloat activations and unknown transforms', async () => {
    const w = matrix(8, 32, 3, 1);
    const q = quantize(w, { format: parseFormat('int4'), granularity: { type: 'group', size: 16 } });
    const lut: StoredForm = { kind: 'lut', tensor: { shape: [8, 32], bits: 1, codes: new Uint8Array(256), lut: new Float32Array(16) } };
    const sparse: StoredForm = { kind: 'sparse-outliers', base: { kind: 'grid', tensor: q }, sparse: { shape: [8, 32], rowPointers: new Int32Array(9), columnIndices: new Int32Array(0), values: new Float32Array(0) } };
    const lowRankOverLut: StoredForm = { kind: 'low-rank', base: lut, a: matrix(8, 1, 4, 1), b: matrix(1, 32, 5, 1), factorBits: 0 };
    for (const [form, kind] of [[lut, 'lut'], [sparse, 'sparse-outliers(grid)'], [lowRankOverLut, 'low-rank(lut)']] as const) {
      let error: unknown;
      try {
        checkOnnxStored(form, 'model.layers.0.mlp.up_proj');
      } catch (e) {
        error = e;
      }
      expect(StoredFormRefusedError.isInstance(error)).toBe(true);
      expect((error as StoredFormRefusedError).kind).toBe(kind);
      expect((error as Error).message).toContain('model.layers.0.mlp.up_proj');
    }
    const int3 = quantize(w, { format: parseFormat('int3'), granularity: { type: 'group', size: 16 } });
    expect(() => checkOnnxStored({ kind: 'grid', tensor: int3 }, 'x')).toThrow(/bits 2, 4 and 8/);
    expect(() => checkOnnxStored({ kind: 'float', weight: w, storage: 'float32' }, 'x')).not.toThrow();

    const graph = await syntheticGraph({ model_type: 'llama' });
    const layer = graph.blocks[0]!.mlp!.upProj;
    layer.inputTransform = activationQuantizer({ format: parseFormat('fp8-e4m3'), granularity: { type: 'token' }, dynamic: true });
    await expect(buildLlamaOnnx(graph, new Map())).rejects.toThrow(/fp8-e4m3 has no ONNX export/);
    layer.inputTransform = { name: 'x', apply: () => undefined, describe: () => ({ kind: 'smooth-scale' }) };
    await expect(buildLlamaOnnx(graph, new Map())).rejects.toThrow(UnsupportedFormatError);
    await expect(buildLlamaOnnx(graph, new Map([['model.layers.0.mlp.up_proj', sparse]]))).rejects.toThrow(/shape|sparse/);
  });
});
