#!/usr/bin/env bash
# Replays a newcomer's first hour, in the order the README gives it, and fails at the first step that breaks.
#
#   scripts/newcomer.sh            full replay on a fresh clone of this checkout's HEAD (in a temporary folder next to
#                                  a link to ../shared): npm install (timed; no npm warning; bitsmith linked; nothing
#                                  downloaded by install scripts: onnxruntime-node keeps only its bundled CPU binary),
#                                  npm start (timed), every `npx bitsmith` command of the README, the package checks
#                                  (npm pack --dry-run, publint), the browser page (as in --light).
#   scripts/newcomer.sh --light    the part CI runs, in this checkout after install and build (no clone, no demo):
#                                  bitsmith is linked locally, --version, bare help, .npmrc raises no npm warning,
#                                  every `npx bitsmith` command of the README (seconds on tinystories-656k), the
#                                  browser page (examples/browser: built with esbuild, then driven in headless
#                                  Chromium: the tiny model dropped on it, GPTQ vs RTN in its Web Worker, the report
#                                  and the offered files checked; skipped with a message where no Chromium is installed).
#
# Times go to stdout as `time <step>: N s`. Needs ../shared (models and texts) for the README commands.
set -euo pipefail
exec 3>&1 # the `time ...` lines go here even when a step's output goes to a log file
here="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:-full}"
shared="${BITSMITH_SHARED:-$here/../shared}"

say() { printf '::: %s\n' "$*"; }
fail() { printf 'newcomer: FAILED: %s\n' "$*" >&2; exit 1; }
timed() { # timed LABEL COMMAND...: runs, prints the seconds, returns the command's status
  local label="$1"; shift
  local start end status=0
  start=$(date +%s.%N)
  # `|| status=$?`: called on the left of `||`, a function runs without `set -e`, so a failure must be caught here.
  "$@" || status=$?
  end=$(date +%s.%N)
  printf 'time %s: %.1f s\n' "$label" "$(echo "$end - $start" | bc)" >&3
  return "$status"
}

# The README's `npx bitsmith ...` commands and the `node -e ...` lines that prepare their inputs (continuation lines
# joined), in order.
readme_commands() {
  awk '/^(npx bitsmith|node -e)/ { cmd = $0; while (cmd ~ /\\$/) { sub(/\\$/, "", cmd); getline line; cmd = cmd line } print cmd }' "$1/README.md"
}

check_linked_and_quiet() { # in the repository root
  local bin
  bin="$(readlink -f node_modules/.bin/bitsmith 2>/dev/null || true)"
  [ "$bin" = "$(pwd)/packages/cli/bin/bitsmith.js" ] || fail "node_modules/.bin/bitsmith is '$bin', not the committed launcher packages/cli/bin/bitsmith.js"
  local version
  version="$(npx --no-install bitsmith --version)" || fail "npx bitsmith --version"
  [ "$version" = "$(node -p "require('./packages/cli/package.json').version")" ] || fail "bitsmith --version printed '$version'"
  npx --no-install bitsmith 2>&1 | grep -q '^Usage: bitsmith' || fail "a bare bitsmith does not print help"
  local warnings
  warnings="$(npm config get ignore-scripts 2>&1 | grep -c 'npm warn' || true)"
  [ "$warnings" = "0" ] || fail "npm warns on every command: $(npm config get ignore-scripts 2>&1 | grep 'npm warn' | head -1)"
  say "bitsmith $version is linked to the committed launcher; bare bitsmith prints help; npm prints no config warning"
}

