#!/usr/bin/env python3
"""Writes a random-weight Llama-form model folder (config.json, bf16 safetensors shards of about 4 GB) for the
end-to-end GPTQ run on the GPU machine (scripts/device/webgpu-e2e.sh). Weights are N(0, 0.02) (the Llama
initializer's spread), norms 1; made with torch on the GPU where there is one (the device machine), else numpy.
A tokenizer.json given with --tokenizer is copied in (the model's vocabulary must hold its ids).

Usage: make-llama-checkpoint.py OUT [--layers 32] [--hidden 4096] [--intermediate 14336] [--heads 32] [--kv-heads 8]
       [--vocab 128256] [--tokenizer FILE] [--seed 0]
"""
import argparse
import json
import os
import shutil
import struct
import time

p = argparse.ArgumentParser()
p.add_argument('out')
p.add_argument('--layers', type=int, default=32)
p.add_argument('--hidden', type=int, default=4096)
p.add_argument('--intermediate', type=int, default=14336)
p.add_argument('--heads', type=int, default=32)
p.add_argument('--kv-heads', type=int, default=8)
p.add_argument('--vocab', type=int, default=128256)
p.add_argument('--tokenizer')
p.add_argument('--seed', type=int, default=0)
p.add_argument('--shard-bytes', type=int, default=4 << 30)
a = p.parse_args()

try:
    import torch
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    gen = torch.Generator(device=device).manual_seed(a.seed)

    def tensor(shape, std, base=0.0):
        t = torch.randn(shape, generator=gen, device=device, dtype=torch.float32) * std + base if std > 0 else torch.full(shape, base, device=device)
        return t.to(torch.bfloat16).view(torch.int16).cpu().numpy().tobytes()
    maker = f'torch {torch.__version__} on {device}'
except ImportError:
    import numpy as np
    rng = np.random.default_rng(a.seed)

    def tensor(shape, std, base=0.0):
        x = (rng.standard_normal(shape, dtype=np.float32) * std + base) if std > 0 else np.full(shape, base, dtype=np.float32)
        u = x.view(np.uint32)
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even bfloat16
        return u.astype(np.uint16).tobytes()
    maker = 'numpy'

h, m, d = a.hidden, a.intermediate, a.hidden // a.heads
names = [('model.embed_tokens.weight', [a.vocab, h], 0.02, 0.0)]
for i in range(a.layers):
    q = f'model.layers.{i}'
    names += [
        (f'{q}.input_layernorm.weight', [h], 0, 1.0),
        (f'{q}.self_attn.q_proj.weight', [a.heads * d, h], 0.02, 0.0),
        (f'{q}.self_attn.k_proj.weight', [a.kv_heads * d, h], 0.02, 0.0),
        (f'{q}.self_attn.v_proj.weight', [a.kv_heads * d, h], 0.02, 0.0),
        (f'{q}.self_attn.o_proj.weight', [h, a.heads * d], 0.02, 0.0),
        (f'{q}.post_attention_layernorm.weight', [h], 0, 1.0),
        (f'{q}.mlp.gate_proj.weight', [m, h], 0.02, 0.0),
        (f'{q}.mlp.up_proj.weight', [m, h], 0.02, 0.0),
        (f'{q}.mlp.down_proj.weight', [h, m], 0.02, 0.0),
    ]
names += [('model.norm.weight', [h], 0, 1.0), ('lm_head.weight', [a.vocab, h], 0.02, 0.0)]

shards, current, size = [], [], 0
for entry in names:
    n = 2
    for s in entry[1]:
        n *= s
    if current and size + n > a.shard_bytes:
        shards.append(current)
        current, size = [], 0
    current.append(entry)
    size += n
shards.append(current)

os.makedirs(a.out, exist_ok=True)
t0 = time.time()
weight_map, total = {}, 0
for k, shard in enumerate(shards):
    file = f'model-{k + 1:05d}-of-{len(shards):05d}.safetensors' if len(shards) > 1 else 'model.safetensors'
    header, offset = {}, 0
    for name, shape, _, _ in shard:
        n = 2
        for s in shape:
            n *= s
        header[name] = {'dtype': 'BF16', 'shape': shape, 'data_offsets': [offset, offset + n]}
        offset += n
        weight_map[name] = file
    raw = json.dumps(header, separators=(',', ':')).encode()
    raw += b' ' * ((8 - len(raw) % 8) % 8)
    with open(os.path.join(a.out, file), 'wb') as f:
        f.write(struct.pack('<Q', len(raw)))
        f.write(raw)
        for name, shape, std, base in shard:
            f.write(tensor(shape, std, base))
    total += offset
if len(shards) > 1:
    with open(os.path.join(a.out, 'model.safetensors.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f)
config = {
    'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'hidden_size': h, 'intermediate_size': m,
    'num_hidden_layers': a.layers, 'num_attention_heads': a.heads, 'num_key_value_heads': a.kv_heads, 'head_dim': d,
    'vocab_size': a.vocab, 'rms_norm_eps': 1e-5, 'rope_theta': 500000.0, 'max_position_embeddings': 8192,
    'rope_scaling': {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192},
    'hidden_act': 'silu', 'tie_word_embeddings': False, 'bos_token_id': 1, 'eos_token_id': 2, 'torch_dtype': 'bfloat16',
    'attention_bias': False, 'mlp_bias': False,
}
with open(os.path.join(a.out, 'config.json'), 'w') as f:
    json.dump(config, f, indent=1)
if a.tokenizer:
    folder = os.path.dirname(a.tokenizer)
    for extra in ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'):
        if os.path.exists(os.path.join(folder, extra)):
            shutil.copy(os.path.join(folder, extra), os.path.join(a.out, extra))
print(f'== checkpoint: {a.layers} layers, hidden {h}, {total / 1e9:.2f} GB bf16 in {len(shards)} shard(s), {time.time() - t0:.1f} s ({maker})', flush=True)
