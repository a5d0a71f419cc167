# PyTorch reference for the AutoRound benchmark: one Llama decoder block quantized by GPTQ and by AutoRound, both
# written here in plain PyTorch (CPU, float32, autograd for AutoRound), on the same weights, the same block input and
# the same protocol as bitsmith's recipe runner, so that the benchmark can print bitsmith's seconds beside PyTorch's
# and PyTorch's own AutoRound / GPTQ ratio on this machine.
#
# Block: RMSNorm, q/k/v projections, rotary embedding (rotate-half, theta from the config), causal grouped-query
# attention (softmax in float32), o projection, residual; RMSNorm, SwiGLU MLP (silu(gate) * up, down), residual.
#
# GPTQ block (as the runner does it): a forward of every calibration sequence in batches, accumulating H = 2/n X^T X
# for the four distinct layer inputs; GPTQ (arXiv:2210.17323) on the seven linears (1% dampening, Cholesky of the
# inverse, lazy blocks of 128 columns, symmetric int grid per group with scale absmax / (2^(b-1) - 1/2)); a forward of
# the quantized block on every sequence (the next block's input).
#
# AutoRound block (arXiv:2309.05516, as bitsmith's autoRound runs it): a forward of the float block on every sequence
# (the targets); per weight a rounding offset v in [-0.5, 0.5], per group min/max clipping factors in [0, 1];
# `iterations` steps, each a forward and backward (autograd, straight-through rounding) of `batch` sequences taken in
# order, mean squared error against the targets, SignSGD with learning rate 1 / iterations decaying linearly, clamping,
# the lowest-loss iterate kept; then a forward of the quantized block on every sequence.
#
# Usage (called by bench/autoround-speed.mjs):
#   python3 autoround-reference.py DIR CONFIG_JSON SAMPLES SEQ_LEN BATCH ITERATIONS BITS GROUP THREADS
# DIR holds x.f32 [SAMPLES, SEQ_LEN, hidden] and the block's weights as float32 files named after their module
# (q.f32 k.f32 v.f32 o.f32 gate.f32 up.f32 down.f32 norm1.f32 norm2.f32), and y0.f32 [SEQ_LEN, hidden], bitsmith's
# float block output of the first sequence (the largest difference from this block's is printed as a check). Prints
# one JSON line: the check and the seconds.
import json
import os
import sys
import time

directory, config_json = sys.argv[1], sys.argv[2]
samples, seq_len, batch, iterations, bits, group, threads = map(int, sys.argv[3:10])

import numpy as np  # noqa: E402
import torch  # noqa: E402

if 128 % group != 0:
    sys.exit(f'group {group}: the reference takes groups that divide GPTQ\'s blocks of 128 columns')
torch.set_num_threads(threads)
torch.manual_seed(0)
c = json.loads(config_json)
hidden, heads, kv_heads, head_dim, inter = c['hidden'], c['heads'], c['kvHeads'], c['headDim'], c['intermediate']
eps, theta = c['eps'], c['theta']


def load(name, shape):
    return torch.from_numpy(np.fromfile(os.path.join(directory, name + '.f32'), dtype=np.float32).reshape(shape)).clone()


x_all = load('x', (samples, seq_len, hidden))
W = {
    'q': load('q', (heads * head_dim, hidden)),
    'k': load('k', (kv_heads * head_dim, hidden)),
    'v': load('v', (kv_heads * head_dim, hidden)),
    'o': load('o', (hidden, heads * head_dim)),
    'gate': load('gate', (inter, hidden)),
    'up': load('up', (inter, hidden)),
    'down': load('down', (hidden, inter)),
}
norm1, norm2 = load('norm1', (hidden,)), load('norm2', (hidden,))
LAYERS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down']

inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
angles = torch.arange(seq_len, dtype=torch.float64)[:, None] * inv[None, :]
cos = torch.cat([angles.cos(), angles.cos()], dim=-1).float()
sin = torch.cat([angles.sin(), angles.sin()], dim=-1).float()
mask = torch.full((seq_len, seq_len), float('-inf')).triu(1)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def block(x, w, taps=None):
    b, n, _ = x.shape
    h1 = rms(x, norm1)
    if taps is not None:
        taps['qkv'](h1)
    q = (h1 @ w['q'].t()).view(b, n, heads, head_dim).transpose(1, 2)
    k = (h1 @ w['k'].t()).view(b, n, kv_heads, head_dim).transpose(1, 2)
    v = (h1 @ w['v'].t()).view(b, n, kv_heads, head_dim).transpose(1, 2)
    q, k = rope(q), rope(k)
    k = k.repeat_interleave(heads // kv_heads, dim=1)
    v = v.repeat_interleave(heads // kv_heads, dim=1)
    p = torch.softmax(q @ k.transpose(-1, -2) / head_dim ** 0.5 + mask, dim=-1)
    attended = (p @ v).transpose(1, 2).reshape(b, n, heads * head_dim)
    if taps is not None:
        taps['o'](attended)
    h = x + attended @ w['o'].t()
    h2 = rms(h, norm2)
    if taps is not None:
        taps['mlp'](h2)
    act = torch.nn.functional.silu(h2 @ w['gate'].t()) * (h2 @ w['up'].t())
    if taps is not None:
        taps['down'](act)
    return h + act @ w['down'].t()


half = 2 ** (bits - 1)


def gptq_layer(w, H):
    w = w.clone()
    rows, cols = w.shape
    H = H.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    w[:, dead] = 0
    H += 0.01 * torch.mean(torch.diag(H)) * torch.eye(cols)
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(w)
    scale = None
    for i1 in range(0, cols, 128):
        i2 = min(i1 + 128, cols)
        w1 = w[:, i1:i2].clone()
        err = torch.zeros_like(w1)
        for i in range(i2 - i1):
            col = i1 + i
            if col % group == 0:  # a group starts: its scale from the error-updated weights (128 % group == 0)
                scale = w1[:, i:i + group].abs().amax(dim=1).clamp(min=1e-12) / (half - 0.5)
            d = U[col, col]
            q = torch.clamp(torch.round(w1[:, i] / scale), -half, half - 1) * scale
            Q[:, col] = q
            e = (w1[:, i] - q) / d
            w1[:, i:] -= e[:, None] * U[col, col:i2][None, :]
            err[:, i] = e
        w[:, i2:] -= err @ U[i1:i2, i2:]
    return Q


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def gptq_block():
    Hs = {key: torch.zeros(W[name].shape[1], W[name].shape[1]) for key, name in [('qkv', 'q'), ('o', 'o'), ('mlp', 'gate'), ('down', 'down')]}
    counts = {key: 0 for key in Hs}

    def tap(key):
        def add(x):
            x2 = x.reshape(-1, x.shape[-1])
            n = x2.shape[0]
            Hs[key].mul_(counts[key] / (counts[key] + n))
            counts[key] += n
            Hs[key].addmm_(x2.t(), x2, alpha=2.0 / counts[key])
        return add

    taps = {key: tap(key) for key in Hs}
    with torch.no_grad():
        for s in range(0, samples, batch):
            block(x_all[s:s + batch], W, taps)
        which = {'q': 'qkv', 'k': 'qkv', 'v': 'qkv', 'o': 'o', 'gate': 'mlp', 'up': 'mlp', 'down': 'down'}
        Wq = {name: gptq_layer(W[name], Hs[which[name]]) for name in LAYERS}
        for s in range(0, samples, batch):
            block(x_all[s:s + batch], Wq)


class RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


def fake_quant(w, v, lo, hi):
    rows, cols = w.shape
    wg = w.view(rows, cols // group, group)
    wmin = wg.amin(dim=-1).clamp(max=0)
    wmax = wg.amax(dim=-1).clamp(min=0)
    m = torch.maximum(-wmin * lo, wmax * hi)
    s = (m / (half - 0.5)).clamp(min=1e-12)[..., None]
    q = torch.clamp(RoundSTE.apply(wg / s + v.view(rows, cols // group, group)), -half, half - 1)
    return (q * s).view(rows, cols)


def autoround_block():
    with torch.no_grad():
        targets = torch.cat([block(x_all[s:s + batch], W) for s in range(0, samples, batch)])
    params = {}
    for name in LAYERS:
        rows, cols = W[name].shape
        params[name] = [torch.zeros(rows, cols, requires_grad=True), torch.ones(rows, cols // group, requires_grad=True), torch.ones(rows, cols // group, requires_grad=True)]
    best, best_loss = None, float('inf')
    batches = samples // batch
    for it in range(iterations):
        lr = (1.0 / iterations) * (1 - it / iterations)
        s = (it % batches) * batch
        wq = {name: fake_quant(W[name], *params[name]) for name in LAYERS}
        loss = torch.mean((block(x_all[s:s + batch], wq) - targets[s:s + batch]) ** 2)
        for p in params.values():
            for t in p:
                t.grad = None
        loss.backward()
        with torch.no_grad():
            if loss.item() < best_loss:
                best_loss = loss.item()
                best = {name: [t.detach().clone() for t in p] for name, p in params.items()}
            for name, (v, lo, hi) in params.items():
                v.sub_(lr * v.grad.sign()).clamp_(-0.5, 0.5)
                lo.sub_(lr * lo.grad.sign()).clamp_(0, 1)
                hi.sub_(lr * hi.grad.sign()).clamp_(0, 1)
    with torch.no_grad():
        wq = {name: fake_quant(W[name], *best[name]) for name in LAYERS}
        for s in range(0, samples, batch):
            block(x_all[s:s + batch], wq)
    return best_loss


with torch.no_grad():
    y0 = block(x_all[:1], W)[0]
    want = load('y0', (seq_len, hidden))
    check = {'maxAbs': float((y0 - want).abs().max()), 'relative': float((y0 - want).abs().max() / want.abs().max())}
gptq_seconds, _ = timed(gptq_block)
autoround_seconds, loss = timed(autoround_block)
print(json.dumps({'check': check, 'gptq': gptq_seconds, 'autoround': autoround_seconds, 'bestLoss': loss, 'threads': torch.get_num_threads(), 'torch': torch.__version__}))
