"""PyTorch CUDA peer of bitsmith's webgpu benchmark (packages/linalg/bench/webgpu.mjs), run in the same device call.

1. float32 GEMM 4096^3 with torch.matmul, TF32 off (the same arithmetic as the WGSL kernel) and on (tensor cores).
2. GPTQ of the same 4096 x 4096 layer and 8192 tokens that the Node benchmark dumped (--dump DIR), written here from
   the paper's Algorithm 1 (arXiv:2210.17323, lazy batches of 128, Cholesky of the inverse Hessian, float32 on CUDA),
   with the same quantizer (4-bit asymmetric min-max per row, groups of 128 from the current weights). Prints its time,
   the share of codes equal to bitsmith's, and both layer objectives tr((W - Q) H (W - Q)^T).

Usage: python3 torch-peer.py DIR
"""
import json
import sys
import time

import numpy as np
import torch


def timed(fn, reps=10):
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def gemm(n):
    a = torch.rand(n, n, device="cuda") - 0.5
    b = torch.rand(n, n, device="cuda") - 0.5
    out = {}
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        t = timed(lambda: torch.matmul(a, b))
        out[tf32] = t
        print(f"torch.matmul float32 {n}^3 (TF32 {'on' if tf32 else 'off'})".ljust(58), f"{t * 1e3:10.2f} ms  {2 * n**3 / t / 1e12:.2f} TFLOP/s")
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def quantize_params(w, bits=4):
    """Asymmetric min-max over the columns of w (rows x width): scale and integer zero point per row."""
    maxq = 2**bits - 1
    lo = torch.clamp(w.min(dim=1).values, max=0)
    hi = torch.clamp(w.max(dim=1).values, min=0)
    scale = (hi - lo) / maxq
    zero = torch.where(scale > 0, torch.round(-lo / torch.where(scale > 0, scale, torch.ones_like(scale))), torch.zeros_like(scale))
    return scale, zero


def quantize(x, scale, zero, maxq=15):
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    v = torch.where(scale > 0, x / safe + zero, zero)
    q = torch.clamp(torch.round(v), 0, maxq)
    return q, (q - zero) * scale


def gptq(W, X, blocksize=128, groupsize=128, percdamp=0.01):
    """Algorithm 1 of the paper with lazy batches, as in the reference fasterquant, float32 on CUDA."""
    W = W.clone()
    rows, n = W.shape
    H = X.t() @ X
    damp = percdamp * torch.mean(torch.diag(H))
    H += damp * torch.eye(n, device=W.device)
    L = torch.linalg.cholesky(H)
    Hinv = torch.cholesky_inverse(L)
    Hinv = torch.linalg.cholesky(Hinv, upper=True)
    codes = torch.zeros(rows, n, dtype=torch.uint8, device=W.device)
    Q = torch.zeros_like(W)
    scale = zero = None
    for i1 in range(0, n, blocksize):
        i2 = min(i1 + blocksize, n)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if (i1 + i) % groupsize == 0:
                scale, zero = quantize_params(W1[:, i : i + groupsize] if i + groupsize <= count else W[:, i1 + i : i1 + i + groupsize])
            c, q = quantize(w, scale, zero)
            codes[:, i1 + i] = c.to(torch.uint8)
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return codes, Q, H


def objective(W, Q, H):
    D = (W - Q).double()
    return float(torch.sum((D @ H.double()) * D))


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    gemm(4096)
    if len(sys.argv) < 2:
        return
    d = sys.argv[1]
    meta = json.load(open(f"{d}/meta.json"))
    n, tokens = meta["n"], meta["tokens"]
    X = torch.from_numpy(np.fromfile(f"{d}/x.f32", dtype=np.float32).reshape(tokens, n)).cuda()
    W = torch.from_numpy(np.fromfile(f"{d}/w.f32", dtype=np.float32).reshape(n, n)).cuda()
    gptq(W, X)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    codes, Q, H = gptq(W, X)
    torch.cuda.synchronize()
    t = time.perf_counter() - t0
    print(f"torch GPTQ {n}x{n}, {tokens} tokens, w4 asym g128 (X on the GPU)".ljust(58), f"{t * 1e3:10.2f} ms")
    ours = torch.from_numpy(np.fromfile(f"{d}/codes.u8", dtype=np.uint8).reshape(n, n)).cuda().t()  # stored columns x rows
    scales = torch.from_numpy(np.fromfile(f"{d}/scales.f32", dtype=np.float32).reshape(n // 128, n)).cuda()
    zeros = torch.from_numpy(np.fromfile(f"{d}/zeros.f32", dtype=np.float32).reshape(n // 128, n)).cuda()
    group = torch.arange(n, device="cuda") // 128
    Qours = (ours.float() - zeros[group].t()) * scales[group].t()
    same = float((ours == codes).float().mean())
    # Objective with the undamped Hessian.
    Hraw = X.t().double() @ X.double()
    ref_obj = objective(W, Q, Hraw)
    our_obj = objective(W, Qours, Hraw)
    _, rtn = quantize(W.reshape(n, n // 128, 128), *[v.unsqueeze(-1) for v in quantize_params_grouped(W)])
    rtn_obj = objective(W, rtn.reshape(n, n), Hraw)
    print(f"codes equal to torch's: {same * 100:.3f}%;  objective bitsmith {our_obj:.6e}, torch {ref_obj:.6e} (ratio {our_obj / ref_obj:.5f}), RTN {rtn_obj:.6e}")
    # The same with X starting in host memory, as bitsmith's totals do (its X upload is part of them).
    Xh = X.cpu()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    gptq(W, Xh.cuda())
    torch.cuda.synchronize()
    th = time.perf_counter() - t0
    print(f"torch GPTQ, X copied from host memory first".ljust(58), f"{th * 1e3:10.2f} ms")
    print(f"(codes and objective above: bitsmith's run '{meta.get('codes')}')")
    for label, total in meta.get("totals", {}).items():
        print(f"bitsmith webgpu GPTQ {label}: {total * 1e3:.1f} ms vs torch {t * 1e3:.1f} ms (X on the GPU): ratio {total / t:.2f}")


def quantize_params_grouped(W):
    n, m = W.shape
    g = W.reshape(n, m // 128, 128)
    lo = torch.clamp(g.min(dim=2).values, max=0)
    hi = torch.clamp(g.max(dim=2).values, min=0)
    scale = (hi - lo) / 15
    zero = torch.where(scale > 0, torch.round(-lo / torch.where(scale > 0, scale, torch.ones_like(scale))), torch.zeros_like(scale))
    return scale, zero


if __name__ == "__main__":
    main()
