#!/usr/bin/env bash
# The issue's 8B target through `bitsmith quantize` on the GPU machine: GPTQ w4g128 of a Llama-3-8B-shaped
# random-weight model (bf16 safetensors made there with torch), 128 x 512 calibration tokens, BITSMITH_BACKEND=webgpu.
# Run from a folder made by scripts/device/webgpu-pack.sh (Node, dawn.node, the Vulkan loader, the bundled CLI).
#
# Usage on the device machine, from the checkout's root (each phase one device call, the second right after the first):
#   bash .devwork/19/webgpu-e2e.sh .devwork/19 start   # checks (tiny model on webgpu and wasm, 2 blocks of the 8B
#                                                      # shape), then makes the 8B checkpoint and starts its run
#                                                      # detached (setsid), following it for FOLLOW_SECONDS (500)
#   bash .devwork/19/webgpu-e2e.sh .devwork/19 wait    # follows the detached run to its end
# Environment: LAYERS (32), SKIP_CHECKS=1 (start: straight to the 8B run), CHECKS=tiny (start: check 1 only),
# CHECKS_ONLY=1 (start: no 8B run),
# FOLLOW_SECONDS; NODE_FLAGS (extra node options of the 8B run, e.g. --cpu-prof --cpu-prof-dir=DIR); BITSMITH_PROGRESS_LAYERS=1 prints a line per layer with the elapsed time.
# Logs: $OUT/webgpu-e2e-<phase>.log; the detached run's whole log is /tmp/e2e/run.log (copied to $OUT by `wait`).
set -uo pipefail
dir=$(cd "${1:-.devwork/19}" && pwd)
phase=${2:-start}
began=$(date +%s)
follow=${FOLLOW_SECONDS:-500}
mkdir -p /tmp/e2e
log=${OUT:-/tmp}/webgpu-e2e-$phase.log
exec > >(tee "$log") 2>&1

# Follows /tmp/e2e/run.log until the run ends or `follow` seconds have passed since this phase began.
follow_run() {
  local shown=0
  while true; do
    local lines
    lines=$(wc -l < /tmp/e2e/run.log 2>/dev/null || echo 0)
    if [ "$lines" -gt "$shown" ]; then sed -n "$((shown + 1)),${lines}p" /tmp/e2e/run.log; shown=$lines; fi
    grep -q '^== e2e done' /tmp/e2e/run.log 2>/dev/null && break
    if [ $(( $(date +%s) - began )) -ge "$follow" ]; then echo "== $(date -u +%T) still running: call this script with 'wait' to follow it"; break; fi
    sleep 3
  done
  cp /tmp/e2e/run.log /tmp/e2e/gpu-memory.csv "${OUT:-/tmp}/" 2>/dev/null || true
}

if [ "$phase" = wait ]; then
  follow_run
  exit 0
fi

# Vulkan loader (libvulkan1 and the GL dispatch libraries) unpacked into /, as the device README describes.
source "$dir/vulkan-env.sh"
xz -dc "$dir/node.xz" > /tmp/node && chmod +x /tmp/node
[ -f "$dir/node_modules/webgpu/dist/linux-x64/dawn.node" ] || xz -dc "$dir/dawn.node.xz" > "$dir/node_modules/webgpu/dist/linux-x64/dawn.node"
echo "== $(date -u +%FT%TZ) $(/tmp/node --version), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
bitsmith() { /tmp/node --max-old-space-size=8192 "$dir/cli/bin/bitsmith.mjs" "$@"; }
calib="$dir/e2e/docs-calib.txt"
recipe="$dir/e2e/gptq-w4g128-gpu.yaml"
tokenizer="$dir/e2e/tokenizer/tokenizer.json"

