#!/usr/bin/env python3
"""Tiny random-weight checkpoints of every architecture @bitsmith/models reads, with reference outputs.

Run on a machine with PyTorch and Hugging Face transformers (5.x):

    OUT=/tmp/out python3 scripts/device/make-arch-fixtures.py

For each architecture it builds a tiny model from a config (hidden 32, 2 layers, vocabulary 64, fixed seed), gives
it random weights with a larger spread than the library's initialisation (so logits and routing are decisive),
rounds every weight to bfloat16, runs the float32 forward on the CPU with eager attention, and saves:

    <name>/config.json, <name>/model.safetensors (bfloat16), <name>/reference.json

reference.json holds the prompts (token ids, no tokenizer), the logits of every position of every prompt, and 8
greedy tokens after two prompts (each with the margin between the best and the second-best logit). Everything is
packed into $OUT/arch-fixtures.tar; $OUT/log.txt says what was made and what failed.
"""
import json
import math
import os
import shutil
import sys
import tarfile
import traceback

import torch
import transformers
from transformers import AutoModelForCausalLM

OUT = os.environ.get("OUT", "/tmp/arch-fixtures-out")
WORK = os.path.join(OUT, "_work")
PROMPTS = [[1, 5, 9, 17, 33, 2, 40], [1, 60, 3, 12, 7, 7, 21, 44, 50, 11], [1, 30, 31]]
GREEDY_PROMPTS = [0, 1]
GREEDY_STEPS = 8

COMMON = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    rms_norm_eps=1e-6,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)


def cfg(model_type, **overrides):
    merged = dict(COMMON)
    merged.update(overrides)
    return transformers.AutoConfig.for_model(model_type, **merged)


ARCHITECTURES = {
    # Llama 2 style with linear RoPE scaling, and attention/MLP biases switched on (exercises every bias path).
    "llama2-linear-bias": lambda: cfg(
        "llama",
        rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0},
        attention_bias=True,
        mlp_bias=True,
    ),
    # Llama 3 RoPE scaling (original context made tiny so that every frequency band is exercised).
    "llama3": lambda: cfg(
        "llama",
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8,
        },
    ),
    # SmolLM2: a Llama with tied embeddings and 3 query heads per key/value head.
    "smollm2": lambda: cfg(
        "llama", num_attention_heads=6, num_key_value_heads=2, head_dim=8, hidden_size=48, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
    ),
    # Mistral with a 4-token sliding window (the prompts are longer).
    "mistral": lambda: cfg("mistral", sliding_window=4, head_dim=8),
    # Qwen2/2.5: q/k/v biases, tied embeddings.
    "qwen2": lambda: cfg("qwen2", tie_word_embeddings=True),
    # Qwen3: q/k RMSNorm per head, explicit head_dim.
    "qwen3": lambda: cfg("qwen3", head_dim=8, tie_word_embeddings=False),
    # Gemma 2: 1+w RMSNorm, sqrt(hidden) embedding scale, GeGLU (tanh GELU), sandwich norms, soft-capping, alternating
    # sliding/full attention.
    "gemma2": lambda: cfg(
        "gemma2",
        head_dim=8,
        query_pre_attn_scalar=8,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        attn_logit_softcapping=5.0,
        final_logit_softcapping=3.0,
        hidden_activation="gelu_pytorch_tanh",
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=1,
    ),
    # Gemma 3 text: as Gemma 2 plus q/k norms, local RoPE base for sliding layers, no soft-capping.
    "gemma3-text": lambda: cfg(
        "gemma3_text",
        head_dim=8,
        query_pre_attn_scalar=8,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        hidden_activation="gelu_pytorch_tanh",
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=1,
    ),
    # Phi-3: fused qkv_proj and gate_up_proj.
    "phi3": lambda: cfg("phi3", sliding_window=None, tie_word_embeddings=False),
    # Qwen2-MoE: router, 4 experts (top-2), shared expert with a sigmoid gate, q/k/v biases.
    "qwen2-moe": lambda: cfg(
        "qwen2_moe",
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=64,
        norm_topk_prob=False,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        tie_word_embeddings=False,
    ),
}


