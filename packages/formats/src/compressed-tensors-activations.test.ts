import { describe, expect, it } from 'vitest';
import { ActivationObserver, ActivationSchemeRefusedError, dequantize, fakeQuantizeActivations, minifloat, FP8_E4M3, parseFormat, quantize, type ActivationScheme, type Matrix, type QuantizedTensor, type Tensor } from '@bitsmith/core';
import { compressedTensorsActivationArgs, compressedTensorsKvCacheArgs, refuseCompressedTensorsActivations, type ExportedActivationQuantization } from './compressed-tensors-activations.js';
import { compressedTensorsCheckpoint, readCompressedTensorsCheckpoint } from './hf-checkpoint.js';
import { storedValues } from './stored-tensor.js';

function random(rows: number, columns: number, seed: number, outlier = 0): Matrix {
  let s = seed >>> 0;
  const data = new Float32Array(rows * columns);
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 32 - 0.5) * 2 + (outlier && i % columns === 3 ? outlier : 0);
  }
  return { dtype: 'float32', shape: [rows, columns], data };
}

const LAYERS = ['model.layers.0.self_attn.q_proj', 'model.layers.0.mlp.down_proj'];
const int8Token: ActivationScheme = { format: parseFormat('int8'), granularity: { type: 'token' }, dynamic: true };
const int8TensorStatic: ActivationScheme = { format: parseFormat('int8'), granularity: { type: 'tensor' }, dynamic: false };

function model(weightFormat: string, scheme: ActivationScheme | undefined) {
  const tensors = new Map<string, Tensor>();
  const quantized = new Map<string, QuantizedTensor>();
  const inputActivations = new Map<string, ExportedActivationQuantization>();
  LAYERS.forEach((name, i) => {
    const w = random(8, 16, 10 + i);
    tensors.set(`${name}.weight`, w);
    quantized.set(name, quantize(w, { format: parseFormat(weightFormat), granularity: { type: 'channel' }, scaleEncoding: 'float16' }));
    if (scheme) {
      let scales;
      if (!scheme.dynamic) {
        const observer = new ActivationObserver(scheme, 16);
        observer.observe(random(5, 16, 20 + i, 7).data, 5);
        scales = observer.scales();
      }
      inputActivations.set(name, { scheme, ...(scales ? { scales } : {}) });
    }
  });
  tensors.set('model.embed_tokens.weight', random(4, 16, 3));
  tensors.set('lm_head.weight', random(4, 16, 4));
  return { tensors, quantized, inputActivations, config: { model_type: 'llama' } };
}

// QuantizationArgs as compressed-tensors' pydantic model serializes them (every field, in its default form), written
// out by hand from llm-compressor's INT8 W8A8 preset: weights int8 symmetric per channel, static (observer minmax);
// inputs int8 symmetric per token, dynamic (no observer).
const W8A8_WEIGHTS = { num_bits: 8, type: 'int', symmetric: true, group_size: null, strategy: 'channel', block_structure: null, dynamic: false, actorder: null, observer: 'minmax', observer_kwargs: {} };
const W8A8_INPUTS = { num_bits: 8, type: 'int', symmetric: true, group_size: null, strategy: 'token', block_structure: null, dynamic: true, actorder: null, observer: null, observer_kwargs: {} };

