#!/usr/bin/env bash
# Runs linalg's webgpu tests and benchmark on the GPU machine, with PyTorch CUDA as the peer, from a folder made by
# scripts/device/webgpu-pack.sh (it holds Node, dawn.node and the Vulkan loader, since that machine has neither Node
# nor a registry). Output goes to stdout and, when the device tool sets OUT, to $OUT/webgpu-suite.log.
#
# Usage on the device machine, from the checkout's root:  bash .devwork/19/webgpu-suite.sh .devwork/19 [bench flags]
# Environment: TESTS (space-separated names of dist/test-NAME.mjs, default all), BENCH_PARTS (default
# "gemm contract gram fwht gptq block"; e2e (the 8B-shaped end-to-end compute, about 3 minutes) and layer (solvers' gptqQuantizeLayer on webgpu) on request; the gemm part also runs once with Dawn's bounds checks on).
set -uo pipefail
dir=$(cd "${1:-.devwork/19}" && pwd)
shift || true
log=${OUT:-/tmp}/webgpu-suite.log
exec > >(tee "$log") 2>&1
# Vulkan loader (libvulkan1) unpacked into /, as the device README describes; NVIDIA's ICD is already installed.
source "$dir/vulkan-env.sh"
echo "== Vulkan ICD: ${icd:-none found}"
xz -dc "$dir/node.xz" > /tmp/node && chmod +x /tmp/node
[ -f "$dir/node_modules/webgpu/dist/linux-x64/dawn.node" ] || xz -dc "$dir/dawn.node.xz" > "$dir/node_modules/webgpu/dist/linux-x64/dawn.node"
cd "$dir"
echo "== $(date -u +%FT%TZ) $(/tmp/node --version), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"
status=0
echo "== smoke (life cycle)"
for mode in plain dispose twice nodestroy jscpu; do timeout 60 /tmp/node dist/smoke.mjs $mode || echo "[$mode] exit status $?"; done
echo "== tests (backends js and webgpu)"
tests=${TESTS:-$(cd dist && ls test-*.mjs | sed 's/^test-//; s/\.mjs$//')}
for name in $tests; do
  t=dist/test-$name.mjs
  SHIM_VERBOSE=1 BITSMITH_TEST_BACKENDS=js,webgpu timeout 240 /tmp/node "$t" || status=1
done
echo "== benchmark"
# One process per part, so that a crash in one leaves the others' numbers.
parts=${BENCH_PARTS:-gemm contract gram fwht gptq block}
case " $parts " in *" gemm "*) timeout 100 /tmp/node dist/bench-webgpu.mjs --part gemm --robustness on --dump /tmp/gptq-dump "$@" || status=1 ;; esac
for part in $parts; do
  if [ "$part" = layer ]; then
    # solvers' gptqQuantizeLayer on webgpu with the factor on the CPU and on the GPU (packages/solvers/bench/gptq-webgpu.mjs).
    timeout 200 /tmp/node dist/bench-gptq-layer.mjs || status=1
  elif [ "$part" = e2e ]; then
    # GPU memory sampled every 0.5 s while the end-to-end part runs; its peak is printed after it.
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > /tmp/gpu-memory.csv 2>/dev/null &
    sampler=$!
    timeout 380 /tmp/node dist/bench-webgpu.mjs --part e2e --dump /tmp/gptq-dump "$@" || status=1
    kill $sampler 2>/dev/null
    echo "  peak GPU memory used during e2e: $(sort -n /tmp/gpu-memory.csv | tail -1) MiB (nvidia-smi, every 0.5 s)"
  else
    timeout 200 /tmp/node dist/bench-webgpu.mjs --part $part --dump /tmp/gptq-dump "$@" || status=1
  fi
done
cat /tmp/gptq-dump/webgpu-bench-*.json > "${OUT:-/tmp}/webgpu-bench.json" 2>/dev/null
echo "== PyTorch CUDA peer"
PYTHONUNBUFFERED=1 timeout 240 python3 torch-peer.py /tmp/gptq-dump || status=1
exit $status
