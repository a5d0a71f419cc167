#!/usr/bin/env node
// Keeps the publishing metadata of every packages/*/package.json in one place: repository, homepage, bugs, engines,
// license, keywords, the published `files` (no tests), `prepack`, and a copy of the root LICENSE.
//   node scripts/package-metadata.mjs          write the fields
//   node scripts/package-metadata.mjs --check  exit 1 listing every package whose fields differ (CI runs this)
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const REPOSITORY = 'https://github.com/bitsmith/bitsmith';
const COMMON_KEYWORDS = ['quantization', 'post-training-quantization', 'llm', 'neural-network', 'bitsmith'];
const KEYWORDS = {
  allocate: ['mixed-precision', 'bit-allocation', 'knapsack', 'integer-programming'],
  cli: ['cli', 'gptq', 'awq', 'gguf', 'onnx', 'safetensors'],
  codebook: ['codebook', 'k-means', 'vector-quantization', 'squeezellm'],
  core: ['int4', 'fp8', 'nf4', 'bit-packing', 'tensor'],
  'demo-assets': ['universal-sentence-encoder', 'tfjs', 'dataset'],
  learned: ['autoround', 'signsgd', 'adam', 'learned-rounding'],
  formats: ['gguf', 'onnx', 'matmulnbits', 'compressed-tensors', 'gptq', 'safetensors'],
  linalg: ['linear-algebra', 'gemm', 'cholesky', 'svd', 'webassembly', 'onnxruntime'],
  lowrank: ['low-rank', 'svd', 'lorc', 'lqer', 'eora', 'svdquant'],
  models: ['safetensors', 'tokenizer', 'llama', 'perplexity', 'tfjs'],
  recipe: ['recipe', 'calibration', 'yaml'],
  rotation: ['hadamard', 'rotation', 'quarot', 'incoherence'],
  smoothing: ['smoothquant', 'awq', 'activation-aware'],
  solvers: ['gptq', 'hqq', 'quantease', 'optimal-brain-quantization'],
  steps: ['recipe', 'registry', 'gptq', 'awq'],
};
/** Files every package publishes; tests, test helpers and fixtures stay out. */
const FILES = ['dist', 'src', '!src/**/*.test.ts', '!src/**/*.test-support.ts', '!src/**/*.test-util.ts', '!src/testing', '!src/**/*-test-kernels.ts'];
const EXTRA_FILES = { cli: ['bin'], linalg: ['wasm'] };

const check = process.argv.includes('--check');
const license = readFileSync('LICENSE', 'utf8');
const problems = [];
for (const dir of readdirSync('packages').sort()) {
  const path = join('packages', dir, 'package.json');
  if (!existsSync(path)) continue;
  const before = readFileSync(path, 'utf8');
  const pkg = JSON.parse(before);
  const wanted = {
    license: 'Apache-2.0',
    repository: { type: 'git', url: `git+${REPOSITORY}.git`, directory: `packages/${dir}` },
    homepage: `${REPOSITORY}/tree/main/packages/${dir}#readme`,
    bugs: { url: `${REPOSITORY}/issues` },
    engines: { node: '>=20' },
    keywords: [...COMMON_KEYWORDS, ...(KEYWORDS[dir] ?? [])],
    files: [...(EXTRA_FILES[dir] ?? []), ...FILES, 'README.md', 'LICENSE'],
  };
  const next = { ...pkg };
  // Keep a stable key order: the metadata after description.
  const ordered = {};
  for (const [k, v] of Object.entries(next)) {
    if (k in wanted) continue;
    ordered[k] = v;
    if (k === 'description') Object.assign(ordered, wanted);
  }
  ordered.scripts = { ...pkg.scripts, prepack: 'npm run build' };
  const after = `${JSON.stringify(ordered, null, 2)}\n`;
  const licensePath = join('packages', dir, 'LICENSE');
  const readme = join('packages', dir, 'README.md');
  if (!existsSync(readme)) problems.push(`${dir}: no README.md`);
  if (check) {
    if (after !== before) problems.push(`${dir}: package.json metadata differs from scripts/package-metadata.mjs (run it)`);
    if (!existsSync(licensePath) || readFileSync(licensePath, 'utf8') !== license) problems.push(`${dir}: LICENSE is missing or differs from the root LICENSE`);
  } else {
    if (after !== before) writeFileSync(path, after);
    writeFileSync(licensePath, license);
  }
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(check ? 'package metadata: every package is in order' : 'package metadata written');
