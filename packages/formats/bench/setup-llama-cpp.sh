#!/usr/bin/env bash
# Installs what the GGUF benchmarks need to run llama.cpp, from the npm registry and Debian's compilers only:
#  - node-llama-cpp 3.22.1 with its prebuilt Linux x64 CPU binary (the binary is an npm package inside the registry;
#    --omit=optional leaves out the ~600 MB of CUDA/Vulkan variants; --ignore-scripts: nothing is downloaded);
#  - llama.cpp's own tools (llama-quantize, llama-perplexity, llama-imatrix, llama-bench), built with cmake/g++ from the llama.cpp
#    release that node-llama-cpp ships as a git bundle (llama/gitRelease.bundle), so no other download is needed;
#  - bench/ggml-oracle: ggml's quantizers compiled without FMA contraction, to regenerate src/fixtures/ggml-oracle.json.
# Skips (exit 0, with a message) when npm, git, cmake or g++ is missing. About 10-20 minutes on 2 cores.
#
#   bash packages/formats/bench/setup-llama-cpp.sh [DIR]     (default: $BITSMITH_LLAMA_CPP or ~/.cache/bitsmith/llama-cpp)
set -euo pipefail
DIR="${1:-${BITSMITH_LLAMA_CPP:-$HOME/.cache/bitsmith/llama-cpp}}"
VERSION=3.22.1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for tool in npm git cmake g++ gcc; do
  if ! command -v "$tool" >/dev/null; then
    echo "skipped: $tool not found (Debian: apt-get install cmake g++ git)"
    exit 0
  fi
done
mkdir -p "$DIR"
cd "$DIR"
if [ ! -f node_modules/node-llama-cpp/dist/index.js ]; then
  [ -f package.json ] || echo '{"name":"bitsmith-llama-cpp-tools","private":true}' > package.json
  npm install --no-audit --no-fund --ignore-scripts --omit=optional "node-llama-cpp@$VERSION" "@node-llama-cpp/linux-x64@$VERSION"
fi
if [ ! -d llama.cpp ]; then
  git clone -q node_modules/node-llama-cpp/llama/gitRelease.bundle llama.cpp
fi
if [ ! -x llama.cpp/build/bin/llama-bench ]; then
  cmake -S llama.cpp -B llama.cpp/build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DGGML_OPENMP=OFF >/dev/null
  cmake --build llama.cpp/build -j"$(nproc)" --target llama-quantize llama-perplexity llama-imatrix llama-bench
fi
if [ ! -x ggml-quant-oracle ]; then
  cp llama.cpp/ggml/src/ggml-quants.c ggml-quants-oracle.c
  gcc -O2 -ffp-contract=off -Illama.cpp/ggml/include -Illama.cpp/ggml/src -o ggml-quant-oracle \
    "$HERE/ggml-oracle/ggml-quant-oracle.c" ggml-quants-oracle.c -Lllama.cpp/build/bin -lggml-base \
    -Wl,-rpath,"$DIR/llama.cpp/build/bin" -lm
fi
echo "llama.cpp tools in $DIR: $(cat node_modules/node-llama-cpp/llama/llama.cpp.info.json | tr -d '\n ')"
