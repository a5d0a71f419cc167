#!/usr/bin/env bash
# Packs what scripts/device/webgpu-suite.sh needs on the GPU machine, which has no Node and no registry, into one
# folder (default /work/main/.devwork/19, the folder a device call carries): the node binary (xz), the linux-x64
# dawn.node of the `webgpu` package (xz), Debian's Vulkan loader (.deb), linalg's wasm kernels, the webgpu tests
# bundled with a small vitest stand-in (vitest-shim.mjs), the benchmark bundle and the PyTorch peer.
#
# Usage (here, from the repository root, after `npx turbo run build --filter=@bitsmith/linalg`):
#   scripts/device/webgpu-pack.sh [DEST]
# then on the device machine (the device tool's `run`, carrying DEST relative to the checkout that travels):
#   bash DEST/webgpu-suite.sh DEST
# and for the 8B end-to-end run through `bitsmith quantize` (after `npx turbo run build --filter=@bitsmith/cli...`):
#   bash DEST/webgpu-e2e.sh DEST start   then, in the next call,   bash DEST/webgpu-e2e.sh DEST wait
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:-/work/main/.devwork/19}
mkdir -p "$dest/dist" "$dest/debs" "$dest/node_modules/webgpu/dist/linux-x64" "$dest/wasm"
esbuild="$root/node_modules/.bin/esbuild"
linalg="$root/packages/linalg"

[ -f "$dest/node.xz" ] || xz -T2 -6 -c "$(command -v node)" > "$dest/node.xz"
webgpu="$root/node_modules/webgpu"
cp "$webgpu/package.json" "$webgpu/index.js" "$dest/node_modules/webgpu/"
[ -f "$dest/dawn.node.xz" ] || xz -T2 -6 -c "$webgpu/dist/linux-x64/dawn.node" > "$dest/dawn.node.xz"
# The Vulkan loader and the GL vendor-neutral dispatch libraries that NVIDIA's Vulkan ICD (libGLX_nvidia) links to.
for p in libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2; do
  ls "$dest"/debs/${p}_*.deb >/dev/null 2>&1 || (cd "$dest/debs" && apt-get download $p:amd64)
done
cp "$linalg"/wasm/*.wasm "$dest/wasm/"
# The bundles resolve the kernels as new URL('./kernels.wasm', import.meta.url): next to them in dist/.
cp "$linalg"/wasm/*.wasm "$dest/dist/"

externals=(--external:webgpu --external:onnxruntime-node '--external:@tensorflow/*')
for suite in linalg/src/backend-kernels linalg/src/factorizations linalg/src/decompositions linalg/src/eigh \
  linalg/src/backends/webgpu-backend linalg/src/backends/webgpu-gptq linalg/src/backends/webgpu-block \
  linalg/src/backends/webgpu-reductions linalg/src/backends/webgpu-symmetric models/src/webgpu-decoder-block models/src/webgpu-block-run solvers/src/gptq-webgpu; do
  name=$(basename "$suite")
  entry="$dest/.entry-$name.mjs"
  printf "import '%s';\nimport { runRegistered } from 'vitest';\nprocess.exit((await runRegistered('%s')) ? 1 : 0);\n" \
    "$root/packages/$suite.test.ts" "$name" > "$entry"
  "$esbuild" "$entry" --bundle --platform=node --format=esm --target=node20 --log-level=warning --ignore-annotations \
    --alias:vitest="$root/scripts/device/vitest-shim.mjs" "${externals[@]}" --outfile="$dest/dist/test-$name.mjs"
  rm "$entry"
done
"$esbuild" "$root/scripts/device/webgpu-smoke.mjs" --bundle --platform=node --format=esm --target=node20 --log-level=warning --ignore-annotations \
  "${externals[@]}" --outfile="$dest/dist/smoke.mjs"
"$esbuild" "$linalg/bench/webgpu.mjs" --bundle --platform=node --format=esm --target=node20 --log-level=warning --ignore-annotations \
  "${externals[@]}" --outfile="$dest/dist/bench-webgpu.mjs"
"$esbuild" "$root/packages/solvers/bench/gptq-webgpu.mjs" --bundle --platform=node --format=esm --target=node20 --log-level=warning --ignore-annotations \
  "${externals[@]}" --outfile="$dest/dist/bench-gptq-layer.mjs"
cp "$root/scripts/device/torch-peer.py" "$root/scripts/device/webgpu-suite.sh" "$root/scripts/device/webgpu-e2e.sh" "$root/scripts/device/vulkan-env.sh" "$dest/"
# The end-to-end run (webgpu-e2e.sh): the `bitsmith` command bundled into one file (its package.json one folder up,
# the wasm kernels beside it), the checkpoint maker, the recipe, a small tokenizer and calibration text.
mkdir -p "$dest/cli/bin" "$dest/e2e/tokenizer"
"$esbuild" "$root/packages/cli/dist/bitsmith.js" --bundle --platform=node --format=esm --target=node20 --log-level=error --ignore-annotations \
  --external:webgpu --external:onnxruntime-node --external:@tensorflow/tfjs-node \
  --banner:js="import { createRequire as __bitsmithRequire } from 'node:module'; const require = __bitsmithRequire(import.meta.url);" \
  --outfile="$dest/cli/bin/bitsmith.mjs"
cp "$root/packages/cli/package.json" "$dest/cli/"
cp "$linalg"/wasm/*.wasm "$dest/cli/bin/"
cp "$root/scripts/device/make-llama-checkpoint.py" "$root/scripts/device/check-safetensors-folder.py" "$root/scripts/device/gptq-w4g128-gpu.yaml" "$dest/e2e/"
shared="$root/../shared"
cp "$shared"/models/tinystories-656k/{tokenizer.json,tokenizer_config.json,special_tokens_map.json} "$dest/e2e/tokenizer/"
cp "$shared/data/docs-calib.txt" "$dest/e2e/"
du -sh "$dest"
