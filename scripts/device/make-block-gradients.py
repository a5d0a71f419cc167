#!/usr/bin/env python3
"""Reference gradients for bitsmith's block backward pass and AutoRound's quantizer, from PyTorch autograd.

Builds a tiny Hugging Face LlamaDecoderLayer (transformers 5.x, GQA 4:2, fixed seed) in float64 on the CPU, runs
forward and backward of the scalar loss sum(output * R) for two sequences of different lengths (each its own
causal context, positions from 0), and saves inputs, weights, outputs and every gradient (weights, norm gains,
input). It also differentiates AutoRound's weight quantizer (round with a straight-through estimator, rounding
offset V, min/max clipping scales per group, asymmetric and symmetric integer grids) and saves those gradients.

Output: block-gradients.json (shapes, offsets, config) + block-gradients.bin (float64 little-endian).
Usage: python3 make-block-gradients.py OUT_DIR
"""
import json
import sys

import torch

torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)
out_dir = sys.argv[1] if len(sys.argv) > 1 else '.'

try:
    import transformers
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding
except ImportError as error:  # lets the quantizer part be checked where only PyTorch is installed
    print('transformers unavailable, skipping the block:', error)
    transformers = None

HIDDEN, INTER, HEADS, KV_HEADS, HEAD_DIM, EPS, THETA = 32, 48, 4, 2, 8, 1e-5, 10000.0
LENGTHS = [7, 5]
PREFIX = 'model.layers.0.'

tensors = {}  # name -> tensor (float64)


def keep(name, t):
    tensors[name] = t.detach().to(torch.float64).contiguous().cpu()


def make_layer(impl):
    config = LlamaConfig(
        hidden_size=HIDDEN,
        intermediate_size=INTER,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        head_dim=HEAD_DIM,
        num_hidden_layers=1,
        rms_norm_eps=EPS,
        max_position_embeddings=64,
        vocab_size=16,
        rope_parameters={'rope_type': 'default', 'rope_theta': THETA},
        attention_bias=False,
        mlp_bias=False,
        hidden_act='silu',
    )
    config._attn_implementation = impl
    layer = LlamaDecoderLayer(config, layer_idx=0).to(torch.float64)
    rotary = LlamaRotaryEmbedding(config=config).to(torch.float64)
    return config, layer, rotary


def run_block(layer, rotary, impl, inputs, probe):
    """Forward each sequence separately (batch 1, its own positions) and return the outputs and the loss."""
    outputs = []
    loss = torch.zeros(())
    for x, r in zip(inputs, probe):
        n = x.shape[1]
        position_ids = torch.arange(n).unsqueeze(0)
        cos_sin = rotary(x, position_ids)
        mask = None
        if impl == 'eager':
            # Eager attention adds the mask as given: an explicit additive causal mask [1, 1, n, n].
            mask = torch.full((n, n), torch.finfo(torch.float64).min).triu(1)[None, None]
        y = layer(x, attention_mask=mask, position_ids=position_ids, position_embeddings=cos_sin)
        if isinstance(y, tuple):
            y = y[0]
        outputs.append(y)
        loss = loss + (y * r).sum()
    return outputs, loss


loss = float('nan')
eager_diff = float('nan')
impl = None
if transformers is not None:
    config, layer, rotary = make_layer('sdpa')
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith('layernorm.weight'):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
    inputs = [torch.randn(1, n, HIDDEN, requires_grad=True) for n in LENGTHS]
    probe = [torch.randn(1, n, HIDDEN) for n in LENGTHS]

    impl = 'sdpa'
    try:
        outputs, loss = run_block(layer, rotary, 'sdpa', inputs, probe)
    except Exception as error:  # fall back to eager attention with an explicit mask
        print('sdpa failed, using eager:', repr(error))
        impl = 'eager'
        layer.config._attn_implementation = 'eager'
        outputs, loss = run_block(layer, rotary, 'eager', inputs, probe)
    loss.backward()

    # Cross-check against eager attention with an explicit mask (softmax in float32 there, hence a loose bound).
    try:
        _, eager_layer, eager_rotary = make_layer('eager')
        eager_layer.load_state_dict(layer.state_dict())
        eager_outputs, _ = run_block(eager_layer, eager_rotary, 'eager', [x.detach() for x in inputs], probe)
        eager_diff = max(float((a - b).abs().max()) for a, b in zip(outputs, eager_outputs))
    except Exception as error:
        print('eager cross-check failed:', repr(error))

    keep('input', torch.cat([x.detach()[0] for x in inputs]))
    keep('probe', torch.cat([r[0] for r in probe]))
    keep('output', torch.cat([y.detach()[0] for y in outputs]))
    keep('grad.input', torch.cat([x.grad[0] for x in inputs]))
    for name, p in layer.named_parameters():
        keep(PREFIX + name, p)
        keep('grad.' + PREFIX + name, p.grad)