describe('compressed-tensors with activation schemes', () => {
  it('W8A8 (int8 per channel, int8 per token dynamic) writes the config of llm-compressor\'s W8A8 example', () => {
    const ckpt = compressedTensorsCheckpoint(model('int8', int8Token));
    expect(ckpt.config.quantization_config).toEqual({
      quant_method: 'compressed-tensors',
      format: 'int-quantized',
      quantization_status: 'compressed',
      config_groups: { group_0: { targets: ['Linear'], weights: W8A8_WEIGHTS, input_activations: W8A8_INPUTS, output_activations: null, format: 'int-quantized' } },
      ignore: ['lm_head'],
      kv_cache_scheme: null,
      global_compression_ratio: null,
      version: '0.14.0',
    });
    // Tensors: weight I8 [N, K] holding round(W / s) (the naive compressor), weight_scale [N, 1] in the scales' dtype,
    // no zero point (symmetric) and no input_scale (dynamic).
    for (const name of LAYERS) {
      const weight = ckpt.tensors.get(`${name}.weight`)!;
      expect(weight.dtype).toBe('I8');
      expect(weight.shape).toEqual([8, 16]);
      const scale = ckpt.tensors.get(`${name}.weight_scale`)!;
      expect(scale.dtype).toBe('F16');
      expect(scale.shape).toEqual([8, 1]);
      expect(ckpt.tensors.has(`${name}.weight_zero_point`)).toBe(false);
      expect(ckpt.tensors.has(`${name}.input_scale`)).toBe(false);
      // Brute force: q * s is the dequantized weight.
      const q = storedValues(weight);
      const s = storedValues(scale);
      const expected = dequantize(model('int8', undefined).quantized.get(name)!).data;
      for (let r = 0; r < 8; r++) for (let c = 0; c < 16; c++) expect(Math.fround(q[r * 16 + c]! * s[r]!)).toBe(expected[r * 16 + c]);
    }
  });

  it('static per-tensor int8 inputs: one F32 input_scale per layer equal to max|x| / 127.5; asymmetric adds an I8 input_zero_point', () => {
    const m = model('int8', int8TensorStatic);
    const ckpt = compressedTensorsCheckpoint(m);
    const group = (ckpt.config.quantization_config as { config_groups: Record<string, { input_activations: unknown }> }).config_groups.group_0!;
    expect(group.input_activations).toEqual({ ...W8A8_INPUTS, strategy: 'tensor', dynamic: false, observer: 'minmax' });
    LAYERS.forEach((name, i) => {
      const t = ckpt.tensors.get(`${name}.input_scale`)!;
      expect(t.dtype).toBe('F32');
      expect(t.shape).toEqual([1]);
      const x = random(5, 16, 20 + i, 7).data;
      // (to float32 rounding: core computes the scale in its own order of operations)
      expect(storedValues(t)[0]! / (Math.max(...Array.from(x, Math.abs)) / 127.5)).toBeCloseTo(1, 6);
    });
    const asym: ActivationScheme = { format: parseFormat('int8-asym'), granularity: { type: 'tensor' }, dynamic: false };
    const back = readCompressedTensorsCheckpoint(compressedTensorsCheckpoint(model('int8', asym)).tensors, compressedTensorsCheckpoint(model('int8', asym)).config.quantization_config as Record<string, unknown>);
    const a = model('int8', asym).inputActivations.get(LAYERS[0]!)!;
    expect(Array.from(back.inputActivations!.get(LAYERS[0]!)!.scales!.zeroPoints!)).toEqual(Array.from(a.scales!.zeroPoints!));
    const zp = compressedTensorsCheckpoint(model('int8', asym)).tensors.get(`${LAYERS[0]}.input_zero_point`)!;
    expect(zp.dtype).toBe('I8');
    // compressed-tensors' signed zero point: bitsmith's unsigned one minus 128.
    expect(storedValues(zp)[0]).toBe(a.scales!.zeroPoints![0]! - 128);
  });

  it('FP8 weights per channel with FP8 per-token inputs (FP8_DYNAMIC) write float-quantized F8_E4M3 weights', () => {
    const fp8Token: ActivationScheme = { format: parseFormat('fp8-e4m3'), granularity: { type: 'token' }, dynamic: true };
    const m = model('fp8-e4m3', fp8Token);
    const ckpt = compressedTensorsCheckpoint(m);
    const qc = ckpt.config.quantization_config as { format: string; config_groups: Record<string, { weights: unknown; input_activations: unknown }> };
    expect(qc.format).toBe('float-quantized');
    expect(qc.config_groups.group_0!.weights).toEqual({ ...W8A8_WEIGHTS, type: 'float' });
    expect(qc.config_groups.group_0!.input_activations).toEqual({ ...W8A8_INPUTS, type: 'float' });
    const codec = minifloat(FP8_E4M3);
    for (const name of LAYERS) {
      const weight = ckpt.tensors.get(`${name}.weight`)!;
      expect(weight.dtype).toBe('F8_E4M3');
      const s = storedValues(ckpt.tensors.get(`${name}.weight_scale`)!);
      const expected = dequantize(m.quantized.get(name)!).data;
      // Brute force from the OCP bit patterns: decode(byte) * s.
      for (let i = 0; i < 8 * 16; i++) expect(Math.fround(codec.decode(weight.bytes[i]!) * s[Math.floor(i / 16)]!)).toBe(expected[i]);
    }
  });

  it('reads back the same weights, schemes and scales (int8 static, FP8 dynamic, int4 pack-quantized beside int8 inputs: mixed-precision)', () => {
    for (const [format, scheme] of [
      ['int8', int8TensorStatic],
      ['fp8-e4m3', { format: parseFormat('fp8-e4m3'), granularity: { type: 'token' }, dynamic: true }],
    ] as const) {
      const m = model(format, scheme);
      const ckpt = compressedTensorsCheckpoint(m);
      const back = readCompressedTensorsCheckpoint(ckpt.tensors, ckpt.config.quantization_config as Record<string, unknown>);
      for (const name of LAYERS) {
        const q = back.quantized.get(name)!;
        expect(Array.from(q.codes)).toEqual(Array.from(m.quantized.get(name)!.codes));
        expect(Array.from(dequantize(q).data)).toEqual(Array.from(dequantize(m.quantized.get(name)!).data));
        const a = back.inputActivations!.get(name)!;
        expect(a.scheme).toEqual(scheme);
        expect(a.scales && Array.from(a.scales.scales)).toEqual(m.inputActivations.get(name)!.scales && Array.from(m.inputActivations.get(name)!.scales!.scales));
      }
      // Nothing left over as a float tensor but the unquantized ones.
      expect([...back.tensors.keys()].sort()).toEqual(['lm_head.weight', 'model.embed_tokens.weight']);
    }
    // One layer int4 g8 weight-only (packed), one W8A8: two groups, global format mixed-precision.
    const m = model('int8', int8Token);
    m.quantized.set(LAYERS[0]!, quantize(m.tensors.get(`${LAYERS[0]}.weight`)! as Matrix, { format: parseFormat('int4'), granularity: { type: 'group', size: 8 }, scaleEncoding: 'float16' }));
    m.inputActivations.delete(LAYERS[0]!);
    const ckpt = compressedTensorsCheckpoint(m);
    const qc = ckpt.config.quantization_config as { format: string; config_groups: Record<string, { targets: string[]; format: string }> };
    expect(qc.format).toBe('mixed-precision');
    expect(Object.values(qc.config_groups).map((g) => [g.targets, g.format])).toEqual([
      [[LAYERS[0]], 'pack-quantized'],
      [[LAYERS[1]], 'int-quantized'],
    ]);
    const back = readCompressedTensorsCheckpoint(ckpt.tensors, qc as unknown as Record<string, unknown>);
    expect(back.inputActivations!.has(LAYERS[0]!)).toBe(false);
    expect(Array.from(dequantize(back.quantized.get(LAYERS[0]!)!).data)).toEqual(Array.from(dequantize(m.quantized.get(LAYERS[0]!)!).data));
  });

  it('static FP8 KV cache: kv_cache_scheme and a k_scale / v_scale per attention module, read back', () => {
    const m = model('int8', int8Token);
    const fp8: ActivationScheme = { format: parseFormat('fp8-e4m3'), granularity: { type: 'tensor' }, dynamic: false };
    const kvCache = new Map([0, 1].map((b) => [`model.layers.${b}.self_attn`, { keys: { scheme: fp8, scales: { scales: Float32Array.of(0.5 + b) } }, values: { scheme: fp8, scales: { scales: Float32Array.of(0.25 + b) } } }]));
    const ckpt = compressedTensorsCheckpoint({ ...m, kvCache });
    expect((ckpt.config.quantization_config as { kv_cache_scheme: unknown }).kv_cache_scheme).toEqual({ ...W8A8_INPUTS, type: 'float', strategy: 'tensor', dynamic: false, observer: 'minmax' });
    expect(storedValues(ckpt.tensors.get('model.layers.1.self_attn.k_scale')!)[0]).toBe(1.5);
    expect(ckpt.tensors.get('model.layers.1.self_attn.v_scale')!.shape).toEqual([1]);
    const back = readCompressedTensorsCheckpoint(ckpt.tensors, ckpt.config.quantization_config as Record<string, unknown>);
    expect([...back.kvCache!.keys()].sort()).toEqual(['model.layers.0.self_attn', 'model.layers.1.self_attn']);
    expect(back.kvCache!.get('model.layers.0.self_attn')!.values.scales!.scales[0]).toBe(0.25);
    expect(back.kvCache!.get('model.layers.0.self_attn')!.keys.scheme).toEqual(fp8);
  });

  it('refuses by name, before writing, what compressed-tensors cannot express', () => {
    const refused = (f: () => unknown, pattern: RegExp) => {
      let error: unknown;
      try {
        f();
      } catch (e) {
        error = e;
      }
      expect(ActivationSchemeRefusedError.isInstance(error), String(error)).toBe(true);
      expect(String((error as Error).message)).toMatch(pattern);
    };
    refused(() => compressedTensorsActivationArgs({ format: parseFormat('int8'), granularity: { type: 'channel' }, dynamic: false }), /static channel scales have no place/);
    refused(() => compressedTensorsActivationArgs({ format: parseFormat('int8'), granularity: { type: 'group', size: 4 }, dynamic: false }), /static group 4/);
    refused(() => compressedTensorsActivationArgs({ format: parseFormat('mxfp4'), granularity: { type: 'group', size: 32 }, dynamic: true }), /format mxfp4/);
    refused(() => compressedTensorsActivationArgs({ format: parseFormat('fp8-e5m2'), granularity: { type: 'token' }, dynamic: true }), /format fp8-e5m2/);
    const fp8 = { format: parseFormat('fp8-e4m3'), granularity: { type: 'tensor' }, dynamic: false } as const;
    const int8Head = { format: parseFormat('int8'), granularity: { type: 'head' }, dynamic: true } as const;
    refused(() => compressedTensorsKvCacheArgs({ keys: int8Head, values: int8Head }), /FP8 E4M3 cache with one static scale/);
    refused(() => compressedTensorsKvCacheArgs({ keys: fp8, values: fp8, hadamard: true }), /Hadamard/);
    refused(() => compressedTensorsKvCacheArgs({ keys: fp8, values: fp8, preRopeKeys: true }), /pre-RoPE/);
    refused(() => compressedTensorsKvCacheArgs({ keys: fp8 }), /both keys and values/);
    refused(() => refuseCompressedTensorsActivations({ inputActivations: { format: parseFormat('nvfp4'), granularity: { type: 'group', size: 16 }, dynamic: true } }), /inputActivations/);
    // Quantized inputs on a layer whose weight stays float.
    const m = model('int8', int8Token);
    m.quantized.delete(LAYERS[1]!);
    refused(() => compressedTensorsCheckpoint(m), /float weights/);
    // Accepted: what llm-compressor's presets write.
    expect(() => refuseCompressedTensorsActivations({ inputActivations: int8Token, kvCache: { keys: fp8, values: fp8 } })).not.toThrow();
    expect(compressedTensorsActivationArgs({ format: parseFormat('fp8-e4m3'), granularity: { type: 'group', size: 128 }, dynamic: true })).toMatchObject({ strategy: 'group', group_size: 128, type: 'float' });
  });

  it('the stored static scale quantizes exactly as the calibrated one (fake-quant through the read-back scheme)', () => {
    const m = model('int8', int8TensorStatic);
    const ckpt = compressedTensorsCheckpoint(m);
    const back = readCompressedTensorsCheckpoint(ckpt.tensors, ckpt.config.quantization_config as Record<string, unknown>);
    const x = random(6, 16, 99, 5).data;
    const a = x.slice();
    const b = x.slice();
    const original = m.inputActivations.get(LAYERS[1]!)!;
    const read = back.inputActivations!.get(LAYERS[1]!)!;
    fakeQuantizeActivations(a, 6, 16, original.scheme, original.scales);
    fakeQuantizeActivations(b, 6, 16, read.scheme, read.scales);
    expect(Array.from(b)).toEqual(Array.from(a));
    // Brute force of compressed-tensors' static int8: clamp(round(x / s), -128, 127) * s.
    const s = storedValues(ckpt.tensors.get(`${LAYERS[1]}.input_scale`)!)[0]!;
    for (let i = 0; i < x.length; i++) expect(b[i]).toBe(Math.fround(Math.min(127, Math.max(-128, Math.round(x[i]! / s))) * s) + 0);
  });
});