# One quantize run with GPU memory sampled every 0.5 s; prints wall time and peaks.
quantize() {
  local name=$1 model=$2 samples=$3 seq=$4 backend=$5
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > /tmp/e2e/gpu-$name.csv 2>/dev/null &
  local sampler=$! t0 t1
  t0=$(date +%s.%N)
  BITSMITH_BACKEND=$backend bitsmith quantize --model "$model" --recipe "$recipe" --calibration "$calib" --samples "$samples" --seq-len "$seq" \
    --out /tmp/e2e/out-$name --save compressed-tensors --no-checkpoint --overwrite 2>&1 | grep -v '^  model\.layers\.[1-9]'
  local rc=${PIPESTATUS[0]}
  t1=$(date +%s.%N)
  kill $sampler 2>/dev/null
  echo "== $name ($backend): exit $rc, wall $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s, peak GPU memory $(sort -n /tmp/e2e/gpu-$name.csv | tail -1) MiB (nvidia-smi every 0.5 s, whole GPU), output $(du -sh /tmp/e2e/out-$name 2>/dev/null | cut -f1)"
}

if [ "${SKIP_CHECKS:-0}" != 1 ]; then
  echo "== check 1: tiny Llama (hidden 256, 2 blocks), 16 x 128 tokens, webgpu then wasm (output errors should agree)"
  python3 "$dir/e2e/make-llama-checkpoint.py" /tmp/e2e/tiny --layers 2 --hidden 256 --intermediate 512 --heads 4 --kv-heads 2 --vocab 2048 --tokenizer "$tokenizer"
  quantize tiny-webgpu /tmp/e2e/tiny 16 128 webgpu
  quantize tiny-wasm /tmp/e2e/tiny 16 128 wasm
  python3 "$dir/e2e/check-safetensors-folder.py" /tmp/e2e/out-tiny-webgpu
  if [ "${CHECKS:-all}" != tiny ]; then
    echo "== check 2: 2 blocks of the Llama-3-8B shape, 128 x 512 tokens, webgpu"
    python3 "$dir/e2e/make-llama-checkpoint.py" /tmp/e2e/llama8b-2 --layers 2 --tokenizer "$tokenizer"
    quantize two-blocks /tmp/e2e/llama8b-2 128 512 webgpu
    rm -rf /tmp/e2e/llama8b-2 /tmp/e2e/out-two-blocks
  fi
fi

[ "${CHECKS_ONLY:-0}" = 1 ] && exit 0
echo "== the 8B run, detached: checkpoint, then bitsmith quantize (webgpu, GPTQ w4g128, 128 x 512 tokens)"
export dir calib recipe tokenizer
setsid bash -c '
  exec > /tmp/e2e/run.log 2>&1
  python3 "$dir/e2e/make-llama-checkpoint.py" /tmp/e2e/llama8b --layers '"${LAYERS:-32}"' --tokenizer "$tokenizer"
  du -sh /tmp/e2e/llama8b
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > /tmp/e2e/gpu-memory.csv 2>/dev/null &
  sampler=$!
  t0=$(date +%s.%N)
  echo "== $(date -u +%T) bitsmith quantize starts"
  BITSMITH_BACKEND=webgpu /tmp/node --max-old-space-size=8192 ${NODE_FLAGS:-} "$dir/cli/bin/bitsmith.mjs" quantize --model /tmp/e2e/llama8b --recipe "$recipe" \
    --calibration "$calib" --samples 128 --seq-len 512 --out /tmp/e2e/out8b --save compressed-tensors --no-checkpoint --overwrite
  rc=$?
  t1=$(date +%s.%N)
  kill $sampler
  echo "== 8B: exit $rc, bitsmith quantize wall $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s (load, calibration, GPTQ, write), peak GPU memory $(sort -n /tmp/e2e/gpu-memory.csv | tail -1) MiB (nvidia-smi every 0.5 s), output $(du -sh /tmp/e2e/out8b | cut -f1)"
  ls -la /tmp/e2e/out8b
  python3 "$dir/e2e/check-safetensors-folder.py" /tmp/e2e/out8b
  echo "== e2e done"
' < /dev/null &
follow_run
