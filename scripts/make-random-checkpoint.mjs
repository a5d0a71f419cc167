#!/usr/bin/env node
// Random-weight Hugging Face checkpoints with the shapes of real models, for the scale benchmarks (issue #17): the
// speed and memory of a quantization run depend on the shapes, not on the values.
//
//   npm run build && node scripts/make-random-checkpoint.mjs --shape qwen2.5-0.5b --out /tmp/qwen2.5-0.5b-random
//   node scripts/make-random-checkpoint.mjs --shape llama-3.2-1b --out /tmp/llama-3.2-1b-random [--shard-gb 2] [--seed 0]
//
// Shapes: qwen2.5-0.5b, llama-3.2-1b, llama-3-8b (bfloat16; 0.99, 2.47 and 16.1 GB), tiny (a smoke test).
// Writes config.json (transformers 5 layout, `rope_parameters`), model.safetensors or shards with
// model.safetensors.index.json. Weights: Gaussian / sqrt(fan_in) from a seeded stream, norms 1, biases 0.01 x
// Gaussian; tensors are generated and written in chunks of 4M values, so memory stays small whatever the size.
// There is no tokenizer: benchmarks feed token ids.
// --fast true: uniform values of the same variance from an inline xorshift32 stream instead of seeded Gaussians (about
// 10x faster; for llama-3-8b, whose 8B Gaussians take about half an hour here). Speed and memory do not depend on it.
import { open, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createRandom } from '@bitsmith/linalg';
import { encodeFromNumbers, planSafetensorsLayout } from '@bitsmith/models';

const SHAPES = {
  tiny: { model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 256, tie_word_embeddings: true, rope_theta: 10000, max_position_embeddings: 512, rms_norm_eps: 1e-6 },
  'qwen2.5-0.5b': { model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, tie_word_embeddings: true, rope_theta: 1000000, max_position_embeddings: 32768, rms_norm_eps: 1e-6 },
  'llama-3.2-1b': {
    model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, tie_word_embeddings: true,
    rope_theta: 500000, rope_extra: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }, max_position_embeddings: 131072, rms_norm_eps: 1e-5,
  },
  'llama-3-8b': {
    model_type: 'llama', hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256, tie_word_embeddings: false,
    rope_theta: 500000, max_position_embeddings: 8192, rms_norm_eps: 1e-5,
  },
};