# AutoRound's quantizer (arXiv:2309.05516) with straight-through rounding, as intel/auto-round differentiates it.


def round_ste(x):
    return (x.round() - x).detach() + x


def qdq_asym(w, v, min_scale, max_scale, bits, group):
    rows, cols = w.shape
    g = w.reshape(-1, group)
    vg = v.reshape(-1, group)
    maxq = 2**bits - 1
    wmin = torch.clamp(g.min(-1)[0], max=0) * min_scale
    wmax = torch.clamp(g.max(-1)[0], min=0) * max_scale
    scale = (wmax - wmin) / maxq
    zp = round_ste(-wmin / scale)
    q = torch.clamp(round_ste(g / scale[:, None] + vg) + zp[:, None], 0, maxq)
    return (scale[:, None] * (q - zp[:, None])).reshape(rows, cols)


def qdq_sym(w, v, min_scale, max_scale, bits, group):
    rows, cols = w.shape
    g = w.reshape(-1, group)
    vg = v.reshape(-1, group)
    half = 2 ** (bits - 1)
    absmax = torch.maximum(-torch.clamp(g.min(-1)[0], max=0) * min_scale, torch.clamp(g.max(-1)[0], min=0) * max_scale)
    scale = absmax / (half - 0.5)
    c = torch.clamp(round_ste(g / scale[:, None] + vg), -half, half - 1)
    return (scale[:, None] * c).reshape(rows, cols)


qw = torch.randn(6, 16)
qr = torch.randn(6, 16)
for kind, fn in (('asym', qdq_asym), ('sym', qdq_sym)):
    v = (torch.rand(6, 16) - 0.5).requires_grad_(True)
    groups = 6 * 16 // 8
    min_scale = (0.6 + 0.4 * torch.rand(groups)).requires_grad_(True)
    max_scale = (0.6 + 0.4 * torch.rand(groups)).requires_grad_(True)
    dq = fn(qw, v, min_scale, max_scale, 3, 8)
    (dq * qr).sum().backward()
    keep(f'quant.{kind}.v', v)
    keep(f'quant.{kind}.min_scale', min_scale)
    keep(f'quant.{kind}.max_scale', max_scale)
    keep(f'quant.{kind}.dq', dq)
    keep(f'quant.{kind}.grad.v', v.grad)
    keep(f'quant.{kind}.grad.min_scale', min_scale.grad)
    keep(f'quant.{kind}.grad.max_scale', max_scale.grad)
keep('quant.weight', qw)
keep('quant.probe', qr)

index = {}
blobs = []
offset = 0
for name, t in tensors.items():
    data = t.numpy().astype('<f8').tobytes()
    index[name] = {'shape': list(t.shape), 'offset': offset, 'length': t.numel()}
    blobs.append(data)
    offset += t.numel()
meta = {
    'source': 'scripts/device/make-block-gradients.py',
    'transformers': transformers.__version__ if transformers else None,
    'torch': torch.__version__,
    'seed': 1234,
    'config': {
        'hiddenSize': HIDDEN,
        'intermediateSize': INTER,
        'numAttentionHeads': HEADS,
        'numKeyValueHeads': KV_HEADS,
        'headDim': HEAD_DIM,
        'rmsNormEps': EPS,
        'ropeTheta': THETA,
    },
    'lengths': LENGTHS,
    'loss': float(loss),
    'eagerVsSdpaMaxDiff': eager_diff,
    'attention': impl,
    'quantizer': {'bits': 3, 'groupSize': 8},
    'dtype': 'float64-le',
    'tensors': index,
}
with open(f'{out_dir}/block-gradients.json', 'w') as f:
    json.dump(meta, f, indent=1)
with open(f'{out_dir}/block-gradients.bin', 'wb') as f:
    for b in blobs:
        f.write(b)
print(json.dumps({k: meta[k] for k in ('transformers', 'torch', 'loss', 'eagerVsSdpaMaxDiff')}))
print('tensors', len(index), 'values', offset)
