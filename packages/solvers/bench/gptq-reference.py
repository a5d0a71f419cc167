# PyTorch GPTQ reference for the solvers benchmark, written from Algorithm 1 of the GPTQ paper (arXiv:2210.17323)
# with the lazy batch updates of block 128, the way the authors' reference implementation runs it: float32 Hessian
# H = 2/n X^T X, dead columns, 1% dampening, U = chol(chol_inverse(chol(H)))^T upper, then per block of 128 columns
# a column loop (quantize, scaled error, rank-1 update of the block's later columns) and one GEMM for the rest.
# Quantizer: symmetric int, per group of `group` consecutive columns, scale = absmax / (2^(b-1) - 1/2), codes
# -2^(b-1)..2^(b-1)-1 (bitsmith's int formats), computed from the error-updated weights when a group starts.
#
# Usage (called by bench/run.mjs): python3 gptq-reference.py DIR ROWS COLUMNS TOKENS GROUP BITS THREADS [REPEATS]
#   DIR holds x.f32 [TOKENS, COLUMNS] and w.f32 [ROWS, COLUMNS]; writes q.f32 (the dequantized result) and prints
#   one JSON line of timings: those of the fastest of REPEATS (default 1) runs in this process, each from the same
#   W and X.
import json
import os
import sys
import time

directory, rows, columns, tokens, group, bits, threads = sys.argv[1], *map(int, sys.argv[2:8])
repeats = int(sys.argv[8]) if len(sys.argv) > 8 else 1

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(threads)
x = torch.from_numpy(np.fromfile(os.path.join(directory, 'x.f32'), dtype=np.float32).reshape(tokens, columns))
W0 = torch.from_numpy(np.fromfile(os.path.join(directory, 'w.f32'), dtype=np.float32).reshape(rows, columns))


def clock():
    return time.perf_counter()


half = 2 ** (bits - 1)
maxabs = half - 0.5


def group_scale(block):
    s = block.abs().amax(dim=1) / maxabs
    s[s == 0] = 1
    return s.unsqueeze(1)


def quantize(w, scale):
    return torch.clamp(torch.round(w.unsqueeze(1) / scale), -half, half - 1).mul(scale).flatten()


def gptq_once():
    W = W0.clone()
    # Hessian, as add_batch does for one batch: H = 2/n X^T X (float32).
    t = clock()
    inp = x.t() * (2.0 / tokens) ** 0.5
    H = inp.matmul(inp.t())
    hessian_time = clock() - t
    del inp

    # Factorization: dead columns, dampening, inverse Cholesky factor (float32, as the reference runs it).
    t = clock()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = 0.01 * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    L = torch.linalg.cholesky(H)
    Hinv = torch.cholesky_inverse(L)
    Hinv = torch.linalg.cholesky(Hinv, upper=True)
    factorization_time = clock() - t

    # Solve: Algorithm 1 with lazy batch updates (block 128).
    t = clock()
    block = 128
    Q = torch.zeros_like(W)
    scale = None
    for i1 in range(0, columns, block):
        i2 = min(i1 + block, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if (i1 + i) % group == 0:
                # W1 holds the error-updated weights of this block; later columns of the group are in W (updated by the GEMMs).
                g = torch.cat([W1[:, i:], W[:, i2:i1 + i + group]], dim=1) if i1 + i + group > i2 else W1[:, i:i + group]
                scale = group_scale(g)
            q = quantize(w, scale)
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    solve_time = clock() - t
    return Q, hessian_time, factorization_time, solve_time


best = None
for _ in range(repeats):
    run = gptq_once()
    if best is None or sum(run[1:]) < sum(best[1:]):
        best = run
Q, hessian_time, factorization_time, solve_time = best
Q.numpy().tofile(os.path.join(directory, 'q.f32'))

print(json.dumps({
    'torch': torch.__version__,
    'threads': torch.get_num_threads(),
    'hessian': hessian_time,
    'factorization': factorization_time,
    'solve': solve_time,
    'total': hessian_time + factorization_time + solve_time,
    'repeats': repeats,
}))