const { values } = parseArgs({ options: { shape: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string', default: '0' }, 'shard-gb': { type: 'string', default: '2' }, fast: { type: 'string', default: 'false' } } });
const fast = values.fast === 'true';
// xorshift32 (Marsaglia 2003), seeded from --seed; uniform on [-sqrt(3), sqrt(3)) has variance 1.
let xs = (Number(values.seed) * 2654435761 + 88675123) >>> 0 || 1;
const SQRT3 = Math.sqrt(3);
function fillUniform(chunk, scale) {
  const a = (2 * SQRT3 * scale) / 4294967296;
  const b = -SQRT3 * scale;
  let x = xs;
  for (let i = 0; i < chunk.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    chunk[i] = (x >>> 0) * a + b;
  }
  xs = x;
}
const shape = SHAPES[values.shape ?? ''];
if (!shape || !values.out) {
  console.error(`usage: make-random-checkpoint.mjs --shape ${Object.keys(SHAPES).join('|')} --out <dir> [--seed 0] [--shard-gb 2]`);
  process.exit(2);
}
const { rope_theta: ropeTheta, rope_extra: ropeExtra, ...fields } = shape;
const config = {
  architectures: [shape.model_type === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
  ...fields,
  hidden_act: 'silu',
  rope_parameters: { rope_type: 'default', rope_theta: ropeTheta, ...(ropeExtra ?? {}) },
  bos_token_id: 1,
  eos_token_id: 2,
  dtype: 'bfloat16',
};

// Tensor list in Hugging Face order.
const h = shape.hidden_size;
const headDim = shape.head_dim ?? h / shape.num_attention_heads;
const qkvBias = shape.model_type === 'qwen2';
const tensors = [{ name: 'model.embed_tokens.weight', shape: [shape.vocab_size, h] }];
for (let i = 0; i < shape.num_hidden_layers; i++) {
  const p = `model.layers.${i}`;
  tensors.push({ name: `${p}.input_layernorm.weight`, shape: [h], norm: true });
  for (const [k, rows] of [['q_proj', shape.num_attention_heads * headDim], ['k_proj', shape.num_key_value_heads * headDim], ['v_proj', shape.num_key_value_heads * headDim]]) {
    tensors.push({ name: `${p}.self_attn.${k}.weight`, shape: [rows, h] });
    if (qkvBias) tensors.push({ name: `${p}.self_attn.${k}.bias`, shape: [rows], bias: true });
  }
  tensors.push({ name: `${p}.self_attn.o_proj.weight`, shape: [h, shape.num_attention_heads * headDim] });
  tensors.push({ name: `${p}.post_attention_layernorm.weight`, shape: [h], norm: true });
  tensors.push({ name: `${p}.mlp.gate_proj.weight`, shape: [shape.intermediate_size, h] });
  tensors.push({ name: `${p}.mlp.up_proj.weight`, shape: [shape.intermediate_size, h] });
  tensors.push({ name: `${p}.mlp.down_proj.weight`, shape: [h, shape.intermediate_size] });
}
tensors.push({ name: 'model.norm.weight', shape: [h], norm: true });
if (!shape.tie_word_embeddings) tensors.push({ name: 'lm_head.weight', shape: [shape.vocab_size, h] });

// Shards of at most shard-gb (by bfloat16 bytes), in order.
const limit = Number(values['shard-gb']) * 2 ** 30;
const shards = [[]];
let size = 0;
for (const t of tensors) {
  const bytes = t.shape.reduce((a, b) => a * b, 1) * 2;
  if (size > 0 && size + bytes > limit) {
    shards.push([]);
    size = 0;
  }
  shards.at(-1).push(t);
  size += bytes;
}

await mkdir(values.out, { recursive: true });
await writeFile(join(values.out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
const random = createRandom(Number(values.seed));
const CHUNK = 1 << 22;
const weightMap = {};
let total = 0;
const started = Date.now();
for (const [s, list] of shards.entries()) {
  const file = shards.length === 1 ? 'model.safetensors' : `model-${String(s + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
  const layout = planSafetensorsLayout(list.map((t) => ({ name: t.name, dtype: 'BF16', shape: t.shape })), { format: 'pt' });
  const handle = await open(join(values.out, file), 'w');
  try {
    await handle.write(layout.headerBytes, 0, layout.headerBytes.length, 0);
    for (const entry of layout.entries) {
      const t = list.find((x) => x.name === entry.name);
      const n = t.shape.reduce((a, b) => a * b, 1);
      const scale = t.bias ? 0.01 : 1 / Math.sqrt(t.shape.at(-1));
      const buffer = new Float32Array(Math.min(CHUNK, n));
      for (let start = 0; start < n; start += CHUNK) {
        const count = Math.min(CHUNK, n - start);
        const chunk = buffer.subarray(0, count);
        if (t.norm) chunk.fill(1);
        else if (fast) fillUniform(chunk, scale);
        else for (let i = 0; i < count; i++) chunk[i] = scale * random.normal();
        const bytes = encodeFromNumbers(chunk, 'BF16');
        await handle.write(bytes, 0, bytes.length, layout.headerBytes.length + entry.dataOffsets[0] + start * 2);
      }
      weightMap[entry.name] = file;
      total += n;
    }
  } finally {
    await handle.close();
  }
  console.log(`${file}: ${list.length} tensors (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}
if (shards.length > 1) {
  await writeFile(join(values.out, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: total * 2 }, weight_map: weightMap }, null, 2)}\n`);
}
console.log(`${values.shape}: ${(total / 1e6).toFixed(1)}M parameters, ${((total * 2) / 2 ** 30).toFixed(2)} GiB bfloat16 in ${shards.length} file(s) at ${values.out}`);