browser_page() { # in the repository root, after the build
  say "browser page: build examples/browser, drive it in headless Chromium"
  timed "browser page build" node examples/browser/build.mjs > /tmp/newcomer-browser-build.log 2>&1 || { cat /tmp/newcomer-browser-build.log >&2; fail "node examples/browser/build.mjs"; }
  tail -1 /tmp/newcomer-browser-build.log
  timed "browser page test" node examples/browser/test-browser.mjs --screenshot "${TMPDIR:-/tmp}/bitsmith-browser-page.png" > /tmp/newcomer-browser-test.log 2>&1 || { cat /tmp/newcomer-browser-test.log >&2; fail "node examples/browser/test-browser.mjs"; }
  grep -E '^browser example test' /tmp/newcomer-browser-test.log
  timed "tfjs encoder browser test" node examples/browser/test-tfjs-encoder.mjs > /tmp/newcomer-tfjs-browser-test.log 2>&1 || { cat /tmp/newcomer-tfjs-browser-test.log >&2; fail "node examples/browser/test-tfjs-encoder.mjs"; }
  grep -E '^tfjs encoder browser test' /tmp/newcomer-tfjs-browser-test.log
}

run_readme_commands() { # in the repository root, with ../shared present
  [ -d ../shared/models/tinystories-656k ] || fail "../shared/models/tinystories-656k is missing (the README's commands use it)"
  rm -rf out
  local n=0
  while IFS= read -r cmd; do
    n=$((n + 1))
    say "README command $n: $cmd"
    timed "README command $n" bash -c "$cmd" > "/tmp/newcomer-readme-$n.log" 2>&1 || { tail -20 "/tmp/newcomer-readme-$n.log" >&2; fail "README command $n: $cmd"; }
    tail -3 "/tmp/newcomer-readme-$n.log"
  done < <(readme_commands .)
  [ "$n" -gt 0 ] || fail "no npx bitsmith command found in README.md"
}

if [ "$mode" = "--light" ]; then
  cd "$here"
  [ -f packages/cli/dist/bitsmith.js ] || fail "build first (npm run build)"
  check_linked_and_quiet
  if [ -d "$shared/models/tinystories-656k" ] && [ "$(cd "$shared" && pwd)" = "$(cd .. && pwd)/shared" ]; then
    run_readme_commands
  elif [ "${CI:-}" = "true" ]; then
    fail "../shared is missing (in CI the README commands must run)"
  else
    say "skipping the README commands: ../shared is missing"
  fi
  browser_page
  say "newcomer (light): ok"
  exit 0
fi

# Full replay on a fresh clone.
work="$(mktemp -d /tmp/bitsmith-newcomer.XXXXXX)"
say "fresh clone in $work/bitsmith (../shared -> $shared)"
ln -s "$(cd "$shared" && pwd)" "$work/shared"
git clone --quiet "$here" "$work/bitsmith"
cd "$work/bitsmith"
git checkout --quiet "$(git -C "$here" rev-parse HEAD)"

say "npm install"
timed "npm install" npm install --no-audit --no-fund > "$work/install.log" 2>&1 || { tail -20 "$work/install.log"; fail "npm install"; }
if grep -q 'npm warn' "$work/install.log"; then grep 'npm warn' "$work/install.log" | head -5; fail "npm install printed warnings"; fi
ort=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
if [ "$(uname -s)/$(uname -m)" = "Linux/x86_64" ]; then
  [ -f "$ort/onnxruntime_binding.node" ] || fail "onnxruntime-node has no CPU binary in $ort"
  if ls "$ort" | grep -q cuda; then fail "onnxruntime-node's install script downloaded the CUDA provider: $(ls "$ort")"; fi
  say "onnxruntime-node: $(ls "$ort" | tr '\n' ' ')(bundled CPU binary only; nothing downloaded)"
fi

say "npm start"
timed "npm start" npm start > "$work/start.log" 2>&1 || { tail -20 "$work/start.log"; fail "npm start"; }
grep -E 'Time:|^GPTQ int4|^RTN int4|^wrote out' "$work/start.log" || true
check_linked_and_quiet
run_readme_commands

say "package checks (npm pack --dry-run, publint)"
timed "package checks" node scripts/check-packages.mjs

browser_page
say "newcomer (full): ok; logs in $work"
