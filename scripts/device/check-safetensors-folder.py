#!/usr/bin/env python3
"""Checks a safetensors model folder written by bitsmith: model.safetensors or the shards that
model.safetensors.index.json names. Each file's size must be 8 + header + its last data offset, the offsets must tile
the data, the index must map every tensor to the shard that holds it and total_size must be the data's sum; with the
`safetensors` package present, one tensor of each file is read through it. Usage: check-safetensors-folder.py DIR"""
import json
import os
import struct
import sys

folder = sys.argv[1]
index_path = os.path.join(folder, "model.safetensors.index.json")
if os.path.exists(index_path):
    with open(index_path) as f:
        index = json.load(f)
    files = sorted(set(index["weight_map"].values()))
else:
    index = None
    files = ["model.safetensors"]
total = 0
count = 0
for name in files:
    path = os.path.join(folder, name)
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    spans = sorted(tuple(v["data_offsets"]) for v in header.values())
    at = 0
    for begin, end in spans:
        assert begin == at, f"{name}: gap or overlap at {begin}"
        at = end
    size = os.path.getsize(path)
    assert size == 8 + length + at, f"{name}: size {size}, header says {8 + length + at}"
    if index:
        for tensor in header:
            assert index["weight_map"].get(tensor) == name, f"{tensor} in {name}, index says {index['weight_map'].get(tensor)}"
    total += at
    count += len(header)
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            first = next(iter(f.keys()))
            t = f.get_tensor(first)
            read = f"; safetensors read {first} {tuple(t.shape)} {t.dtype}"
    except ImportError:
        read = ""
    print(f"{name}: {len(header)} tensors, {size / 1e9:.2f} GB, offsets contiguous{read}")
if index:
    assert index["metadata"]["total_size"] == total, f"total_size {index['metadata']['total_size']} != {total}"
    assert len(index["weight_map"]) == count, f"index maps {len(index['weight_map'])} tensors, files hold {count}"
print(f"ok: {len(files)} file(s), {count} tensors, {total / 1e9:.2f} GB of data")