def randomize(model, name, generator):
    """Weights with spread ~1/sqrt(fan_in) for matrices, gains near 1 (near 0 for Gemma's 1+w), small biases."""
    gemma = name.startswith("gemma")
    for pname, p in model.named_parameters():
        with torch.no_grad():
            shape = p.shape
            noise = torch.randn(shape, generator=generator, dtype=torch.float32)
            if "norm" in pname and p.dim() == 1:
                value = 0.1 * noise if gemma else 1.0 + 0.1 * noise
            elif pname.endswith("bias"):
                value = 0.1 * noise
            elif "embed_tokens" in pname:
                value = noise * (0.3 if gemma else 1.0)
            elif p.dim() >= 2:
                fan_in = shape[-1]
                scale = 1.0 / math.sqrt(fan_in)
                if pname.endswith("mlp.gate.weight") or "router" in pname:
                    scale *= 3.0  # decisive routing
                value = noise * scale
            else:
                value = 0.1 * noise
            p.copy_(value.to(torch.bfloat16).to(torch.float32))


def sig(v):
    return float("%.7g" % v)


def reference(model):
    out = {"prompts": PROMPTS, "logits": [], "greedy": []}
    with torch.no_grad():
        for prompt in PROMPTS:
            logits = model(torch.tensor([prompt])).logits[0].to(torch.float32)
            out["logits"].append([[sig(v) for v in row.tolist()] for row in logits])
        for index in GREEDY_PROMPTS:
            ids = list(PROMPTS[index])
            tokens, margins = [], []
            for _ in range(GREEDY_STEPS):
                last = model(torch.tensor([ids])).logits[0, -1].to(torch.float32)
                top = torch.topk(last, 2)
                token = int(top.indices[0])
                tokens.append(token)
                margins.append(sig(float(top.values[0] - top.values[1])))
                ids.append(token)
            out["greedy"].append({"prompt": index, "tokens": tokens, "margins": margins})
    return out


def main():
    torch.set_num_threads(4)
    os.makedirs(WORK, exist_ok=True)
    log = [f"torch {torch.__version__}, transformers {transformers.__version__}"]
    made = []
    for i, (name, make_config) in enumerate(ARCHITECTURES.items()):
        try:
            config = make_config()
            generator = torch.Generator().manual_seed(1000 + i)
            torch.manual_seed(1000 + i)
            model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
            model.eval()
            randomize(model, name, generator)
            ref = reference(model)
            folder = os.path.join(WORK, name)
            model.to(torch.bfloat16).save_pretrained(folder)
            # Round trip: the saved checkpoint must give the same float32 logits.
            reloaded = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
            reloaded.eval()
            with torch.no_grad():
                again = reloaded(torch.tensor([PROMPTS[0]])).logits[0]
            diff = float((again - torch.tensor(ref["logits"][0])).abs().max())
            ref["roundTripMaxAbsDiff"] = sig(diff)
            ref["transformersVersion"] = transformers.__version__
            ref["architecture"] = name
            from safetensors import safe_open

            with safe_open(os.path.join(folder, "model.safetensors"), "pt") as f:
                ref["tensors"] = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
            with open(os.path.join(folder, "reference.json"), "w") as f:
                json.dump(ref, f, separators=(",", ":"))
            for extra in os.listdir(folder):
                if extra not in ("config.json", "model.safetensors", "reference.json"):
                    os.remove(os.path.join(folder, extra))
            margins = [m for g in ref["greedy"] for m in g["margins"]]
            log.append(
                f"{name}: ok, {sum(p.numel() for p in model.parameters())} parameters, round-trip max |diff| {diff:.3g}, "
                f"greedy {[g['tokens'] for g in ref['greedy']]}, smallest margin {min(margins):.3g}, tensors {len(ref['tensors'])}"
            )
            made.append(name)
        except Exception:  # one architecture failing must not lose the others
            log.append(f"{name}: FAILED\n{traceback.format_exc()}")
    with tarfile.open(os.path.join(OUT, "arch-fixtures.tar"), "w") as tar:
        for name in made:
            tar.add(os.path.join(WORK, name), arcname=name)
    shutil.rmtree(WORK)
    text = "\n".join(log)
    with open(os.path.join(OUT, "log.txt"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0 if len(made) == len(ARCHITECTURES) else 1


if __name__ == "__main__":
    sys.exit(main())
