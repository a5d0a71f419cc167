#!/usr/bin/env bash
# Runs linalg's webgpu tests and benchmark on the GPU machine, with PyTorch CUDA as the peer, from a folder made by
# scripts/device/webgpu-pack.sh (it holds Node, dawn.node and the Vulkan loader, since that machine has neither Node
# nor a registry). Output goes to stdout and, when the device tool sets OUT, to $OUT/webgpu-suite.log.
#
# Usage on the device machine, from the checkout's root:  bash .devwork/19/webgpu-suite.sh .devwork/19
set -uo pipefail
dir=$(cd "${1:-.devwork/19}" && pwd)
shift || true
log=${OUT:-/tmp}/webgpu-suite.log
exec > >(tee "$log") 2>&1
# Vulkan loader (libvulkan1) unpacked into /, as the device README describes; NVIDIA's ICD is already installed.
for f in "$dir"/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export XDG_RUNTIME_DIR=/tmp
xz -dc "$dir/node.xz" > /tmp/node && chmod +x /tmp/node
[ -f "$dir/node_modules/webgpu/dist/linux-x64/dawn.node" ] || xz -dc "$dir/dawn.node.xz" > "$dir/node_modules/webgpu/dist/linux-x64/dawn.node"
cd "$dir"
echo "== $(date -u +%FT%TZ) $(/tmp/node --version), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"
status=0
echo "== tests (backends js and webgpu)"
for t in dist/test-*.mjs; do
  BITSMITH_TEST_BACKENDS=js,webgpu timeout 240 /tmp/node "$t" || status=1
done
echo "== benchmark"
timeout 300 /tmp/node dist/bench-webgpu.mjs --dump /tmp/gptq-dump "$@" || status=1
[ -f /tmp/gptq-dump/webgpu-bench.json ] && cp /tmp/gptq-dump/webgpu-bench.json "${OUT:-/tmp}/" 2>/dev/null
echo "== PyTorch CUDA peer"
PYTHONUNBUFFERED=1 timeout 240 python3 torch-peer.py /tmp/gptq-dump || status=1
exit $status
